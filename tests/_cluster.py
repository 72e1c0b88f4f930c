"""Test helpers for the local cluster (``cluster.local``): find a node's processes."""

import contextlib
from pathlib import Path

from cluster import local


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
