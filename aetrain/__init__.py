"""aetrain: train autoencoders on Fashion-MNIST from Hydra configs."""

__version__ = "0.1.0"
