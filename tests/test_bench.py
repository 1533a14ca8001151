"""The benchmark's quick mode runs end to end and writes its report (figures only: no timing asserts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_TRAIN

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_bench_prints_and_writes_its_tables(tiny_data_dir, tmp_path):
    out = tmp_path / "RESULTS-quick.md"
    env = {**os.environ, "AETRAIN_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "bench", "--quick", f"--data-dir={tiny_data_dir}"]
    # two variants: the report's rows, verdicts and ratios are the same code for every variant
    command += [f"--limit={TINY_TRAIN}", "--val-size=64", f"--out={out}", "--variants=dense,conv"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    report = out.read_text()
    assert report in done.stdout  # printed and written alike
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "](RESULTS-quick.png)" in report
    for heading in (
        "## Targets",
        "## Time to quality (conv)",
        "## Training throughput",
        "## Start-up and data",
    ):
        assert heading in report
    rows = {line.split("|")[1].strip(): line for line in report.splitlines() if line.startswith("| ")}
    assert {"dense", "conv"} <= set(rows) and "conv_vae" not in rows
    for variant in ("dense", "conv"):  # both throughputs are numbers, and so is their ratio
        assert re.search(r"\| [\d,]+ \| [\d,]+ \| \d+\.\d\dx \|", rows[variant]), rows[variant]
    verdicts = re.findall(r"\| (yes|\*\*no\*\*) \|$", report, flags=re.MULTILINE)
    assert len(verdicts) == 3 + 2  # time, test MSE, data loading, and each variant's throughput
    assert re.search(r"training time \| [\d.]+ s vs [\d.]+ s: \d+\.\d\dx less \|", report)
    assert f"{TINY_TRAIN - 64:,} training images" in report
    assert re.search(r"- cores: \d+", report) and "TensorFlow / Keras" in report
    assert re.search(r"data loading, cached \(\.npz\) \| \d+\.\d\d s", report)
