"""Entry points, each run as ``python -m jobs.<name>``: thin wrappers over ``mnist_core``."""
