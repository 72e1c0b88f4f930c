"""mnist_core: the Keras first-network MNIST tutorial as a small library.

Importing this package starts nothing: no Ray, no TensorFlow, no argument parsing.
Each stage of the pipeline lives in its own module, named after its noun:
``config`` → ``data`` → ``model`` → ``training`` → ``evaluation`` → ``trial`` → ``reports``,
with ``sweep`` and ``scoring`` orchestrating them on Ray.
"""

__version__ = "0.1.0"
