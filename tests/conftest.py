"""Shared fixtures. Run the suite with ``make test`` (or ``.venv/bin/python -m pytest``).

Tests use real TensorFlow, real Ray and real files in ``tmp_path``; data is generated here or
comes from scikit-learn's bundled digits, so the suite runs offline. ``make test`` runs it on
two pytest-xdist workers, a module at a time (``--dist loadscope``): a module-scoped fixture (a
two-node cluster, an MLflow server, a sweep) is set up once, by the worker that runs the module.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from mnist_core.config import DataConfig  # noqa: E402
from mnist_core.data import load_dataset  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """The embedded digits data with a 10% validation split."""
    return load_dataset(DataConfig(dataset="digits", validation_split=0.1, seed=0))


@pytest.fixture
def mnist_like():
    """A small MNIST-shaped data set: uint8 28×28 images, labels 0–9, 200 train / 50 test."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
        "y_train": np.arange(200, dtype=np.uint8) % 10,
        "x_test": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "y_test": np.arange(50, dtype=np.uint8) % 10,
    }


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray with 2 CPUs, shared by every test that needs one."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def s3_server():
    """A real S3-compatible server (moto's server mode) on 127.0.0.1, with a bucket."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    environment = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                   "AWS_DEFAULT_REGION": "us-east-1",
                   "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    boto3.client("s3").create_bucket(Bucket="mnist")
    yield environment
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()
