"""Keras's Conv2D, Conv2DTranspose and MaxPool2D, computed on JAX on a CPU without XLA's CPU
convolutions and window reductions.

Keras's JAX layers compile to XLA's CPU convolutions and ``reduce_window``, whose gradients train the
seed's conv autoencoder at a third of TensorFlow's speed. The same arithmetic as matrix products over
image patches, and pooling as a reshape and a max, runs on XLA's matrix kernels instead
(docs/performance.md). The layers keep Keras's weights, settings and outputs (to float rounding); on
another backend or device, or with settings these paths do not cover, they are Keras's layers as they
are. ``keras_equivalent`` gives the plain Keras layer for exports that must load without aetrain.
"""

from __future__ import annotations

import functools

import keras


@functools.cache
def jax_on_cpu() -> bool:
    """Whether Keras runs on JAX with a CPU as its default device: where these paths pay."""
    if keras.config.backend() != "jax":
        return False
    import jax

    return jax.default_backend() == "cpu"


def _patch_path_applies(layer) -> bool:
    """The settings the patch paths compute; the rest go to Keras."""
    return (
        jax_on_cpu()
        and layer.data_format == "channels_last"
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.padding in ("same", "valid")
    )


def conv_as_matmul(inputs, kernel, padding: str):
    """A stride-1 2-D convolution (NHWC, kernel HWIO) as every output's patch times the kernel as one
    matrix."""
    from jax import numpy as jnp

    kernel = jnp.asarray(kernel)
    rows, columns, channels, filters = kernel.shape
    if padding == "same":  # TensorFlow's split: the odd pixel after
        top, left = (rows - 1) // 2, (columns - 1) // 2
        inputs = jnp.pad(inputs, ((0, 0), (top, rows - 1 - top), (left, columns - 1 - left), (0, 0)))
    batch, height, width, _ = inputs.shape
    out_height, out_width = height - rows + 1, width - columns + 1
    patches = jnp.concatenate(
        [inputs[:, y : y + out_height, x : x + out_width, :] for y in range(rows) for x in range(columns)],
        axis=-1,
    )  # (row, column, channel) order: the kernel's own, flattened
    product = jnp.dot(patches.reshape(-1, rows * columns * channels), kernel.reshape(-1, filters))
    return product.reshape(batch, out_height, out_width, filters)


def conv_transpose_as_matmul(inputs, kernel, strides: tuple[int, int], padding: str):
    """A 2-D transposed convolution (NHWC; Keras's kernel layout: rows, columns, out, in) as one matrix
    product giving each input pixel's share of its kernel-sized output window, each kernel position's
    shares then spread ``strides`` apart (interior padding) and summed."""
    from jax import lax
    from jax import numpy as jnp

    kernel = jnp.asarray(kernel)
    rows, columns, filters, channels = kernel.shape
    batch, height, width, _ = inputs.shape
    shares = jnp.dot(
        inputs.reshape(-1, channels), jnp.transpose(kernel, (3, 0, 1, 2)).reshape(channels, -1)
    ).reshape(batch, height, width, rows, columns, filters)
    zero = jnp.zeros((), shares.dtype)
    stride_y, stride_x = strides
    outputs = sum(
        lax.pad(
            shares[:, :, :, y, x, :],
            zero,
            ((0, 0, 0), (y, rows - 1 - y, stride_y - 1), (x, columns - 1 - x, stride_x - 1), (0, 0, 0)),
        )
        for y in range(rows)
        for x in range(columns)
    )  # (height - 1) * stride + kernel rows, and so for columns: Keras's "valid" size
    if padding == "same":  # height * stride: TensorFlow's crop, the odd pixel after
        top, left = (rows - stride_y) // 2, (columns - stride_x) // 2
        outputs = outputs[:, top : top + height * stride_y, left : left + width * stride_x]
    return outputs


@keras.saving.register_keras_serializable(package="aetrain")
class PatchConv2D(keras.layers.Conv2D):
    """Keras's Conv2D; on JAX on a CPU, a stride-1 one computes as :func:`conv_as_matmul`."""

    def convolution_op(self, inputs, kernel):
        if self.groups == 1 and tuple(self.strides) == (1, 1) and _patch_path_applies(self):
            return conv_as_matmul(inputs, kernel, self.padding)
        return super().convolution_op(inputs, kernel)

    def keras_equivalent(self) -> keras.layers.Layer:
        return keras.layers.Conv2D.from_config(self.get_config())


@keras.saving.register_keras_serializable(package="aetrain")
class PatchConv2DTranspose(keras.layers.Conv2DTranspose):
    """Keras's Conv2DTranspose; on JAX on a CPU, one without output padding whose kernel is at least
    as large as its strides computes as :func:`conv_transpose_as_matmul`."""

    def call(self, inputs):
        covered = all(k >= s for k, s in zip(self.kernel_size, self.strides, strict=True))
        if not (covered and self.output_padding is None and _patch_path_applies(self)):
            return super().call(inputs)
        outputs = conv_transpose_as_matmul(inputs, self.kernel, tuple(self.strides), self.padding)
        if self.use_bias:
            outputs = outputs + self.bias
        return outputs if self.activation is None else self.activation(outputs)

    def keras_equivalent(self) -> keras.layers.Layer:
        return keras.layers.Conv2DTranspose.from_config(self.get_config())


@keras.saving.register_keras_serializable(package="aetrain")
class ReshapeMaxPool2D(keras.layers.MaxPool2D):
    """Keras's MaxPool2D; on JAX on a CPU, windows that tile the image (strides equal to the pool size,
    "valid" padding) are a reshape and a max."""

    def call(self, inputs):
        window_rows, window_columns = self.pool_size
        tiled = tuple(self.strides) == (window_rows, window_columns) and self.padding == "valid"
        if not (tiled and jax_on_cpu() and self.data_format == "channels_last"):
            return super().call(inputs)
        _, height, width, channels = inputs.shape
        rows, columns = height // window_rows, width // window_columns
        inputs = inputs[:, : rows * window_rows, : columns * window_columns]
        windows = keras.ops.reshape(inputs, (-1, rows, window_rows, columns, window_columns, channels))
        return keras.ops.max(windows, axis=(2, 4))

    def keras_equivalent(self) -> keras.layers.Layer:
        return keras.layers.MaxPool2D.from_config(self.get_config())
