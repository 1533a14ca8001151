"""aetrain-report on sweep folders built by hand: ranking, the varied overrides, report.csv, report.png."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from rich.console import Console

from aetrain import report

IMAGES = 4


def make_run(
    sweep: Path, name: str, overrides: list[str], metrics: dict, originals: np.ndarray | None = None
) -> Path:
    folder = sweep / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if originals is not None:
        np.savez(
            folder / "reconstructions.npz",
            originals=originals,
            reconstructions=np.clip(originals + 0.1, 0, 1),
            labels=np.arange(len(originals)),
        )
    return folder


def completed(val: float, mse: float, **test) -> dict:
    return {
        "status": "completed",
        "best_val_loss": val,
        "epochs_completed": 2,
        "train_seconds": 1.5,
        "test": {"mse": mse, **test},
    }


@pytest.fixture
def sweep(tmp_path) -> Path:
    """Four jobs: two completed (the worse one first on disk), one refused, one diverged."""
    originals = np.linspace(0, 1, IMAGES * 28 * 28, dtype=np.float32).reshape(IMAGES, 28, 28)
    common = ["trainer=smoke", "data.limit=256"]
    make_run(tmp_path, "0", ["variant=dense", "sparsity=none", *common], completed(0.30, 0.29), originals)
    make_run(
        tmp_path,
        "1",
        ["variant=dense", "sparsity=l1", *common],
        completed(0.20, 0.21, mean_activation=0.4, near_zero_fraction=0.25),
        originals,
    )
    make_run(
        tmp_path,
        "2",
        ["variant=vae", "sparsity=l1", *common],
        {"status": "refused", "error": "Invalid config: `sparsity` = 'l1'."},
    )
    make_run(
        tmp_path,
        "3",
        ["variant=vae", "sparsity=none", *common],
        {"status": "diverged", "best_val_loss": None, "epochs_completed": 1, "error": "loss became nan"},
    )
    return tmp_path


def run_report(folder: Path) -> tuple[str, list[dict]]:
    buffer = io.StringIO()
    report.report(folder, Console(file=buffer, width=160))
    with open(folder / "report.csv", newline="") as handle:
        return buffer.getvalue(), list(csv.DictReader(handle))


def test_runs_are_ranked_by_best_val_loss_with_failures_last(sweep):
    _, rows = run_report(sweep)
    assert [row["run"] for row in rows] == ["1", "0", "2", "3"]
    assert [row["status"] for row in rows] == ["completed", "completed", "refused", "diverged"]
    assert float(rows[0]["best_val_loss"]) == 0.20 and float(rows[0]["test_mse"]) == 0.21
    assert rows[2]["best_val_loss"] == "" and "sparsity" in rows[2]["error"]


def test_only_the_overrides_that_differ_become_columns(sweep):
    _, rows = run_report(sweep)
    assert {"variant", "sparsity"} <= set(rows[0])
    assert "trainer" not in rows[0] and "data.limit" not in rows[0]
    assert (rows[0]["variant"], rows[0]["sparsity"]) == ("dense", "l1")


def test_sparsity_figures_appear_when_a_run_has_them(sweep):
    _, rows = run_report(sweep)
    assert float(rows[0]["near_zero_fraction"]) == 0.25
    assert "latent_loss" not in rows[0]  # no VAE completed: no empty column


def test_table_names_failed_runs_and_why(sweep):
    text, _ = run_report(sweep)
    assert "refused" in text and "diverged" in text
    assert "run 3 (diverged): loss became nan" in text


def test_picture_puts_each_completed_run_under_the_same_test_images(sweep):
    run_report(sweep)
    picture = matplotlib.image.imread(sweep / "report.png")
    rows, columns = 1 + 2, IMAGES  # the test images, then the two completed runs
    assert picture.shape[:2] == (round((1.45 * rows + 0.3) * 110), round(1.3 * columns * 110))


def test_runs_with_other_test_images_are_left_out_of_the_picture(sweep):
    other = np.zeros((IMAGES, 28, 28), dtype=np.float32)
    make_run(
        sweep,
        "4",
        ["variant=conv", "sparsity=none", "trainer=smoke", "data.limit=256"],
        completed(0.1, 0.1),
        other,
    )
    text, rows = run_report(sweep)
    assert rows[0]["run"] == "4"  # in the table, first
    assert "run 4: reconstructed other test images" in text.replace("\n", " ")


def test_optuna_results_are_shown(sweep):
    (sweep / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  latent_size: 16\nbest_value: 0.2\n"
    )
    text, _ = run_report(sweep)
    assert "latent_size=16" in text


def test_a_folder_without_runs_is_refused_in_one_paragraph(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path)])
    assert exit_info.value.code == report.EXIT_BAD_DIR
    assert "No runs under" in capsys.readouterr().err


def test_a_missing_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path / "nope")])
    assert exit_info.value.code == report.EXIT_BAD_DIR
    assert "nope is not a folder" in capsys.readouterr().err.replace("\n", "")


def test_picture_runs_keeps_only_the_best(sweep, capsys):
    report.main([str(sweep), "--picture-runs", "1"])
    assert "wrote:" in capsys.readouterr().out
    picture = matplotlib.image.imread(sweep / "report.png")
    assert picture.shape[0] == round((1.45 * 2 + 0.3) * 110)  # the test images + the best run
