"""A real two-node Ray cluster on this machine, for trying cluster jobs and for tests.

    python -m cluster.local up   [--dir .cluster] [--port 6390] [--dashboard-port 8265]
    python -m cluster.local down [--dir .cluster]

``up`` starts a head node (``ray start --head``) and a worker node (a second ``ray start
--address=…``), each with one CPU, its own temp dir and, on the worker, a ``worker_node``
resource. Their dashboard agents listen on the dashboard port + 2 (head) and + 1 (worker), and
the head's Ray Client server on + 3, so they never collide with another Ray on the machine
(whose agent takes the default 52365 and whose client server 10001).
The dashboard and Jobs API listen on 127.0.0.1 only, and token authentication is on
(``RAY_AUTH_MODE=token``) with a fresh token in ``<dir>/auth_token`` (mode 600); Ray's internal
gRPC services cannot be bound to loopback, and every request to them must carry the token.
``down`` stops this cluster's processes and only them, never other Ray instances on the
machine (``ray stop`` would stop them all): every process whose command line, working
directory or open files lie under this cluster's temp dirs (Ray retitles its agents, so a
command line alone misses them, but their logs are open there), and every descendant of those,
found with psutil (no ``/proc`` needed); TERM first, then KILL for what is left.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"
RAY_PORT, DASHBOARD_PORT = 6390, 8265  # the Makefile's RAY_PORT and DASHBOARD_PORT defaults


def auth_env(folder: Path) -> dict[str, str]:
    """Environment variables that make Ray clients use this cluster's token."""
    return {"RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(folder.resolve() / "auth_token")}


def temp_root(folder: Path) -> Path:
    """A short temp root for the cluster (Unix socket paths must stay under 108 bytes)."""
    digest = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    return Path("/tmp") / f"mnistray-{digest}"


def up(folder: Path, port: int, dashboard_port: int) -> dict:
    """Start the head and worker nodes and wait until both are alive; return the state."""
    check_ports_free(port, dashboard_port)
    folder = folder.resolve()  # every Ray process reads the token from this path, whatever its cwd
    folder.mkdir(parents=True, exist_ok=True)
    token = folder / "auth_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    root = temp_root(folder)
    # Jobs run `python -m jobs.…`: put this environment's Python first on the nodes' PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, **auth_env(folder), "RAY_USAGE_STATS_ENABLED": "0", "PATH": path}
    _ray(["start", "--head", f"--node-ip-address={HOST}", f"--port={port}",
          f"--dashboard-host={HOST}", f"--dashboard-port={dashboard_port}", "--num-cpus=1",
          f"--temp-dir={root / 'head'}", f"--dashboard-agent-listen-port={dashboard_port + 2}",
          f"--ray-client-server-port={dashboard_port + 3}", "--disable-usage-stats"], env)
    _ray(["start", f"--address={HOST}:{port}", f"--node-ip-address={HOST}", "--num-cpus=1",
          '--resources={"worker_node": 1}', f"--temp-dir={root / 'worker'}",
          f"--dashboard-agent-listen-port={dashboard_port + 1}", "--disable-usage-stats"], env)
    state = {"address": f"{HOST}:{port}", "dashboard": f"http://{HOST}:{dashboard_port}",
             "temp_root": str(root), "token_path": str(token)}
    (folder / "cluster.json").write_text(json.dumps(state, indent=2))
    _wait_for_nodes(state["address"], env, count=2)
    return state


def check_ports_free(port: int, dashboard_port: int) -> None:
    """Every port the cluster will listen on is free on 127.0.0.1; one line naming the port
    and the ``make`` variable that moves it otherwise (exit 2)."""
    wanted = [(port, "RAY_PORT", "the GCS")]
    wanted += [(dashboard_port + offset, "DASHBOARD_PORT", what) for offset, what in (
        (0, "the dashboard"), (1, "the worker's agent"), (2, "the head's agent"),
        (3, "the Ray Client server"))]
    for number, variable, what in wanted:
        with socket.socket() as probe:
            try:
                probe.bind((HOST, number))
            except OSError:
                _refuse(f"port {number} ({what}) is in use on {HOST}: choose another "
                        f"{variable}, e.g. make cluster-up {variable}={number + 100}")


def _refuse(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def down(folder: Path, grace: float = 2.0) -> int:
    """Stop this cluster's processes (TERM, then KILL those left after ``grace`` seconds:
    Ray's own ``ray.shutdown`` gives each 1 s; the GCS server and the autoscaler's monitor
    otherwise linger ten seconds and more); return how many there were."""
    import psutil

    processes = cluster_processes(str(temp_root(folder)))
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=10)
    return len(processes)


def cluster_processes(root: str) -> list:
    """The processes of the cluster under temp dir ``root`` (psutil ``Process`` objects):
    those that name it or hold files under it, and all their descendants."""
    import psutil

    found = {}
    for process in psutil.process_iter(["pid"]):
        if process.pid != os.getpid() and _belongs(process, root):
            found[process.pid] = process
    for process in list(found.values()):
        with contextlib.suppress(psutil.Error):
            found.update({child.pid: child for child in process.children(recursive=True)})
    return list(found.values())


def _belongs(process, root: str) -> bool:
    import psutil

    try:
        if any(root in part for part in process.cmdline()) or process.cwd().startswith(root):
            return True
        return any(item.path.startswith(root) for item in process.open_files())
    except psutil.Error:
        return False


def _ray(arguments: list[str], env: dict[str, str]) -> None:
    ray = Path(sys.executable).with_name("ray")
    result = subprocess.run([str(ray), *arguments], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if any(c.isalpha() for c in line)]
        _refuse(f"ray {arguments[0]} failed: {lines[-1].strip() if lines else 'no message'}")


def _wait_for_nodes(address: str, env: dict[str, str], count: int, timeout: float = 120) -> None:
    probe = (f"import ray; ray.init(address={address!r}, log_to_driver=False); "
             "print(sum(n['Alive'] for n in ray.nodes()))")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                                text=True)
        if result.returncode == 0 and result.stdout.strip().endswith(str(count)):
            return
        time.sleep(1)
    raise SystemExit(f"error: the cluster at {address} did not reach {count} nodes")


def main(argv: list[str] | None = None) -> int:
    """``up`` or ``down`` the local cluster."""
    parser = argparse.ArgumentParser(prog="cluster.local", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("action", choices=["up", "down"],
                        help="start the two nodes, or stop this cluster's processes")
    parser.add_argument("--dir", type=Path, default=Path(".cluster"),
                        help="the cluster's state: token, addresses, temp-dir root")
    parser.add_argument("--port", type=int, default=RAY_PORT, help="the GCS port")
    parser.add_argument("--dashboard-port", type=int, default=DASHBOARD_PORT,
                        help="the dashboard and Jobs API port (on 127.0.0.1)")
    args = parser.parse_args(argv)
    if args.action == "down":
        print(f"stopped {down(args.dir)} processes of the cluster in {args.dir}")
        return 0
    state = up(args.dir, args.port, args.dashboard_port)
    print(f"two-node Ray cluster up: GCS {state['address']}, dashboard and Jobs API "
          f"{state['dashboard']} (token in {state['token_path']})")
    ports = "" if args.dashboard_port == DASHBOARD_PORT else \
        f" DASHBOARD_PORT={args.dashboard_port}"
    print(f"submit with: make submit{ports}   (or RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH="
          f"{state['token_path']} python -m jobs.submit sweep --address "
          f"{state['dashboard']} ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
