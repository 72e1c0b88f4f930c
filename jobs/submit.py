"""Submit a sweep or scoring job to a Ray cluster through Ray's Jobs API, and follow it.

    python -m jobs.submit sweep --config configs/quick.toml --out runs
    python -m jobs.submit score --model runs/latest --input 'data/*.parquet' \\
        --out scores/x --address http://127.0.0.1:8265 --no-wait

Everything after the job name that is not one of this command's own flags is the job's own and
passes to it unchanged (``python -m jobs.submit sweep --help`` lists them), except paths: the
job runs in Ray's copy of the project on the cluster, which is deleted with the job, so a
relative --out, --model, --input, --tensorboard or sqlite --mlflow store (and a sweep's default
--out, ``runs``) is made absolute against this working directory — results land where you
asked, and ``runs/latest`` beside them. A --config inside the project is passed relative to it
(the copy holds it). A cluster on another machine cannot write this machine's folders: a local
--out, --tensorboard or sqlite store is then refused with one line (exit 2); use an s3:// or
gs:// URI, or pass --shared-mount when the path is a folder every node mounts.

The address defaults to $RAY_API_SERVER_ADDRESS, else http://127.0.0.1:8265. With token
authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (make submit does this for
the local cluster). Exit code: the job's own (0 ok, 1 some trials or images failed, 2 a bad
config, flag or file, 3 a corrupt file), so a RayJob or cron wrapper can tell a bad config from
failed trials; 1 when the job was stopped or its driver died without one.
"""

from __future__ import annotations

import asyncio
import contextlib
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

from jobs._cli import EXIT_CORRUPT, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, Parser, run, summary
from mnist_core import storage
from mnist_core.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_ENV = ROOT / "cluster" / "runtime_env.yaml"
PATH_FLAGS = ("--out", "--model", "--input", "--config", "--tensorboard")
WRITTEN_FLAGS = ("--out", "--tensorboard", "--mlflow")  # what the job writes on the cluster
DEFAULT_OUT = {"sweep": "runs"}  # jobs.sweep's own default --out
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def build_parser() -> Parser:
    """The job's flags (also the source of docs/reference.md)."""
    parser = Parser(prog="jobs.submit", description=summary(__doc__), add_help=False,
                    epilog="Every other flag is the job's own and passes through unchanged.")
    parser.add_argument("job", choices=["sweep", "score"], help="the job to run on the cluster")
    parser.add_argument("--address",
                        default=os.environ.get("RAY_API_SERVER_ADDRESS", "http://127.0.0.1:8265"),
                        help="the cluster's dashboard / Jobs API (default: "
                             "$RAY_API_SERVER_ADDRESS, else the local cluster's)")
    parser.add_argument("--no-wait", action="store_true",
                        help="submit and return at once (prints how to follow the job)")
    parser.add_argument("--submission-id", default=None,
                        help="the job's id on the cluster (default: mnist-<job>-<time>-<random>)")
    parser.add_argument("--shared-mount", action="store_true",
                        help="local output paths are on a folder every node of a remote "
                             "cluster mounts (NFS, EFS, Filestore): allow them")
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    return parser


def parse_args(argv: Sequence[str] | None):
    """Parse the submitter's own flags; the rest belong to the job. ``--help`` with a job
    name shows the job's own flags too."""
    parser = build_parser()
    args, job_args = parser.parse_known_args(argv)
    if args.help:
        _print_help(parser, args.job)
    return args, job_args


def _print_help(parser: Parser, job: str) -> None:
    import importlib

    parser.print_help()
    job_parser = importlib.import_module(f"jobs.{job}")
    print(f"\nThe {job} job's own flags, passed through to it:\n")
    with contextlib.suppress(SystemExit):
        job_parser.parse_args(["--help"])
    sys.exit(EXIT_OK)


