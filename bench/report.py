"""The machine a benchmark ran on, and its markdown tables."""

from __future__ import annotations

import os
import platform
from pathlib import Path

INTERESTING_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and which of the flags that matter here it has (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return model, [flag for flag in INTERESTING_FLAGS if flag in flags]


def onednn_for_the_recipe() -> str:
    """Whether TensorFlow runs its oneDNN kernels in a process that leaves them to TensorFlow, as the
    recipe's does (aetrain turns them on: aetrain.quiet_imports.prefer_onednn_kernels)."""
    if "TF_ENABLE_ONEDNN_OPTS" in os.environ:
        return f"TF_ENABLE_ONEDNN_OPTS={os.environ['TF_ENABLE_ONEDNN_OPTS']}, set for both"
    try:
        from tensorflow.python.util import _pywrap_util_port  # TensorFlow's own answer (private)
    except ImportError:
        return "no TensorFlow here"
    state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    default = f"the recipe {state} (TensorFlow's default on this CPU)"
    return f"{default}, aetrain on (its runs here are not deterministic)"


def machine_info() -> dict[str, str]:
    """The machine and the frameworks, as this process's Keras backend sees them."""
    from importlib.metadata import PackageNotFoundError, version

    import keras

    from aetrain.training.runtime import describe_device

    def installed_version(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    model, flags = cpu_model_and_flags()
    return {
        "CPU": model,
        "cores": str(os.cpu_count()),
        "CPU flags": ", ".join(flags) or "none of " + ", ".join(INTERESTING_FLAGS),
        f"device ({keras.config.backend()})": describe_device(),
        "TensorFlow's oneDNN kernels": onednn_for_the_recipe(),
        "TensorFlow / JAX / Keras": " / ".join(installed_version(p) for p in ("tensorflow", "jax", "keras")),
        "Python": platform.python_version(),
    }


def load_average() -> float:
    return os.getloadavg()[0]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.2f} s"


def rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def ratio(numerator: float | None, denominator: float | None) -> str:
    if not numerator or not denominator or numerator != numerator or denominator != denominator:
        return "n/a"
    return f"{numerator / denominator:.2f}x"
