"""TensorFlow device and thread set-up, done once per process before TensorFlow starts.

Called by jobs on the driver and by Ray workers on their first trial. It pins Keras to the
TensorFlow backend, hides GPUs from processes that were granted none (recent Ray no longer
blanks ``CUDA_VISIBLE_DEVICES`` for such tasks, and TensorFlow would otherwise grab every GPU),
turns on memory growth so fractional-GPU trials can share a card, and caps TensorFlow's
thread pools at the CPUs this process was given so parallel trials do not oversubscribe.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_state: dict[str, object] = {}


@dataclass(frozen=True)
class DeviceSetup:
    """What ``configure`` did: the GPUs TensorFlow sees and how long the set-up took."""

    gpus: tuple[str, ...]
    threads: int
    seconds: float  # 0 after the first call in a process


def configure(num_cpus: int | None = None, use_gpu: bool = True) -> DeviceSetup:
    """Set up TensorFlow for this process; later calls return the first set-up unchanged."""
    if "setup" in _state:
        previous = _state["setup"]
        return DeviceSetup(previous.gpus, previous.threads, 0.0)
    start = time.perf_counter()
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not use_gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import tensorflow as tf

    threads = max(1, int(num_cpus or os.cpu_count() or 1))
    gpus = tf.config.list_physical_devices("GPU") if use_gpu else []
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        # TensorFlow already ran in this process (a notebook, a test): its settings stay.
        threads = tf.config.threading.get_intra_op_parallelism_threads()
    import keras  # noqa: F401 - imported here so its start-up is paid once, in the set-up

    setup = DeviceSetup(tuple(gpu.name for gpu in gpus), threads,
                        time.perf_counter() - start)
    _state["setup"] = setup
    return setup
