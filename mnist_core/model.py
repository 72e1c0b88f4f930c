"""The tutorial's dense network, built from a ``ModelConfig``.

With the default config on 784 inputs this is exactly the tutorial's model: Dense(10, sigmoid)
with 7,850 parameters, then Dense(10, softmax) with 110, 7,960 in all. It is preceded by a
``Rescaling(1 / pixel_max)`` layer (no parameters) that does the tutorial's ``x / 255`` inside
the model, so a saved model says which pixel values it takes and scoring cannot get it wrong.
"""

from __future__ import annotations

from mnist_core.config import NUM_CLASSES, ModelConfig


def build_model(config: ModelConfig, input_dim: int, pixel_max: float = 255.0,
                num_classes: int = NUM_CLASSES):
    """Return an uncompiled ``keras.Sequential`` for flattened images of ``input_dim`` raw
    pixels in [0, ``pixel_max``]."""
    import keras

    layers = [keras.Input(shape=(input_dim,), name="pixels"),
              keras.layers.Rescaling(1.0 / pixel_max, name="pixel_scale")]
    for index, units in enumerate(config.hidden_units, start=1):
        layers.append(
            keras.layers.Dense(units, activation=config.activation, name=f"hidden_{index}"))
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="output"))
    return keras.Sequential(layers, name="dense_mnist")

