"""A trained autoencoder in forms that run without aetrain: Keras files, SavedModels, TensorFlow Lite.

The exported models compute what the checkpoint computes at inference, from the same weights, with
Keras's built-in layers only:

- the sparsity layers (an identity at inference that adds a training penalty) are left out;
- a VAE's encoder outputs ``[mean, log_var]``: its LatentLoss layer (a training penalty) and Sampling
  layer (the mean at inference) are left out, and its codings are the mean;
- a tied-weights decoder's DenseTranspose layers become plain Dense layers holding the transposed
  encoder kernels.

aetrain's twins of Keras layers become Keras's own (aetrain.models.keras_equivalents): its faster
noise layers (nothing at inference) Keras's GaussianNoise and Dropout with the same settings, its
convolutions for JAX on a CPU Keras's Conv2D, Conv2DTranspose and MaxPool2D.
The Keras files and SavedModels keep the run's precision policy (so they match the checkpoint to the
last bit); encoder.tflite always computes in float32, with TensorFlow Lite's built-in ops only.
Nothing here touches the process; aetrain.commands.export writes the files.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import keras

from aetrain.models.dense import DenseTranspose
from aetrain.models.family import Family
from aetrain.models.keras_equivalents import with_keras_layers
from aetrain.models.sparsity import KLSparsityRegularization

TRAINING_ONLY_LAYERS = (KLSparsityRegularization,)  # identities at inference: left out
INPUT_NAME = "images"  # the input's name in every export (the TFLite and SavedModel signatures too)
EXPORTS = {
    "encoder_keras": "encoder.keras",
    "decoder_keras": "decoder.keras",
    "autoencoder_savedmodel": "autoencoder_savedmodel",
    "encoder_savedmodel": "encoder_savedmodel",
    "encoder_tflite": "encoder.tflite",
}


def standalone_encoder(model: keras.Model, family: Family) -> keras.Model:
    """image -> codings, with the checkpoint's weights: what ``family`` says its encoder serves (a
    VAE: ``[mean, log_var]``), else the encoder's layers without the training-only ones."""
    encoder = with_keras_layers(model.get_layer("encoder"))
    images = keras.Input(shape=model.input_shape[1:], name=INPUT_NAME)
    outputs = family.export_encoder_outputs(encoder)
    if outputs is not None:
        served = keras.Model(encoder.inputs[0], outputs, name="served_codings")
        return keras.Model(images, served(images), name="encoder")
    layers = [layer for layer in encoder.layers if not isinstance(layer, TRAINING_ONLY_LAYERS)]
    return keras.Sequential([images, *layers], name="encoder")


def plain_dense(transpose: DenseTranspose) -> keras.layers.Dense:
    """A built-in Dense layer computing what ``transpose`` computes: kernel W.T, the same bias."""
    kernel = keras.ops.convert_to_numpy(transpose.tied_to.kernel).T
    dense = keras.layers.Dense(
        transpose.units,
        activation=keras.activations.serialize(transpose.activation),
        dtype=transpose.dtype_policy,
        name=transpose.name,
    )
    dense.build((None, kernel.shape[0]))
    dense.set_weights([kernel, keras.ops.convert_to_numpy(transpose.bias)])
    return dense


def standalone_decoder(model: keras.Model) -> keras.Model:
    """codings -> image, built-in layers only (tied kernels copied out, transposed)."""
    decoder = model.get_layer("decoder")
    if not any(isinstance(layer, DenseTranspose) for layer in decoder.layers):
        return with_keras_layers(decoder)
    layers = [plain_dense(layer) if isinstance(layer, DenseTranspose) else layer for layer in decoder.layers]
    return keras.Sequential([keras.Input(shape=decoder.input_shape[1:]), *layers], name="decoder")


def standalone_autoencoder(encoder: keras.Model, decoder: keras.Model) -> keras.Model:
    """image -> reconstruction at inference: decoder(codings), decoder(mean) for a VAE."""
    inputs = keras.Input(shape=encoder.input_shape[1:], name=INPUT_NAME)
    codings = encoder(inputs)
    if isinstance(codings, (list, tuple)):
        codings = codings[0]
    return keras.Model(inputs, decoder(codings), name="autoencoder")


def float32_copy(model: keras.Model) -> keras.Model:
    """The same model computing in float32, nested models included: a mixed-precision run's layers
    compute in bfloat16/float16, which TensorFlow Lite's built-in ops do not take. The weights are
    float32 already and are copied."""
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def _float32_policies(node):
    """A model config with every mixed dtype policy (``mixed_bfloat16``, ``mixed_float16``) -> float32."""
    if isinstance(node, list):
        return [_float32_policies(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("class_name") == "DTypePolicy" and str(node.get("config", {}).get("name", "")).startswith(
        "mixed_"
    ):
        return {**node, "config": {**node["config"], "name": "float32"}}
    return {key: _float32_policies(value) for key, value in node.items()}


def tflite_bytes(model: keras.Model, work_dir: Path) -> bytes:
    """``model`` in float32 as TensorFlow Lite built-in ops (via a SavedModel under ``work_dir``)."""
    import tensorflow as tf

    float32_copy(model).export(str(work_dir), verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(str(work_dir)).convert()


def export_model(model: keras.Model, family: Family, out_dir: Path) -> dict[str, Path]:
    """Write every export of EXPORTS into ``out_dir`` (existing ones are replaced); return their paths.

    Each file or folder is written beside its final name first and renamed into place, so a failed
    export never leaves a half-written one under the final name.
    """
    from aetrain.run_folder.atomic_files import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {key: out_dir / name for key, name in EXPORTS.items()}
    encoder, decoder = standalone_encoder(model, family), standalone_decoder(model)
    for key, part in (("encoder_keras", encoder), ("decoder_keras", decoder)):
        with atomic_path(paths[key]) as tmp:
            part.save(tmp, overwrite=True)
    autoencoder = standalone_autoencoder(encoder, decoder)
    for key, part in (("autoencoder_savedmodel", autoencoder), ("encoder_savedmodel", encoder)):
        _replace_folder(paths[key], lambda folder, part=part: part.export(str(folder), verbose=False))
    work_dir = Path(tempfile.mkdtemp(dir=out_dir, prefix=".tflite-partial-"))
    try:
        with atomic_path(paths["encoder_tflite"]) as tmp:
            tmp.write_bytes(tflite_bytes(encoder, work_dir / "float32_encoder"))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return paths


def _replace_folder(target: Path, write) -> None:
    """``write(folder)`` into a fresh temp folder beside ``target``, then swap it in for ``target``."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-partial-"))
    try:
        shutil.rmtree(tmp)
        write(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