def main(argv: Sequence[str] | None = None) -> int:
    """Submit the job; with waiting, stream its logs and return its outcome as exit code."""
    args, job_args = parse_args(argv)
    job_args = absolute_paths(with_default_out(args.job, job_args))
    if not (args.shared_mount or is_local_cluster(args.address)):
        refuse_local_outputs(job_args, args.address)
    entrypoint = f"python -m jobs.{args.job} " + shlex.join(job_args)
    submission_id = args.submission_id or (
        f"mnist-{args.job}-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}")
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        client = JobSubmissionClient(args.address)
        _submit(client, entrypoint=entrypoint, submission_id=submission_id,
                runtime_env=runtime_env(), metadata={"job": args.job, "user": getpass.getuser()})
    except AuthenticationError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "refused"
        raise ConfigError(
            f"{args.address}: the cluster refused this client's token ({reason}); set "
            "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN, or RAY_AUTH_TOKEN_PATH to the token file "
            "(make cluster-up writes .cluster/auth_token)") from None
    print(f"submitted {submission_id} to {args.address}: {entrypoint}", flush=True)
    if args.no_wait:
        ray = Path(sys.executable).parent / "ray"
        print(f"follow it with:  {ray} job logs --follow {submission_id} --address "
              f"{args.address}\nstatus:          {ray} job status {submission_id} --address "
              f"{args.address}\nstop it with:    {ray} job stop {submission_id} --address "
              f"{args.address}")
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


def with_default_out(job: str, job_args: list[str]) -> list[str]:
    """The job's arguments with its default ``--out`` spelled out, when it has one and none
    was given (so that it can be made absolute here, not left to Ray's copy)."""
    if job not in DEFAULT_OUT or any(_flag_value(job_args, "--out")):
        return list(job_args)
    return [*job_args, "--out", DEFAULT_OUT[job]]


def absolute_paths(job_args: list[str]) -> list[str]:
    """Make relative local paths of the job's path flags (and a relative sqlite MLflow store)
    absolute, a config inside the project relative to it; leave URIs alone."""
    result = list(job_args)
    for index, value in enumerate(result):
        flag, _, inline = value.partition("=")
        if flag not in (*PATH_FLAGS, "--mlflow"):
            continue
        if inline:
            result[index] = f"{flag}={_absolute(flag, inline)}"
        elif index + 1 < len(result):
            result[index + 1] = _absolute(flag, result[index + 1])
    return result


def is_local_cluster(address: str) -> bool:
    """Whether the Jobs API at ``address`` is on this machine (so are its nodes' disks)."""
    from urllib.parse import urlparse

    host = urlparse(address if "://" in address else f"http://{address}").hostname or ""
    return host in LOCAL_HOSTS


def refuse_local_outputs(job_args: list[str], address: str) -> None:
    """A cluster on another machine writes its own disks: a local output path there would
    be lost with its pods. ``ConfigError`` names the first such flag."""
    for flag in WRITTEN_FLAGS:
        for value in _flag_value(job_args, flag):
            local = value.startswith("sqlite:") if flag == "--mlflow" else not storage.is_uri(
                value)
            if local:
                raise ConfigError(
                    f"{flag} {value}: a path on this machine, but the cluster at {address} runs "
                    "elsewhere and would write it on its own nodes (lost with them); use an "
                    "s3:// or gs:// URI (an MLflow server for --mlflow), or pass --shared-mount "
                    "if every node mounts that folder")


def _flag_value(job_args: list[str], flag: str) -> list[str]:
    values = []
    for index, value in enumerate(job_args):
        if value == flag and index + 1 < len(job_args):
            values.append(job_args[index + 1])
        elif value.startswith(f"{flag}="):
            values.append(value.partition("=")[2])
    return values


def _absolute(flag: str, path: str) -> str:
    if flag == "--mlflow":
        prefix = "sqlite:///"
        if not path.startswith(prefix) or path.startswith(prefix + "/"):
            return path
        return prefix + os.path.abspath(path.removeprefix(prefix))
    if storage.is_uri(path):
        return path
    absolute = Path(os.path.abspath(path))
    if flag == "--config" and absolute.is_relative_to(ROOT):
        return str(absolute.relative_to(ROOT))  # the job's working dir is the project's copy
    return path if os.path.isabs(path) else str(absolute)


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
