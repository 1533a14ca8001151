"""Process-level set-up: the precision picked for the hardware, and the age of the process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from aetrain.runtime import resolve_precision


def test_seconds_since_process_start_counts_from_the_process_start():
    code = (
        "import time; time.sleep(0.6); from aetrain.runtime import seconds_since_process_start as age; "
        "print(age())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0.6 <= float(done.stdout) < 30


@pytest.mark.parametrize(
    ("requested", "has_gpu", "flags", "expected"),
    [
        ("auto", True, set(), "mixed_float16"),
        ("auto", False, {"avx512f", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
        ("auto", False, {"avx512f", "avx512_bf16"}, "mixed_bfloat16"),
        ("auto", False, {"avx2", "avx512f"}, "float32"),
        ("float32", True, {"amx_bf16"}, "float32"),
        ("mixed_bfloat16", False, set(), "mixed_bfloat16"),
    ],
)
def test_auto_precision_picks_what_the_hardware_runs_natively(requested, has_gpu, flags, expected):
    assert resolve_precision(requested, has_gpu=has_gpu, flags=flags) == expected
