"""mnist_core: the Keras first-network MNIST tutorial as a small library.

Importing this package starts nothing: no Ray, no TensorFlow, no argument parsing.
Each stage of the pipeline lives in its own module, named after its noun:
``config`` → ``data`` → ``model`` → ``training`` → ``evaluation`` → ``trial`` → ``reports``,
with ``sweep`` and ``scoring`` orchestrating them on Ray.

Imports sit at the top of every module, with one exception: heavy libraries (TensorFlow and
Keras, Ray, Plotly, Optuna, MLflow, boto3) and the modules that import them at once
(``sweep.worker``) are imported inside the function that needs them, so a job prints its
first line, and a config or folder is checked, before any of them loads.
"""

__version__ = "0.1.0"
