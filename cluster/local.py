"""A real two-node Ray cluster on this machine, for trying cluster jobs and for tests.

    python -m cluster.local up   [--dir .cluster] [--port 6390] [--dashboard-port 8265]
    python -m cluster.local down [--dir .cluster]

``up`` starts a head node (``ray start --head``) and a worker node (a second ``ray start
--address=…``), each with one CPU, its own temp dir and, on the worker, a ``worker_node``
resource. Their dashboard agents listen on the dashboard port + 2 (head) and + 1 (worker), so
they never collide with another Ray on the machine (whose agent takes the default 52365).
The dashboard and Jobs API listen on 127.0.0.1 only, and token authentication is on
(``RAY_AUTH_MODE=token``) with a fresh token in ``<dir>/auth_token`` (mode 600); Ray's internal
gRPC services cannot be bound to loopback, and every request to them must carry the token.
``down`` stops only the processes whose command line names this cluster's temp dirs, never
other Ray instances on the machine (``ray stop`` would stop them all).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

HOST = "127.0.0.1"


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
          "--disable-usage-stats"], env)
    _ray(["start", f"--address={HOST}:{port}", f"--node-ip-address={HOST}", "--num-cpus=1",
          '--resources={"worker_node": 1}', f"--temp-dir={root / 'worker'}",
          f"--dashboard-agent-listen-port={dashboard_port + 1}", "--disable-usage-stats"], env)
    state = {"address": f"{HOST}:{port}", "dashboard": f"http://{HOST}:{dashboard_port}",
             "temp_root": str(root), "token_path": str(token)}
    (folder / "cluster.json").write_text(json.dumps(state, indent=2))
    _wait_for_nodes(state["address"], env, count=2)
    return state


def down(folder: Path, timeout: float = 10) -> int:
    """Stop this cluster's processes (TERM, then KILL); return how many were signalled."""
    root = str(temp_root(folder))
    pids = node_pids(root)
    _signal(pids, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while node_pids(root) and time.monotonic() < deadline:
        time.sleep(0.2)
    _signal(node_pids(root), signal.SIGKILL)
    return len(pids)


def node_pids(pattern: str) -> list[int]:
    """Pids of processes whose command line contains ``pattern`` (a node's temp dir)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pattern in text and int(cmdline.parent.name) != os.getpid():
            pids.append(int(cmdline.parent.name))
    return pids


def raylet_pid(folder: Path, node: str) -> int:
    """The raylet of the ``head`` or ``worker`` node: the process that *is* that node."""
    pattern = str(temp_root(folder) / node)
    for pid in node_pids(pattern):
        if "raylet/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return pid
    raise ProcessLookupError(f"no raylet running for the {node} node under {pattern}")


def _ray(arguments: list[str], env: dict[str, str]) -> None:
    ray = Path(sys.executable).with_name("ray")
    result = subprocess.run([str(ray), *arguments], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"error: ray {arguments[0]} failed: {result.stderr.strip()[-2000:]}")


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


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def main(argv: list[str] | None = None) -> int:
    """``up`` or ``down`` the local cluster."""
    parser = argparse.ArgumentParser(prog="cluster.local", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=Path(".cluster"))
    parser.add_argument("--port", type=int, default=6390)
    parser.add_argument("--dashboard-port", type=int, default=8265)
    args = parser.parse_args(argv)
    if args.action == "down":
        print(f"stopped {down(args.dir)} processes of the cluster in {args.dir}")
        return 0
    state = up(args.dir, args.port, args.dashboard_port)
    print(f"two-node Ray cluster up: GCS {state['address']}, dashboard and Jobs API "
          f"{state['dashboard']} (token in {state['token_path']})")
    print(f"submit with: make submit   (or RAY_AUTH_MODE=token "
          f"RAY_AUTH_TOKEN_PATH={state['token_path']} python -m jobs.submit sweep ...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
