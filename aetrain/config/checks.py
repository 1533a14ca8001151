"""The error a refused config raises and the small checks every option's schema reuses.

An option's schema (aetrain's own or one declared outside aetrain) checks its values with these, so
every refusal reads alike: the key, the value, what is allowed. Imports nothing heavy.
"""

from __future__ import annotations

import math
from typing import Any

from aetrain import exit_codes
from aetrain.errors import AetrainError

ACTIVATIONS = ("relu", "selu", "elu", "gelu", "tanh", "sigmoid", "swish", "leaky_relu", "linear")
OUTPUT_ACTIVATIONS = ("sigmoid", "linear")

# The largest integers aetrain takes: NumPy seeds are below 2**32; TensorFlow counts in int32; a
# layer wider than MAX_UNITS (or deeper than MAX_LAYERS) is a typo, not a model for small images.
MAX_SEED = 2**32 - 1
MAX_COUNT = 2**31 - 1
MAX_UNITS = 2**16
MAX_LAYERS = 64


class ConfigError(AetrainError, ValueError):
    """A config value aetrain refuses; the message is one paragraph a user can act on."""

    exit_code = exit_codes.CONFIG

    def __init__(self, key: str, value: Any, allowed: str, why: str = "") -> None:
        self.key, self.value, self.allowed = key, value, allowed
        reason = f" {why}" if why else ""
        super().__init__(
            f"Invalid config: `{key}` = {value!r}.{reason} Allowed: {allowed}. "
            f"Fix it on the command line (e.g. `aetrain {key}=...`) or in the YAML file under conf/."
        )


def require(ok: bool, key: str, value: Any, allowed: str, why: str = "") -> None:
    """ConfigError naming ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(key, value, allowed, why)


def is_count(value: int | None, low: int = 1, high: int = MAX_COUNT) -> bool:
    return value is not None and low <= value <= high


def is_finite_at_least(value: float, low: float) -> bool:
    return math.isfinite(value) and value >= low


def are_layer_sizes(values: list[int], allow_none: bool = False) -> bool:
    """Up to MAX_LAYERS sizes from 1 to MAX_UNITS (at least one unless ``allow_none``)."""
    return (
        (allow_none or len(values) > 0)
        and len(values) <= MAX_LAYERS
        and all(1 <= v <= MAX_UNITS for v in values)
    )


def check_activations(settings: Any, group: str = "variant") -> None:
    """``activation`` (hidden layers) and ``output_activation`` (the decoder's last layer), where the
    settings have them."""
    if hasattr(settings, "activation"):
        require(
            settings.activation in ACTIVATIONS,
            f"{group}.activation",
            settings.activation,
            f"one of {list(ACTIVATIONS)}",
        )
    if hasattr(settings, "output_activation"):
        require(
            settings.output_activation in OUTPUT_ACTIVATIONS,
            f"{group}.output_activation",
            settings.output_activation,
            f"one of {list(OUTPUT_ACTIVATIONS)}",
        )
