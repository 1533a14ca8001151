"""aetrain: train autoencoders on Fashion-MNIST (or MNIST, CIFAR-10, digits, your images) from Hydra configs.

``import aetrain`` is all ``keras.models.load_model`` needs to reload an aetrain checkpoint.
"""

from aetrain.models.registration import register_custom_objects_with_keras

__version__ = "0.1.0"

register_custom_objects_with_keras()
