"""The typed run config and its checks: what a run may ask for, validated once, at the door.

Each option (variant, noise, sparsity, data set, optimizer, schedule, strategy) is declared once, its
schema beside its builder (``registry``); ``schema.validate`` reads those declarations. Importing this
package loads neither TensorFlow nor Keras.
"""

from aetrain.config.checks import (
    ACTIVATIONS,
    MAX_COUNT,
    MAX_LAYERS,
    MAX_SEED,
    MAX_UNITS,
    OUTPUT_ACTIVATIONS,
    ConfigError,
    check_activations,
    require,
)
from aetrain.config.data_settings import Data, DataConfig, DigitsData, ImageFolderData, check_drawn_splits
from aetrain.config.registry import DECLARED_IN, declare
from aetrain.config.regularizers import (
    DropoutNoise,
    GaussianNoise,
    KLSparsity,
    L1Sparsity,
    Noise,
    NoNoise,
    NoSparsity,
    Sparsity,
)
from aetrain.config.schema import TOP_LEVEL_KEYS, RunConfig, dotted_keys, unresolved_value, validate
from aetrain.config.trainer import PRECISIONS, TrainerConfig
from aetrain.config.variants import (
    LATENT_LOSS_FORMS,
    ConvVAEVariant,
    ConvVariant,
    DenseVariant,
    VAEVariant,
    Variant,
    VariationalVariant,
    check_hidden_units,
)

__all__ = [
    "ACTIVATIONS",
    "DECLARED_IN",
    "LATENT_LOSS_FORMS",
    "MAX_COUNT",
    "MAX_LAYERS",
    "MAX_SEED",
    "MAX_UNITS",
    "OUTPUT_ACTIVATIONS",
    "PRECISIONS",
    "TOP_LEVEL_KEYS",
    "ConfigError",
    "ConvVAEVariant",
    "ConvVariant",
    "Data",
    "DataConfig",
    "DenseVariant",
    "DigitsData",
    "DropoutNoise",
    "GaussianNoise",
    "ImageFolderData",
    "KLSparsity",
    "L1Sparsity",
    "NoNoise",
    "NoSparsity",
    "Noise",
    "RunConfig",
    "Sparsity",
    "TrainerConfig",
    "VAEVariant",
    "Variant",
    "VariationalVariant",
    "check_activations",
    "check_drawn_splits",
    "check_hidden_units",
    "declare",
    "dotted_keys",
    "require",
    "unresolved_value",
    "validate",
]
