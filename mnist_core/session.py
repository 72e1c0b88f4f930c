"""Connecting to Ray: a given address, ``RAY_ADDRESS``, or a local Ray bound to loopback.

Workers get ``KERAS_BACKEND=tensorflow`` through the job's runtime environment, so every node
builds models the same way whatever its own environment says.
"""

from __future__ import annotations

import os

WORKER_ENV = {"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}


def connect(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connect this process to Ray (once) and return a short description of where."""
    import ray

    if ray.is_initialized():
        return "existing Ray session"
    address = address or os.environ.get("RAY_ADDRESS") or None
    runtime_env = {"env_vars": WORKER_ENV}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        return f"Ray cluster at {address}"
    ray.init(num_cpus=num_cpus, runtime_env=runtime_env, dashboard_host="127.0.0.1",
             include_dashboard=False, log_to_driver=True)
    return "local Ray (127.0.0.1)"
