"""Test helper: the lines that must never reach a user's console (library noise)."""

import re

NOISE = [
    re.compile(r"^[IWEF]\d{4} "),                 # absl/glog lines from TensorFlow or Ray's C++
    re.compile(r"absl::InitializeLog"),
    re.compile(r"cuInit|cuda_platform|cudart_stub|oneDNN"),
    re.compile(r"Ray deduplicates logs|repeated \d+x across cluster"),
    re.compile(r"core_worker\.cc|has constructor arguments in the object store"),
    re.compile(r"Progress bars disabled|Token authentication is enabled"),
    re.compile(r"Started a local Ray instance|\(run_pack_task pid=|\(raylet\)"),
]


def noise(text: str) -> list[str]:
    """The lines of ``text`` that are TensorFlow's, Ray's or MLflow's, not ours."""
    return [line for line in text.splitlines() if any(p.search(line) for p in NOISE)]
