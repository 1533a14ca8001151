"""bench.results (``make results``): the runs it makes and the table it writes, in quick mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import HEADER, Entry, entries, table_row

ROOT = Path(__file__).resolve().parents[1]


def test_every_seed_preset_plus_conv_vae_the_shallow_autoencoder_and_the_four_families():
    names = [entry.name for entry in entries()]
    presets = sorted(path.stem for path in (ROOT / "conf" / "experiment").glob("seed_*.yaml"))
    assert names == [*presets, "conv_vae", "shallow_64", "vqvae", "wae", "iwae", "beta_tcvae"]


def test_a_family_row_has_its_own_figure():
    report = {
        "mse": 0.01,
        "psnr_db": 20.0,
        "ssim": 0.7,
        "linear_probe": {"probe_test_accuracy": 0.8},
        "vqvae": {"codebook_perplexity": 23.14, "dead_codes": 3, "codebook_size": 64},
    }
    row = table_row(Entry("vqvae", ("variant=vqvae",)), {"epochs_completed": 10}, report)
    assert row.count("|") == HEADER.splitlines()[0].count("|")
    assert "| codebook perplexity 23.1 of 64 |" in row


def test_only_replaces_its_rows_and_keeps_the_others(tmp_path):
    from bench.results import _merged_with_table

    table = tmp_path / "RESULTS.md"
    table.write_text("# Results\n\n| run | x |\n|---|---|\n| seed_conv | old |\n| vqvae | old |\n")
    merged = _merged_with_table(table, ["| vqvae | new |", "| wae | new |"], ["seed_conv", "vqvae", "wae"])
    assert merged == ["| seed_conv | old |", "| vqvae | new |", "| wae | new |"]


def test_a_vae_row_has_elbo_iwae_and_active_units():
    report = {
        "mse": 0.0123,
        "psnr_db": 19.1,
        "ssim": 0.61,
        "linear_probe": {"probe_test_accuracy": 0.75},
        "vae": {
            "negative_elbo_nats": 250.14,
            "iwae_nats": 245.61,
            "active_units": 7,
            "latent_dimensions": 10,
        },
    }
    metrics = {"epochs_completed": 10, "train_seconds": 95.2, "device": "CPU (2 cores)"}
    row = table_row(Entry("seed_vae", ("experiment=seed_vae",)), metrics, report)
    assert row.count("|") == HEADER.splitlines()[0].count("|")
    for cell in ("0.01230", "19.10", "0.6100", "75.0", "250.1", "245.6", "7 / 10", "| 95 |"):
        assert cell in row, cell


@pytest.mark.slow
def test_quick_results_train_evaluate_and_write_the_table(tiny_data_dir, tmp_path):
    out = tmp_path / "RESULTS.md"
    env = {**os.environ, "AETRAIN_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "bench.results", "--quick", f"--data-dir={tiny_data_dir}"]
    command += [f"--out={out}", f"--runs-dir={tmp_path / 'runs'}", "--only=seed_vae"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = [line for line in out.read_text().splitlines() if line.startswith("| seed_vae")]
    assert len(table) == 1 and " / 10 |" in table[0]  # active units of the seed VAE's 10 dimensions
    assert "| shallow_64 |" not in out.read_text()  # --only
    assert (tmp_path / "runs" / "seed_vae" / "manifest.json").is_file()
