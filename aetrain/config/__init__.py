"""The typed run config and its checks (``schema``): what a run may ask for, validated once, at the door.

The public names are re-exported here, so ``from aetrain.config import RunConfig, validate`` reads as
before. Importing this package loads neither TensorFlow nor Keras.
"""

from aetrain.config.schema import *  # noqa: F403 (the schema's public names are this package's)
