"""The typed schema of an aetrain run, and the one place where a composed config is checked.

Hydra composes YAML from ``conf/``; :func:`validate` turns that into a :class:`RunConfig` of plain
dataclasses or raises :class:`ConfigError` naming the key, the value and what is allowed. Everything
downstream trusts the ``RunConfig`` it is given. This module must not import TensorFlow: a typo is
reported before the slow import starts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, InterpolationResolutionError, OmegaConfBaseException

ACTIVATIONS = ("relu", "selu", "elu", "gelu", "tanh", "sigmoid", "swish", "leaky_relu", "linear")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear")
LATENT_LOSS_FORMS = ("log_var", "sigma")
OPTIMIZERS = ("adam", "adamw", "nadam", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "one_cycle")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
STRATEGIES = ("default", "mirrored")  # tf.distribute strategies; aetrain.training.distribution builds them

# The largest integers aetrain takes: NumPy seeds are below 2**32; TensorFlow counts in int32; a
# layer wider than MAX_UNITS (or deeper than MAX_LAYERS) is a typo, not a model for 28x28 images.
MAX_SEED = 2**32 - 1
MAX_COUNT = 2**31 - 1
MAX_UNITS = 2**16
MAX_LAYERS = 64


class ConfigError(ValueError):
    """A config value aetrain refuses; the message is one paragraph a user can act on."""

    def __init__(self, key: str, value: Any, allowed: str, why: str = "") -> None:
        self.key, self.value, self.allowed = key, value, allowed
        reason = f" {why}" if why else ""
        super().__init__(
            f"Invalid config: `{key}` = {value!r}.{reason} Allowed: {allowed}. "
            f"Fix it on the command line (e.g. `aetrain {key}=...`) or in the YAML file under conf/."
        )


# --- the schema: one dataclass per group option ---------------------------------------------


@dataclass
class DenseVariant:
    """Stacked (fully connected) autoencoder; the decoder mirrors ``hidden_units``."""

    name: str = "dense"
    hidden_units: list[int] = field(default_factory=lambda: [100])
    activation: str = "relu"
    output_activation: str = "sigmoid"
    tied_weights: bool = False  # decoder Dense layers reuse the transposed encoder kernels


@dataclass
class ConvVariant:
    """The seed's convolutional autoencoder: three conv+pool stages, a conv coding layer, GAP."""

    name: str = "conv"
    encoder_filters: list[int] = field(default_factory=lambda: [16, 32, 64])
    decoder_start_channels: int = 16
    decoder_filters: list[int] = field(default_factory=lambda: [32, 16])
    activation: str = "relu"
    output_activation: str = "linear"


@dataclass
class VariationalVariant:
    """What every variational variant shares: Gaussian codings and a latent loss weighted by ``beta``.

    Code that treats all VAEs alike (validation, evaluation, generation) checks
    ``isinstance(variant, VariationalVariant)``, never the variant's name.
    """

    name: str = "vae"
    latent_loss: str = "log_var"
    beta: float = 1.0
    kl_warmup_epochs: float = 0.0  # beta rises linearly from 0 over this many epochs, step by step


@dataclass
class VAEVariant(VariationalVariant):
    """Dense variational autoencoder with a Gaussian coding layer (mean and log-variance)."""

    name: str = "vae"
    hidden_units: list[int] = field(default_factory=lambda: [150, 100])
    activation: str = "selu"
    output_activation: str = "sigmoid"


@dataclass
class ConvVAEVariant(ConvVariant, VariationalVariant):
    """The conv autoencoder's layers with Gaussian codings: conv stages -> Flatten -> (mean, log_var)."""

    name: str = "conv_vae"


@dataclass
class NoNoise:
    name: str = "none"


@dataclass
class GaussianNoise:
    name: str = "gaussian"
    stddev: float = 0.2


@dataclass
class DropoutNoise:
    name: str = "dropout"
    rate: float = 0.5


@dataclass
class NoSparsity:
    name: str = "none"


