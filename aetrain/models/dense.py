"""Stacked (fully connected) autoencoder, as the seed's dropout and sparse ones."""

from __future__ import annotations

import keras
from keras import ops

from aetrain.config import RunConfig
from aetrain.config.data_spec import spec_for
from aetrain.models.noise import build_noise_layer
from aetrain.models.sparsity import build_sparsity_layers, coding_activation

# The output layer computes in float32 under every precision policy: a bfloat16 image (8 bits of
# mantissa) cannot resolve MSEs near 1e-2, and the loss must see float32 (Keras mixed-precision guide).
OUTPUT_DTYPE = "float32"


def dense_trunk(cfg: RunConfig) -> list[keras.layers.Layer]:
    """Flatten -> [noise] -> Dense(hidden...): what every dense encoder runs before its coding head
    (the plain autoencoder's, the VAE's and the dense families')."""
    variant = cfg.variant
    layers = [keras.layers.Flatten()]
    noise = build_noise_layer(cfg.noise, cfg.seed)
    if noise is not None:
        layers.append(noise)
    hidden = [keras.layers.Dense(units, activation=variant.activation) for units in variant.hidden_units]
    return layers + hidden


def build_dense_encoder(cfg: RunConfig) -> keras.Sequential:
    """Flatten -> [noise] -> Dense(hidden...) -> Dense(latent_size) -> [sparsity]."""
    variant = cfg.variant
    layers = [keras.Input(shape=spec_for(cfg.data).image_shape), *dense_trunk(cfg)]
    layers.append(
        keras.layers.Dense(
            cfg.latent_size, activation=coding_activation(cfg.sparsity, variant.activation), name="codings"
        )
    )
    layers += build_sparsity_layers(cfg.sparsity)
    return keras.Sequential(layers, name="encoder")


def build_dense_decoder(cfg: RunConfig, hidden_units: list[int]) -> keras.Sequential:
    """Dense(hidden...) -> Dense(pixels) -> Reshape(image shape): 784 and (28, 28) on Fashion-MNIST."""
    variant = cfg.variant
    spec = spec_for(cfg.data)
    layers = [keras.Input(shape=(cfg.latent_size,))]
    layers += [keras.layers.Dense(units, activation=variant.activation) for units in hidden_units]
    layers += [
        keras.layers.Dense(spec.pixels, activation=variant.output_activation, dtype=OUTPUT_DTYPE),
        keras.layers.Reshape(spec.image_shape, dtype=OUTPUT_DTYPE),
    ]
    return keras.Sequential(layers, name="decoder")


@keras.saving.register_keras_serializable(package="aetrain")
class DenseTranspose(keras.layers.Layer):
    """``activation(x @ W.T + b)``: a Dense layer whose kernel ``W`` is another Dense layer's, transposed.

    Tied weights, as in Geron's book (chapter 17, "Tying Weights"): only the bias ``b`` is this layer's
    own. The kernel is not saved with this layer (the encoder's Dense layer saves it), so a reloaded
    model is tied again by :func:`tie_dense_weights`, which ``aetrain.run_folder.checkpoints.load_checkpoint``
    calls; until then the layer refuses to run. ``units`` is the output width (the tied layer's input
    width), kept in the config so the model can be rebuilt before the tie.
    """

    def __init__(self, units: int, activation: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        object.__setattr__(self, "tied_to", None)  # not tracked: the kernel belongs to the encoder

    def tie(self, dense: keras.layers.Dense) -> None:
        object.__setattr__(self, "tied_to", dense)

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        if self.tied_to is None:
            raise RuntimeError(
                f"{self.name} is not tied to an encoder layer yet: load aetrain checkpoints with "
                "aetrain.run_folder.checkpoints.load_checkpoint, or call "
                "aetrain.models.dense.tie_dense_weights(model)"
            )
        kernel = ops.cast(self.tied_to.kernel, self.compute_dtype)
        return self.activation(ops.matmul(inputs, ops.transpose(kernel)) + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
        }


def tie_dense_weights(model: keras.Model) -> keras.Model:
    """Tie each DenseTranspose of the decoder to its mirror Dense layer of the encoder (in place).

    The decoder's k-th DenseTranspose transposes the encoder's k-th Dense layer counted from the
    coding layer back; a model without DenseTranspose layers is returned untouched.
    """
    try:
        encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    except ValueError:
        return model
    transposes = [layer for layer in decoder.layers if isinstance(layer, DenseTranspose)]
    if transposes:
        dense = [layer for layer in encoder.layers if type(layer) is keras.layers.Dense]
        for transpose, source in zip(transposes, reversed(dense), strict=True):
            transpose.tie(source)
    return model


def build_tied_dense_decoder(cfg: RunConfig, encoder: keras.Sequential) -> keras.Sequential:
    """DenseTranspose per encoder Dense layer, in reverse, -> Reshape(image shape): the mirror, kernels
    shared."""
    variant = cfg.variant
    spec = spec_for(cfg.data)
    dense = [layer for layer in encoder.layers if type(layer) is keras.layers.Dense]
    widths = [spec.pixels, *variant.hidden_units]  # each Dense layer's input width, in encoder order
    layers = [keras.Input(shape=(cfg.latent_size,))]
    for index in reversed(range(len(dense))):
        last = index == 0
        layers.append(
            DenseTranspose(
                widths[index],
                activation=variant.output_activation if last else variant.activation,
                dtype=OUTPUT_DTYPE if last else None,
            )
        )
        layers[-1].tie(dense[index])
    layers.append(keras.layers.Reshape(spec.image_shape, dtype=OUTPUT_DTYPE))
    return keras.Sequential(layers, name="decoder")


def build_dense_autoencoder(cfg: RunConfig) -> keras.Sequential:
    """The decoder mirrors the encoder's hidden layers (with ``tied_weights``, their kernels too)."""
    encoder = build_dense_encoder(cfg)
    if cfg.variant.tied_weights:
        decoder = build_tied_dense_decoder(cfg, encoder)
    else:
        decoder = build_dense_decoder(cfg, list(reversed(cfg.variant.hidden_units)))
    inputs = keras.Input(shape=spec_for(cfg.data).image_shape)
    return keras.Sequential([inputs, encoder, decoder], name="dense_autoencoder")
