"""Make ``import aetrain`` enough for ``keras.models.load_model`` to reload aetrain checkpoints.

Registering the custom layers means importing Keras, and so TensorFlow (seconds). ``aetrain.commands.train``
must not pay that before it has checked the config, so registration waits: if Keras is already
loaded it happens now, otherwise right after the first ``import keras``, whoever does it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys


def register_custom_objects_with_keras() -> None:
    if "keras" in sys.modules:
        importlib.import_module("aetrain.models.build")
    elif not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps Keras's own loader so aetrain.models.build is imported after it."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        load_keras = spec.loader.exec_module

        def load_keras_then_register(module) -> None:
            load_keras(module)
            importlib.import_module("aetrain.models.build")

        spec.loader.exec_module = load_keras_then_register
        return spec