@dataclass
class L1Sparsity:
    """``weight * sum|codings|`` per example (Keras divides activity penalties by the batch size)."""

    name: str = "l1"
    weight: float = 1e-4


@dataclass
class KLSparsity:
    """``weight * KL(target || batch-mean activation)`` summed over coding units, per batch."""

    name: str = "kl"
    target: float = 0.1
    weight: float = 5e-3


@dataclass
class DataConfig:
    """A data set with a test set of its own (fashion_mnist, mnist, cifar10): aetrain.data.specs."""

    name: str = "fashion_mnist"
    dir: str | None = None
    limit: int | None = None
    val_size: int = 5000
    test_limit: int | None = None


@dataclass
class DigitsData:
    """scikit-learn's digits: no files, no test set of its own; sizes below 1 are fractions."""

    name: str = "digits"
    limit: int | None = None
    val_size: float = 180
    test_size: float = 360
    split_seed: int = 0
    test_limit: int | None = None


@dataclass
class ImageFolderData:
    """A folder of one's own PNG/JPEG images (class sub-folders optional), resized to image_size."""

    name: str = "image_folder"
    dir: str | None = None
    image_size: list[int] = field(default_factory=lambda: [28, 28])
    channels: int = 1
    limit: int | None = None
    val_size: float = 0.1
    test_size: float = 0.1
    split_seed: int = 0
    test_limit: int | None = None


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    schedule: str = "one_cycle"
    warmup_epochs: float = 0.0
    weight_decay: float = 0.0
    precision: str = "auto"
    jit_compile: bool = False
    run_eagerly: bool = False
    steps_per_execution: int = 1
    batch_splits: Any = "auto"  # "auto" or an integer >= 1 (aetrain.training.batch_splits)
    intra_op_threads: int | None = None
    inter_op_threads: int | None = None
    deterministic: bool = False
    progress: bool = True
    grid_images: int = 10
    resume: str | None = None
    strategy: str = "default"


VARIANT_SCHEMAS = {
    "dense": DenseVariant,
    "conv": ConvVariant,
    "vae": VAEVariant,
    "conv_vae": ConvVAEVariant,
}
NOISE_SCHEMAS = {"none": NoNoise, "gaussian": GaussianNoise, "dropout": DropoutNoise}
SPARSITY_SCHEMAS = {"none": NoSparsity, "l1": L1Sparsity, "kl": KLSparsity}
DATA_SCHEMAS = {
    "fashion_mnist": DataConfig,
    "mnist": DataConfig,
    "cifar10": DataConfig,
    "digits": DigitsData,
    "image_folder": ImageFolderData,
}

Variant = DenseVariant | ConvVariant | VAEVariant | ConvVAEVariant
Noise = NoNoise | GaussianNoise | DropoutNoise
Sparsity = NoSparsity | L1Sparsity | KLSparsity
Data = DataConfig | DigitsData | ImageFolderData

TOP_LEVEL_KEYS = {"variant", "noise", "sparsity", "data", "trainer", "latent_size", "seed"}


@dataclass
class RunConfig:
    """Everything one training run needs, checked."""

    variant: Variant
    noise: Noise
    sparsity: Sparsity
    data: Data
    trainer: TrainerConfig
    latent_size: int = 30
    seed: int = 42
    logger: dict[str, Any] = field(default_factory=dict)  # name -> aetrain.training.loggers.Logger

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in metrics.json and inside every checkpoint."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """A checkpoint's config, checked like a command line (it never resolves an interpolation).
        Its loggers, which name no class there, are left out; a checkpoint from before loggers were a
        group has ``trainer.tensorboard``, dropped too."""
        if isinstance(raw, dict):
            raw = {key: value for key, value in raw.items() if key != "logger"}
            if isinstance(raw.get("trainer"), dict):
                raw["trainer"] = {k: v for k, v in raw["trainer"].items() if k != "tensorboard"}
        return validate(raw)


# --- checking ----------------------------------------------------------------------------------


def validate(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Check a composed config and return it typed, or raise ConfigError naming the bad key.

    A plain dict (a config read from a file) may hold no interpolation (``${...}``): it is data, and
    resolving it could read the environment. In a composed DictConfig (the command line) an
    interpolation that fails to resolve is a ConfigError naming its key.
    """
    if not isinstance(cfg, DictConfig):
        if not isinstance(cfg, dict):
            raise ConfigError("config", type(cfg).__name__, "a mapping of settings")
        _refuse_interpolations(cfg)
        cfg = OmegaConf.create(cfg)
    try:
        return _validate(cfg)
    except OmegaConfBaseException as err:
        key = str(getattr(err, "full_key", "") or getattr(err, "key", "") or "config")
        raise ConfigError(
            key, unresolved_value(cfg, key), "a value that resolves", _first_line(err)
        ) from None


