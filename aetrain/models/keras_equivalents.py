"""aetrain's twins of Keras layers (the noise layers' cheaper random numbers, the convolutions for
JAX on a CPU) swapped back for Keras's own: for exports that must load without aetrain, and for the
book's recipe in the benchmark. A twin says what it stands for with ``keras_equivalent()``."""

from __future__ import annotations

import keras


def with_keras_layers(model: keras.Model) -> keras.Model:
    """``model`` with Keras's own layer in place of each twin, nested models included: a copy, weights
    included (``model`` itself when it has no twin). Layers are copied from their configs, so a
    tied-weights decoder would lose its tie: pass its encoder, or its untied copy."""
    if not any(hasattr(layer, "keras_equivalent") for layer in model._flatten_layers()):
        return model

    def keras_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        if hasattr(layer, "keras_equivalent"):
            return layer.keras_equivalent()
        return layer.__class__.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=keras_layer, recursive=True)
    copy.set_weights(model.get_weights())
    return copy
