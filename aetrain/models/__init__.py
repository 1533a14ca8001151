"""The autoencoders: one module per family, built from a RunConfig by ``build.build_model``.

Importing this package loads nothing heavy; ``aetrain.models.build`` imports Keras and registers the
custom layers.
"""