def _validate(cfg: DictConfig) -> RunConfig:
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS - {"hydra", "logger", "resume_sweep"})  # sweep_control
    if unknown:
        raise ConfigError(
            unknown[0],
            cfg[unknown[0]],
            f"the top-level keys {sorted(TOP_LEVEL_KEYS)}",
            "aetrain has no such setting.",
        )
    for key in TOP_LEVEL_KEYS:
        if key not in cfg:
            raise ConfigError(key, None, "a value", "The setting is missing from the config.")
    _refuse_retired_keys(cfg)

    run = RunConfig(
        variant=_typed_group(cfg, "variant", VARIANT_SCHEMAS),
        noise=_typed_group(cfg, "noise", NOISE_SCHEMAS),
        sparsity=_typed_group(cfg, "sparsity", SPARSITY_SCHEMAS),
        data=_typed_group(cfg, "data", DATA_SCHEMAS),
        trainer=_typed(cfg.trainer, TrainerConfig, "trainer"),
        latent_size=_integer(cfg, "latent_size"),
        seed=_integer(cfg, "seed"),
        logger=_loggers(cfg.get("logger")),
    )
    _check_ranges(run)
    return run


def _refuse_retired_keys(cfg: DictConfig) -> None:
    if isinstance(cfg.trainer, DictConfig) and "tensorboard" in cfg.trainer:
        raise ConfigError(
            "trainer.tensorboard",
            cfg.trainer.tensorboard,
            "`logger=tensorboard` instead (`logger=[csv,tensorboard]` keeps history.csv too)",
            "TensorBoard is a logger now: the key is gone.",
        )


def _loggers(node: Any) -> dict[str, Any]:
    from aetrain.training.loggers import typed_loggers  # it reads this module's _typed

    return typed_loggers(node)


