"""Importing heavy libraries without their noise or their optional extras, for the data layer (TFDS's
TensorFlow) and the training runtime (Keras) alike. Imports nothing of aetrain's."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stderr_silenced() -> Iterator[None]:
    """Send the C++ side's stderr to /dev/null: TF 2.20+ logs before absl honours TF_CPP_MIN_LOG_LEVEL."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # pytest capture, notebooks
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)


def prefer_onednn_kernels() -> None:
    """TensorFlow's oneDNN CPU kernels, unless the user set ``TF_ENABLE_ONEDNN_OPTS``: TensorFlow turns
    them on by itself only on CPUs with AVX512-VNNI, AVX512-BF16 or AMX, and elsewhere its default
    kernels trained every preset slower (docs/performance.md). Read once, when TensorFlow loads; not for
    a deterministic run (aetrain.training.backend.activate)."""
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def hidden(package: str) -> Iterator[None]:
    """An import of ``package`` raises ImportError meanwhile (which Keras and TensorFlow take as not
    installed), unless it is already loaded."""
    if package in sys.modules:
        yield
        return
    sys.modules[package] = None
    try:
        yield
    finally:
        if package in sys.modules and sys.modules[package] is None:
            del sys.modules[package]
