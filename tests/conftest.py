"""Shared fixtures. Run the suite with ``make test`` (or ``.venv/bin/python -m pytest``).

Tests use real TensorFlow, real Ray and real files in ``tmp_path``; data is generated here or
comes from scikit-learn's bundled digits, so the suite runs offline.
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