def _refuse_interpolations(tree: Any, prefix: str = "") -> None:
    """ConfigError naming the first string of ``tree`` that OmegaConf would treat as an interpolation."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, str) and "${" in value:
            raise ConfigError(
                path,
                value,
                "a plain value",
                "A stored config holds values, not interpolations (`${...}`): aetrain does not resolve "
                "them, so this file was not written by aetrain or was edited.",
            )
        _refuse_interpolations(value, path)


def dotted_keys(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level: ``{"trainer": {"epochs": 3}}`` -> ``{"trainer.epochs": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(dotted_keys(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def unresolved_value(cfg: DictConfig, key: str) -> Any:
    """The value at dotted ``key`` as written (an interpolation unresolved), for an error message."""
    value: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _integer(cfg: DictConfig, key: str) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, value, "an integer")
    return value


def _typed_group(cfg: DictConfig, group: str, schemas: dict[str, type]) -> Any:
    node = cfg[group]
    if not isinstance(node, DictConfig) or "name" not in node:
        raise ConfigError(group, node, f"one of {sorted(schemas)} (e.g. `{group}={next(iter(schemas))}`)")
    name = node.name
    if name not in schemas:
        raise ConfigError(
            f"{group}.name", name, f"one of {sorted(schemas)}", f"There is no {group} called {name!r}."
        )
    return _typed(node, schemas[name], group)


def _typed(node: Any, schema: type, group: str) -> Any:
    """Merge a YAML node onto its dataclass schema: unknown keys and wrong types fail here."""
    if not isinstance(node, DictConfig):
        raise ConfigError(group, node, "a mapping of settings")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        bad = str(err.key) if err.key is not None else "?"
        allowed = sorted(f.name for f in schema.__dataclass_fields__.values())
        raise ConfigError(
            f"{group}.{bad}",
            unresolved_value(node, bad),
            f"the keys {allowed}",
            f"`{schema.__name__}` has no setting called {bad!r}.",
        ) from None
    except InterpolationResolutionError as err:
        bad = str(err.key) if getattr(err, "key", None) is not None else "?"
        raise ConfigError(
            f"{group}.{bad}", unresolved_value(node, bad), "a value that resolves", _first_line(err)
        ) from None
    except OmegaConfBaseException as err:
        bad = str(err.key) if getattr(err, "key", None) is not None else "?"
        expected = schema.__dataclass_fields__.get(bad)
        kind = getattr(expected, "type", "the documented type")
        raise ConfigError(
            f"{group}.{bad}",
            unresolved_value(node, bad),
            f"a value of type {kind}",
            "The value has the wrong type.",
        ) from None


def _require(ok: bool, key: str, value: Any, allowed: str, why: str = "") -> None:
    if not ok:
        raise ConfigError(key, value, allowed, why)


def _positive_ints(values: list[int]) -> bool:
    return 0 < len(values) <= MAX_LAYERS and all(1 <= v <= MAX_UNITS for v in values)


def _count(value: int | None, low: int = 1, high: int = MAX_COUNT) -> bool:
    return value is not None and low <= value <= high


def _hidden_units(values: list[int]) -> bool:
    """Hidden layer sizes: up to MAX_LAYERS of them (none: pixels -> codings -> pixels)."""
    return len(values) <= MAX_LAYERS and all(1 <= v <= MAX_UNITS for v in values)


def _check_ranges(run: RunConfig) -> None:
    """Value ranges and combinations that make no sense, named by key."""
    _require(
        _count(run.latent_size, 1, MAX_UNITS),
        "latent_size",
        run.latent_size,
        f"an integer from 1 to {MAX_UNITS}",
        "The coding layer needs at least one unit.",
    )
    _require(_count(run.seed, 0, MAX_SEED), "seed", run.seed, f"an integer from 0 to {MAX_SEED} (2**32 - 1)")
    _check_variant(run.variant)
    _check_noise(run.noise)
    _check_sparsity(run)
    _check_data(run.data)
    _check_variant_fits_data(run)
    _check_trainer(run.trainer)


def _check_variant(v: Variant) -> None:
    _require(v.activation in ACTIVATIONS, "variant.activation", v.activation, f"one of {list(ACTIVATIONS)}")
    _require(
        v.output_activation in OUTPUT_ACTIVATIONS,
        "variant.output_activation",
        v.output_activation,
        f"one of {list(OUTPUT_ACTIVATIONS)}",
    )
    if isinstance(v, (DenseVariant, VAEVariant)):
        _require(
            _hidden_units(v.hidden_units),
            "variant.hidden_units",
            v.hidden_units,
            f"a list of 0 to {MAX_LAYERS} integers from 1 to {MAX_UNITS} ([] for no hidden layer: "
            "pixels -> codings -> pixels)",
        )
    if isinstance(v, VariationalVariant):
        _require(
            v.latent_loss in LATENT_LOSS_FORMS,
            "variant.latent_loss",
            v.latent_loss,
            f"one of {list(LATENT_LOSS_FORMS)}",
        )
        _require(math.isfinite(v.beta) and v.beta >= 0, "variant.beta", v.beta, "a number >= 0")
        _require(
            math.isfinite(v.kl_warmup_epochs) and v.kl_warmup_epochs >= 0,
            "variant.kl_warmup_epochs",
            v.kl_warmup_epochs,
            "a number of epochs >= 0 (0: the full beta from the first step)",
        )
    if isinstance(v, ConvVariant):
        _require(
            _positive_ints(v.encoder_filters),
            "variant.encoder_filters",
            v.encoder_filters,
            f"a list of 1 to {MAX_LAYERS} integers from 1 to {MAX_UNITS}",
            "The conv encoder halves the image once per filter count (28 -> 14 -> 7 -> 3 for three).",
        )
        _require(
            len(v.decoder_filters) == len(v.encoder_filters) - 1
            and (not v.decoder_filters or _positive_ints(v.decoder_filters)),
            "variant.decoder_filters",
            v.decoder_filters,
            f"{len(v.encoder_filters) - 1} integers from 1 to {MAX_UNITS} (one fewer than "
            "variant.encoder_filters)",
            "The conv decoder doubles the image once per pooling; its last stage outputs the image's "
            "channels, so it takes one filter count fewer than the encoder.",
        )
        _require(
            _count(v.decoder_start_channels, 1, MAX_UNITS),
            "variant.decoder_start_channels",
            v.decoder_start_channels,
            f"an integer from 1 to {MAX_UNITS}",
        )


def _check_noise(n: Noise) -> None:
    if isinstance(n, GaussianNoise):
        _require(
            math.isfinite(n.stddev) and n.stddev > 0,
            "noise.stddev",
            n.stddev,
            "a number > 0 (use noise=none for no noise)",
        )
    if isinstance(n, DropoutNoise):
        _require(
            0 < n.rate < 1,
            "noise.rate",
            n.rate,
            "a number strictly between 0 and 1 (the fraction of pixels dropped)",
        )


def _check_sparsity(run: RunConfig) -> None:
    s = run.sparsity
    if isinstance(s, NoSparsity):
        return
    _require(math.isfinite(s.weight) and s.weight >= 0, "sparsity.weight", s.weight, "a number >= 0")
    if isinstance(s, KLSparsity):
        _require(
            0 < s.target < 1,
            "sparsity.target",
            s.target,
            "a number strictly between 0 and 1",
            "It is the mean activation each sigmoid coding unit should have.",
        )
        _require(
            run.trainer.batch_splits in ("auto", 1),
            "trainer.batch_splits",
            run.trainer.batch_splits,
            "auto or 1 with sparsity=kl",
            "The KL penalty is a statistic of the whole batch's mean activation, so slices of the "
            "batch would not add up to it.",
        )
    _require(
        not isinstance(run.variant, VariationalVariant),
        "sparsity",
        s.name,
        f"sparsity=none with variant={run.variant.name}",
        "Sparsity penalties act on a sigmoid coding layer; a VAE's codings are Gaussian samples "
        "regularised by its own latent loss (tune variant.beta instead).",
    )


def _check_data(d: Data) -> None:
    from aetrain.data.specs import spec_for

    spec = spec_for(d) if isinstance(d, DataConfig) else None
    if isinstance(d, DataConfig):
        _require(_count(d.val_size), "data.val_size", d.val_size, f"an integer from 1 to {MAX_COUNT}")
    else:
        for key in ("val_size", "test_size"):
            size = getattr(d, key)
            _require(
                math.isfinite(size) and (0 < size < 1 or (size >= 1 and size == int(size))),
                f"data.{key}",
                size,
                "a fraction of the images (between 0 and 1) or a whole number of images >= 1",
            )
        _require(
            _count(d.split_seed, 0, MAX_SEED),
            "data.split_seed",
            d.split_seed,
            f"an integer from 0 to {MAX_SEED}",
        )
    if d.limit is not None:
        if spec is not None:
            _require(
                d.val_size < d.limit <= MAX_COUNT,
                "data.limit",
                d.limit,
                f"null (all {spec.train_images:,}) or an integer > data.val_size ({d.val_size}) "
                f"and <= {MAX_COUNT}",
                "The last data.val_size of the kept images are the validation set.",
            )
        else:
            _require(
                _count(d.limit, 2), "data.limit", d.limit, f"null (all) or an integer from 2 to {MAX_COUNT}"
            )
    if d.test_limit is not None:
        _require(
            _count(d.test_limit), "data.test_limit", d.test_limit, f"null or an integer from 1 to {MAX_COUNT}"
        )
    if isinstance(d, ImageFolderData):
        _require(
            d.dir is not None and d.dir.strip() != "",
            "data.dir",
            d.dir,
            "the folder of your PNG/JPEG images",
            "data=image_folder reads a folder of your own images (class sub-folders optional).",
        )
        _require(
            len(d.image_size) == 2 and _positive_ints(d.image_size) and max(d.image_size) <= 4096,
            "data.image_size",
            d.image_size,
            "[height, width], two integers from 1 to 4096",
            "Every image is resized to it.",
        )
        _require(d.channels in (1, 3), "data.channels", d.channels, "1 (grey) or 3 (RGB colour)")


def _check_variant_fits_data(run: RunConfig) -> None:
    """A conv encoder halves each side once per stage: the image must keep at least 1x1."""
    from aetrain.data.specs import spec_for

    if not isinstance(run.variant, ConvVariant):
        return
    spec = spec_for(run.data)
    stages = len(run.variant.encoder_filters)
    smallest = min(spec.height, spec.width) // 2**stages
    _require(
        smallest >= 1,
        "variant.encoder_filters",
        run.variant.encoder_filters,
        f"at most {max(min(spec.height, spec.width).bit_length() - 1, 0)} stages for "
        f"{spec.height}x{spec.width} images",
        f"The conv encoder halves the image once per stage: {stages} stages shrink "
        f"{spec.height}x{spec.width} ({run.data.name}) below 1x1. Use fewer stages (and one fewer "
        "variant.decoder_filters), larger images (data.image_size), or variant=dense.",
    )


def _check_trainer(t: TrainerConfig) -> None:
    _require(_count(t.epochs), "trainer.epochs", t.epochs, f"an integer from 1 to {MAX_COUNT}")
    _require(_count(t.batch_size), "trainer.batch_size", t.batch_size, f"an integer from 1 to {MAX_COUNT}")
    _require(t.optimizer in OPTIMIZERS, "trainer.optimizer", t.optimizer, f"one of {list(OPTIMIZERS)}")
    _require(
        math.isfinite(t.learning_rate) and t.learning_rate > 0,
        "trainer.learning_rate",
        t.learning_rate,
        "a number > 0",
    )
    _require(t.schedule in SCHEDULES, "trainer.schedule", t.schedule, f"one of {list(SCHEDULES)}")
    _require(
        0 <= t.warmup_epochs < t.epochs,
        "trainer.warmup_epochs",
        t.warmup_epochs,
        "a number >= 0 and below trainer.epochs",
    )
    _require(
        math.isfinite(t.weight_decay) and t.weight_decay >= 0,
        "trainer.weight_decay",
        t.weight_decay,
        "a finite number >= 0",
    )
    _require(t.precision in PRECISIONS, "trainer.precision", t.precision, f"one of {list(PRECISIONS)}")
    _require(
        _count(t.steps_per_execution),
        "trainer.steps_per_execution",
        t.steps_per_execution,
        f"an integer from 1 to {MAX_COUNT}",
    )
    splits = t.batch_splits
    _require(
        splits == "auto" or (isinstance(splits, int) and not isinstance(splits, bool) and _count(splits)),
        "trainer.batch_splits",
        splits,
        f"auto (one slice per CPU core) or an integer from 1 to {MAX_COUNT}",
    )
    for key in ("intra_op_threads", "inter_op_threads"):
        value = getattr(t, key)
        _require(
            value is None or _count(value),
            f"trainer.{key}",
            value,
            f"null (TensorFlow decides) or an integer from 1 to {MAX_COUNT}",
        )
    _require(_count(t.grid_images), "trainer.grid_images", t.grid_images, f"an integer from 1 to {MAX_COUNT}")
    _require(
        t.resume is None or t.resume.strip() != "",
        "trainer.resume",
        t.resume,
        "null (a new run) or the folder of a run to continue",
    )
    _require(
        t.strategy in STRATEGIES,
        "trainer.strategy",
        t.strategy,
        f"one of {list(STRATEGIES)}",
        "`mirrored` copies the model onto every GPU (or every logical CPU device) of one machine.",
    )
