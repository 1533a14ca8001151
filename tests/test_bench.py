"""The benchmark's quick modes run end to end and write their reports (figures only: no timing asserts)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.presets import PresetRace, auto_backend
from bench.scaling import scaling_configs

from conftest import TINY_TRAIN

ROOT = Path(__file__).resolve().parents[1]


def bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AETRAIN_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "bench", "--quick", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done


@pytest.mark.slow
def test_quick_bench_races_presets_and_writes_its_tables(tiny_data_dir, tmp_path):
    out = tmp_path / "RESULTS-quick.md"
    # one preset: the rows, verdicts and ratios are the same code for every preset; a sparse one adds
    # its activation (and a dense one trains in a fraction of a conv one's time)
    done = bench(
        tmp_path,
        f"--data-dir={tiny_data_dir}",
        f"--limit={TINY_TRAIN}",
        "--val-size=64",
        f"--out={out}",
        "--presets=seed_sparse_kl",
        "--backends=tensorflow",  # JAX's row: tests/test_without_tensorflow.py (--device)
    )
    report = out.read_text()
    assert report in done.stdout  # printed and written alike
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "](RESULTS-quick.png)" in report
    for heading in ("## Goals (issues 13 and 22)", "## The runs", "## Start-up and data"):
        assert heading in report
    rows = {line.split("|")[1].strip() for line in report.splitlines() if line.startswith("| seed_")}
    # the backend asked for, marked only where auto picks it for the preset here (on a CPU with JAX
    # installed, JAX: a dense model)
    picked = auto_backend("seed_sparse_kl", [f"data.dir={tiny_data_dir}"]) == "tensorflow"
    assert rows == {"seed_sparse_kl on tensorflow" + (" (auto)" if picked else "")}
    goals = [line for line in report.splitlines() if line.startswith("| seed_") and "goal" in line]
    assert len(goals) == 1
    for line in goals:  # test MSEs, throughputs and their ratio are numbers; a verdict ends the row
        assert re.search(r"\| 0\.\d{5} / 0\.\d{5} \|", line), line
        assert re.search(
            r"\| [\d,]+ / [\d,]+ \| \d+\.\d\dx \(goal \d+(\.\d)?x\) \| (yes|\*\*no\*\*) \|$", line
        ), line
    kl = next(line for line in goals if "seed_sparse_kl" in line)
    assert re.search(r"\| 0\.\d{4} / 0\.\d{4} \|", kl)  # mean activations, recipe / aetrain
    assert f"{TINY_TRAIN - 64:,} training images" in report
    assert re.search(r"- cores: \d+", report) and "TensorFlow / JAX / Keras" in report
    assert re.search(r"data loading, cached \(\.npz\) \| \d+\.\d\d s", report)


@pytest.mark.slow
def test_quick_scaling_measures_auto_against_one_slice(tiny_data_dir, tmp_path):
    out = tmp_path / "SCALING-quick.md"
    done = bench(
        tmp_path,
        "--scaling",
        f"--data-dir={tiny_data_dir}",
        f"--limit={TINY_TRAIN}",
        "--val-size=64",
        f"--out={out}",
    )
    report = out.read_text()
    assert report in done.stdout
    rows = {
        line.split("|")[1].strip(): line.split("|")[2:5]
        for line in report.splitlines()
        if line.startswith("| conv")
    }
    assert set(rows) == {"conv, batch_splits=auto", "conv, batch_splits=1"}
    assert rows["conv, batch_splits=1"][0].strip() == "1"
    assert all(re.fullmatch(r" [\d,]+ ", cells[2]) for cells in rows.values()), rows
    assert "`batch_splits=auto` against one slice:" in report


def test_the_full_scaling_table_covers_slices_threads_and_the_dense_models():
    labels = [label for label, _ in scaling_configs(cores=16, quick=False)]
    assert labels[:2] == ["conv, batch_splits=auto", "conv, batch_splits=1"]
    for expected in (
        "conv, batch_splits=8",
        "conv, 1 slice, intra 8 / inter 2",
        "conv, batch 512, 1 slice",
        "dense (defaults)",
        "vae (defaults)",
    ):
        assert expected in labels
    assert "conv, batch_splits=4" not in [label for label, _ in scaling_configs(cores=2, quick=False)]


def race(
    preset: str, recipe_seconds: float, val: list[float], epoch_ends: list[float], **extra
) -> PresetRace:
    """A race whose recipe process took ``recipe_seconds``; aetrain's epochs ended ``epoch_ends``
    seconds after its process started."""
    recipe = {
        "val_mse": [0.02, 0.012],
        "process_seconds": recipe_seconds,
        "test_mse": 0.0120,
        "images_per_second": 1000.0,
        "activation": 0.10,
    }
    ours = {
        "history": {"val_loss": val},
        "epoch_end_seconds": epoch_ends,
        "test": {"mse": 0.0119},
        "images_per_second": 6500.0,
        "activation": 0.09,
        **extra,
    }
    return PresetRace(preset, recipe, ours, wall_seconds=1.0)


def test_a_race_is_timed_to_the_recipes_final_val_mse_and_judged_on_every_goal():
    run = race("seed_dropout", 40.0, [0.013, 0.0119, 0.0110], [4.0, 8.0, 12.0])
    assert run.target == 0.012 and run.reached == (2, 8.0)
    assert run.quality_speedup == pytest.approx(5.0) and run.throughput_ratio == pytest.approx(6.5)
    assert run.mse_met
    never = race("seed_dropout", 40.0, [0.013, 0.0125], [4.0, 8.0])
    assert never.reached[0] == 0 and never.quality_speedup == 0.0
    # a sparse preset must also be no less sparse than the recipe
    assert race("seed_sparse_l1", 40.0, [0.011], [4.0]).mse_met
    assert not race("seed_sparse_l1", 40.0, [0.011], [4.0], activation=0.2).mse_met
    # the reconstruction term, not the penalised loss, is what is timed
    penalised = race(
        "seed_sparse_kl",
        40.0,
        [0.013],
        [4.0],
        history={"val_loss": [0.013], "val_reconstruction_loss": [0.0115]},
    )
    assert penalised.reached == (1, 4.0)


def test_the_recipe_trains_the_books_penalty_where_a_preset_sets_its_own():
    from bench.presets import BOOK_VALUES, preset_config

    ours = preset_config("seed_sparse_kl", [])
    book = preset_config("seed_sparse_kl", BOOK_VALUES["seed_sparse_kl"])
    assert (book.sparsity.weight, ours.sparsity.weight) == (5e-3, 2e-2)
    assert book.sparsity.divide_by_batch_size  # as the book's activity regularizer, under Keras


def test_the_recipe_draws_its_noise_with_keras_own_layer_from_the_same_first_weights():
    import keras
    import numpy as np

    from aetrain.models.build import build_model
    from bench.presets import preset_config, recipe_model

    cfg = preset_config("seed_gaussian", [])
    recipe = recipe_model("seed_gaussian", cfg)
    noise = [layer for layer in recipe._flatten_layers() if "Noise" in type(layer).__name__]
    assert [type(layer) for layer in noise] == [keras.layers.GaussianNoise] and noise[0].stddev == 0.2
    for ours, theirs in zip(build_model(cfg).get_weights(), recipe.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.slow
def test_the_data_bench_reports_decode_start_memory_and_throughput(tmp_path):
    out = tmp_path / "DATA-quick.md"
    done = bench(tmp_path, "--data", "--images=300", f"--out={out}")
    report = out.read_text()
    assert report in done.stdout  # printed and written alike
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| figure")]
    verdict = r"\| (yes|\*\*no\*\*) \|$"
    rate, mb = r"[\d,]+ images/s \(\d+\.\d\d s\)", r"[+-][\d,]+ MB"
    expected = {
        "first decode, one process in turn": rf"\| {rate} \|  \|  \|$",
        "first decode, aetrain's first run": rf"{rate}: \d+\.\d\dx today \| >= 2x today " + verdict,
        "cached start: list, compare, map": r"\| \d+\.\d\d s \| < 1 s " + verdict,
        "cached start: `aetrain`'s data loading": r"\| \d+\.\d\d s \| < 1 s " + verdict,
        "`aetrain` process start": r"\| \d+\.\d\d s \|",
        "peak memory, the framework": r"[\d,]+ MB anonymous, [\d,]+ MB resident",
        # this test's 4 MB of images are within the noise of the growth: the figure can be below zero
        "peak memory, every image from the cache": rf"over the framework: {mb} anonymous, {mb} resident; "
        r"with the whole cache resident: -?\d+\.\d\dx the images' uint8 \| <= 1\.5x uint8 \+ framework "
        + verdict,
        "peak memory, every image from memory": rf"over the framework: {mb} anonymous",
        "training images/s (epoch 2)": r"\| [\d,]+ / [\d,]+: \d+\.\d\dx \| >= 0\.9x " + verdict,
    }
    assert len(rows) == len(expected), rows
    for (start, pattern), row in zip(expected.items(), rows, strict=True):
        assert row.startswith(f"| {start}") and re.search(pattern, row), (start, row)
    assert "300 PNGs of 64x64x3 written from Fashion-MNIST" in report
    assert re.search(r"Load average \(1 min\): start \d+\.\d\d", report)
