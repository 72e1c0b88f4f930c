"""Test helpers for the local cluster (``cluster.local``): free ports, a node's processes."""

import contextlib
import socket
from pathlib import Path

from cluster import local


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (the dashboard's port
    and the three after it are the cluster's; another process may hold any of them)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count <= 65536 and all(_free(first + step) for step in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def node_pids(root: str) -> list[int]:
    """Pids of the processes of the node whose temp dir is ``root``."""
    return [process.pid for process in local.cluster_processes(root)]


def raylet_pid(folder: Path, node: str) -> int:
    """The raylet of the ``head`` or ``worker`` node: the process that *is* that node."""
    import psutil

    root = str(local.temp_root(folder) / node)
    for process in local.cluster_processes(root):
        with contextlib.suppress(psutil.Error):
            if any("raylet/raylet" in part for part in process.cmdline()):
                return process.pid
    raise ProcessLookupError(f"no raylet running for the {node} node under {root}")
