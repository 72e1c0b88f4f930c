"""Submit a sweep or scoring job to a Ray cluster through Ray's Jobs API, and follow it.

    python -m jobs.submit sweep --config configs/quick.toml --out runs
    python -m jobs.submit score --model runs/latest --input 'data/*.parquet' \\
        --out scores/x --address http://127.0.0.1:8265 --no-wait

Everything after the job name that is not --address, --no-wait or --submission-id is passed
to the job unchanged, except a relative local --out (and --model, --input, --config), which is
made absolute: the job runs in a copy of the project on the cluster, so a relative path would
land in that copy. On a multi-node cluster use a shared mount or an s3:// / gs:// URI for --out.

The address defaults to $RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265. With token
authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (make submit does this for
the local cluster). Exit code: the job's own (0 ok, 1 some trials or images failed, 2 a bad
config, flag or file, 3 a corrupt file), so a RayJob or cron wrapper can tell a bad config from
failed trials; 1 when the job was stopped or its driver died without one.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shlex
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import yaml

from jobs._cli import EXIT_CORRUPT, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, Parser, run
from mnist_core import storage
from mnist_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_ENV = ROOT / "cluster" / "runtime_env.yaml"
PATH_FLAGS = ("--out", "--model", "--input", "--config")


def parse_args(argv: Sequence[str] | None):
    """Parse the submitter's own flags; the rest belong to the job."""
    parser = Parser(prog="jobs.submit", description=__doc__.split("\n")[0])
    parser.add_argument("job", choices=["sweep", "score"])
    parser.add_argument("--address",
                        default=os.environ.get("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8265"))
    parser.add_argument("--no-wait", action="store_true", help="submit and return at once")
    parser.add_argument("--submission-id", default=None)
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Submit the job; with waiting, stream its logs and return its outcome as exit code."""
    args, job_args = parse_args(argv)
    entrypoint = f"python -m jobs.{args.job} " + shlex.join(absolute_paths(job_args))
    submission_id = args.submission_id or (
        f"mnist-{args.job}-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}")
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(args.address)
    _submit(client, entrypoint=entrypoint, submission_id=submission_id,
            runtime_env=runtime_env(), metadata={"job": args.job, "user": getpass.getuser()})
    print(f"submitted {submission_id} to {args.address}: {entrypoint}", flush=True)
    if args.no_wait:
        return 0
    asyncio.run(_stream_logs(client, submission_id))
    info = client.get_job_info(submission_id)
    detail = "" if info.status.value == "SUCCEEDED" else f": {info.message}"
    print(f"job {submission_id} {info.status.value}{detail}")
    return job_exit_code(info.status.value, info.driver_exit_code)


def job_exit_code(status: str, driver_exit_code: int | None) -> int:
    """The job's own exit code (0 ok, 1 some trials or images failed, 2 bad input, 3 corrupt
    file) when its driver reported one; otherwise 0 for SUCCEEDED and 1 for anything else
    (stopped, or a driver that died without one)."""
    if driver_exit_code in (EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_CORRUPT):
        return driver_exit_code
    return EXIT_OK if status == "SUCCEEDED" else EXIT_PARTIAL


def runtime_env() -> dict:
    """The runtime environment in cluster/runtime_env.yaml, with working_dir made absolute."""
    environment = yaml.safe_load(RUNTIME_ENV.read_text())
    if not isinstance(environment, dict):
        raise ConfigError(f"{RUNTIME_ENV}: must be a YAML mapping")
    environment["working_dir"] = str((ROOT / environment.get("working_dir", ".")).resolve())
    return environment


def absolute_paths(job_args: list[str]) -> list[str]:
    """Make relative local paths of the job's path flags absolute; leave URIs alone."""
    result = list(job_args)
    for index, value in enumerate(result):
        flag, _, inline = value.partition("=")
        if flag not in PATH_FLAGS:
            continue
        if inline:
            result[index] = f"{flag}={_absolute(inline)}"
        elif index + 1 < len(result):
            result[index + 1] = _absolute(result[index + 1])
    return result


def _absolute(path: str) -> str:
    return path if storage.is_uri(path) or os.path.isabs(path) else os.path.abspath(path)


def _submit(client, retry_seconds: float = 60, **job) -> None:
    """Submit, retrying while a just-started cluster's job agent is not up yet."""
    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            client.submit_job(**job)
            return
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(2)


async def _stream_logs(client, submission_id: str) -> None:
    async for lines in client.tail_job_logs(submission_id):
        print(lines, end="", flush=True)


if __name__ == "__main__":
    sys.exit(run(main))
