"""aetrain-report on sweep folders built by hand: ranking, --sort, incomparable losses, sweep.json, the
varied overrides, report.csv, report.png, --out, and the table at narrow widths (the real command)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from rich.console import Console

from aetrain.commands import report

from read_only_folders import read_only

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


def run_report(folder: Path, **options) -> tuple[str, list[dict]]:
    buffer = io.StringIO()
    report.report(folder, Console(file=buffer, width=160), **options)
    with open(options.get("out_dir", folder) / "report.csv", newline="") as handle:
        return buffer.getvalue(), list(csv.DictReader(handle))


def test_runs_are_ranked_by_best_val_loss_with_failures_last(sweep):
    _, rows = run_report(sweep)
    assert [row["run"] for row in rows] == ["1", "0", "3", "2"]
    assert [row["status"] for row in rows] == ["completed", "completed", "diverged", "refused"]
    assert float(rows[0]["best_val_loss"]) == 0.20 and float(rows[0]["test_mse"]) == 0.21
    assert rows[3]["best_val_loss"] == "" and "sparsity" in rows[3]["error"]


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
    assert "ranked by best validation loss, lowest first (the default" in " ".join(text.split())


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


def test_an_optuna_search_without_a_completed_trial_says_so(sweep):
    (sweep / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params: null\nbest_value: null\nmessage: No trial of study 'x' completed.\n"
    )
    text, _ = run_report(sweep)
    assert "Optuna: No trial of study 'x' completed." in text


def test_a_folder_without_runs_is_refused_in_one_paragraph(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "No runs under" in capsys.readouterr().err


def test_a_missing_folder_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path / "nope")])
    assert exit_info.value.code == 2
    assert "nopeisnotafolder" in "".join(capsys.readouterr().err.split())  # a long path may wrap anywhere


def test_picture_runs_keeps_only_the_best(sweep, capsys):
    report.main([str(sweep), "--picture-runs", "1"])
    assert "wrote:" in capsys.readouterr().out
    picture = matplotlib.image.imread(sweep / "report.png")
    assert picture.shape[0] == round((1.45 * 2 + 0.3) * 110)  # the test images + the best run


def test_a_diverged_run_with_a_low_loss_ranks_below_every_completed_one(sweep):
    make_run(sweep, "4", ["variant=conv", "sparsity=none"], {**completed(0.01, 0.01), "status": "diverged"})
    _, rows = run_report(sweep)
    assert [row["run"] for row in rows] == ["1", "0", "3", "4", "2"]  # diverged ones in folder order


def test_sort_ranks_completed_runs_by_the_chosen_figure_and_says_so(sweep):
    make_run(sweep, "4", ["variant=conv", "sparsity=none"], completed(0.25, 0.05))
    text, rows = run_report(sweep, sort="test_mse")
    assert [row["run"] for row in rows[:3]] == ["4", "1", "0"]  # by test MSE, not by val loss (1, 4, 0)
    assert "ranked by test MSE, lowest first (--sort test_mse)" in " ".join(text.split())


def vae_and_plain_sweep(folder: Path) -> Path:
    """A VAE with the best test MSE whose validation loss (with its latent term) is the highest."""
    plain = {"variant": {"name": "dense"}, "sparsity": {"name": "none"}}
    vae = {"variant": {"name": "vae", "beta": 1.0}, "sparsity": {"name": "none"}}
    make_run(folder, "0", ["variant=dense"], {**completed(0.030, 0.031), "config": plain})
    make_run(folder, "1", ["variant=vae"], {**completed(0.045, 0.020), "config": vae})
    make_run(folder, "2", ["variant=conv"], {**completed(0.028, 0.027), "config": plain})
    return folder


def test_vae_and_plain_runs_are_ranked_by_test_mse_with_a_word_why(tmp_path):
    text, rows = run_report(vae_and_plain_sweep(tmp_path))
    flat = " ".join(text.split())
    assert [row["run"] for row in rows] == ["1", "2", "0"]
    assert "ranked by test MSE, lowest first (the default here: their validation losses are not" in flat
    assert "Validation losses are not comparable" in flat
    assert "run 1: reconstruction + 1 x latent loss" in flat and "runs 0, 2: reconstruction;" in flat
    assert "Compare test MSE" in flat


def test_sort_best_val_loss_still_ranks_by_it_when_asked(tmp_path):
    text, rows = run_report(vae_and_plain_sweep(tmp_path), sort="best_val_loss")
    assert [row["run"] for row in rows] == ["2", "0", "1"]
    assert "Validation losses are not comparable" in " ".join(text.split())


def test_sweep_json_lists_stopped_and_never_started_jobs(sweep):
    """The record helper `sweeps` writes: job 4 stopped before metrics.json, job 5 never started."""
    (sweep / "4" / ".hydra").mkdir(parents=True)
    (sweep / "4" / ".hydra" / "overrides.yaml").write_text("- variant=conv\n- sparsity=none\n")
    jobs = [
        {"num": n, "overrides": [], "dir": str(n), "status": s, "reason": ""}
        for n, s in enumerate(["completed", "completed", "refused", "diverged"])
    ]
    jobs += [
        {"num": 4, "overrides": ["variant=conv"], "dir": "4", "status": "interrupted", "reason": "SIGTERM"},
        {"num": 5, "overrides": ["variant=conv", "sparsity=l1"], "dir": "5", "status": "never_started"},
    ]
    (sweep / "sweep.json").write_text(
        json.dumps({"status": "interrupted", "signal": "SIGTERM", "jobs": jobs})
    )
    text, rows = run_report(sweep)
    assert [(row["run"], row["status"]) for row in rows] == [
        ("1", "completed"),
        ("0", "completed"),
        ("4", "interrupted"),
        ("3", "diverged"),
        ("2", "refused"),
        ("5", "unfinished"),
    ]
    assert rows[2]["variant"] == "conv" and rows[5]["sparsity"] == "l1"
    flat = " ".join(text.split())
    assert "run 4 (interrupted): SIGTERM" in flat
    assert "run 5 (unfinished): never started" in flat
    assert "sweep: interrupted (SIGTERM)" in flat


def test_a_damaged_sweep_json_is_named_and_the_runs_still_reported(sweep):
    (sweep / "sweep.json").write_text("{not json")
    text, rows = run_report(sweep)
    assert len(rows) == 4 and "sweep record left out" in text and "sweep.json" in text


def test_out_writes_the_files_elsewhere(sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("elsewhere") / "new" / "folder"
    _, rows = run_report(sweep, out_dir=out)
    assert len(rows) == 4 and (out / "report.png").is_file()
    assert not (sweep / "report.csv").exists() and not (sweep / "report.png").exists()


# --- the real command --------------------------------------------------------------------------------

AETRAIN_REPORT = shutil.which("aetrain-report", path=str(Path(sys.executable).parent)) or "aetrain-report"


def aetrain_report(*args: str, columns: int = 160) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [AETRAIN_REPORT, *map(str, args)], env=environment, capture_output=True, text=True, timeout=120
    )


def search_like_sweep(folder: Path) -> Path:
    """Six runs with long Optuna-like override values, as in a CI log."""
    originals = np.linspace(0, 1, IMAGES * 28 * 28, dtype=np.float32).reshape(IMAGES, 28, 28)
    for n in range(6):
        overrides = [
            f"trainer.learning_rate=0.000{n + 1}4156772025296256",
            f"latent_size={8 * (n + 1)}",
            f"noise.stddev=0.{n + 1}801741519732878",
            f"sparsity.weight=2.31122309731693{n}e-05",
        ]
        metrics = completed(0.2 + n / 100, 0.3 - n / 100, mean_activation=0.4, near_zero_fraction=0.01)
        make_run(folder, str(n), overrides, metrics, originals)
    make_run(folder, "6", ["latent_size=1"], {"status": "diverged", "error": "loss became nan"})
    return folder


@pytest.mark.parametrize("columns", [80, 60])
def test_the_table_keeps_run_status_and_both_losses_at_narrow_widths(tmp_path, columns):
    sweep = search_like_sweep(tmp_path)
    result = aetrain_report(sweep, columns=columns)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line.rstrip()) <= columns for line in lines), result.stdout
    header = "\n".join(lines[:12])
    assert "run" in header and "status" in header and "val" in header and "MSE" in header
    for n in range(6):
        row = next(line for line in lines if re.match(rf"^ {n} +completed", line))
        assert f"{0.2 + n / 100:.3g}" in row and f"{0.3 - n / 100:.3g}" in row, row
    assert re.search(r"^ 6 +diverged", result.stdout, re.MULTILINE)
    assert "latent_size=8" in result.stdout  # the overrides are there, wrapped


def test_below_the_narrowest_table_each_run_is_a_block_of_lines(tmp_path):
    result = aetrain_report(search_like_sweep(tmp_path), columns=30)
    assert result.returncode == 0, result.stderr
    assert "run 0  completed" in result.stdout and "best val loss: 0.2" in result.stdout


def test_at_every_width_each_line_fits_and_no_run_status_or_loss_is_cut(tmp_path):
    """Rich fits the table: whatever it wraps or leaves out, a flagged status and both losses stay whole,
    and an override value that looks like rich markup is printed as it is."""
    sweep = search_like_sweep(tmp_path)
    flagged = {**completed(0.5, 0.6), "warnings": ["worse than the mean image"]}
    make_run(sweep, "7", ["latent_size=2", "tags=[red,blue]"], flagged)
    columns, rows = report.report_rows(report.rank(report.find_runs(sweep), "best_val_loss"))
    for width in range(30, 161, 5):
        buffer = io.StringIO()
        console = Console(file=buffer, width=width)
        console.print(report.rich_table(columns, rows, console)[0])
        text = buffer.getvalue()
        assert all(len(line.rstrip()) <= width for line in text.splitlines()), text
        assert "[red,blue]" in text, text
        for row in (row for row in rows if row["status"] == "completed"):
            val, mse = f"{row['best_val_loss']:.3g}", f"{row['test_mse']:.3g}"
            if f"run {row['run']}  completed" in text:  # below the narrowest table: a block a run
                assert f"best val loss: {val}\n" in text and f"test MSE: {mse}\n" in text, text
                continue
            line = next(line for line in text.splitlines() if re.match(rf"^ {row['run']} +completed", line))
            assert f" {val} " in f"{line} " and f" {mse} " in f"{line} ", (width, line)
        assert re.search(rf"^ 7 +completed {re.escape(report.WARNING_FLAG)} ", text, re.MULTILINE) or (
            f"run 7  completed {report.WARNING_FLAG}" in text
        ), text


def test_out_that_is_a_file_exits_5_naming_it(sweep):
    target = sweep / "a-file"
    target.write_text("in the way")
    result = aetrain_report(sweep, "--out", target)
    text = " ".join(result.stderr.split())
    assert result.returncode == 5, result.stdout + result.stderr
    assert str(target) in text and "--out OTHER_DIR" in text and "Traceback" not in text
    assert "completed" in result.stdout  # the table was printed first


def test_out_under_a_file_exits_5_naming_it(sweep):
    (sweep / "a-file").write_text("in the way")
    result = aetrain_report(sweep, "--out", sweep / "a-file" / "reports")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "a-file" in result.stderr and "--out" in result.stderr


def test_report_csv_that_cannot_be_replaced_exits_5_and_leaves_no_partial_file(sweep):
    (sweep / "report.csv").mkdir()  # as root, the one way to make the sweep folder refuse one file
    result = aetrain_report(sweep)
    assert result.returncode == 5, result.stdout + result.stderr
    assert "report.csv" in result.stderr and "--out" in result.stderr
    assert not list(sweep.glob(".report-partial-*"))


def test_a_read_only_sweep_folder_exits_5_and_says_how_to_write_elsewhere(sweep, tmp_path_factory):
    with read_only(sweep):
        result = aetrain_report(sweep)
    assert result.returncode == 5, result.stdout + result.stderr
    assert str(sweep) in result.stderr and "--out" in result.stderr
    out = tmp_path_factory.mktemp("out")
    assert aetrain_report(sweep, "--out", out).returncode == 0


def test_a_run_with_warnings_is_flagged_in_the_table_and_the_csv(tmp_path):
    """A completed run whose model is worse than the mean image is not shown as a plain success."""
    warning = "the test MSE 0.336 is worse than the data's mean image (0.087)"
    make_run(tmp_path, "0", ["latent_size=4"], completed(0.30, 0.29))
    make_run(tmp_path, "1", ["latent_size=8"], {**completed(0.20, 0.34), "warnings": [warning]})
    text, rows = run_report(tmp_path)
    assert [(row["run"], row["warnings"]) for row in rows] == [("1", warning), ("0", "")]
    flagged = [line for line in text.splitlines() if report.WARNING_FLAG in line]
    assert any(line.lstrip().startswith("1 ") and "completed" in line for line in flagged), text
    assert f"run 1 {report.WARNING_FLAG} (completed): {warning}" in text
    assert not any(line.lstrip().startswith("0 ") for line in flagged)


def seeds_sweep(folder: Path) -> Path:
    """latent_size 8 and 16, three seeds each (one of 16's refused): val losses worked by hand below."""
    originals = np.linspace(0, 1, IMAGES * 28 * 28, dtype=np.float32).reshape(IMAGES, 28, 28)
    values = {("8", "1"): 0.30, ("8", "2"): 0.32, ("8", "3"): 0.34, ("16", "1"): 0.20, ("16", "2"): 0.24}
    for number, ((latent, seed), val) in enumerate(values.items()):
        overrides = [f"latent_size={latent}", f"seed={seed}"]
        make_run(
            folder,
            str(number),
            overrides,
            completed(val, val - 0.01, codebook_perplexity=10.0 + number),
            originals,
        )
    make_run(folder, "5", ["latent_size=16", "seed=3"], {"status": "refused", "error": "Invalid config"})
    return folder


def test_runs_that_differ_only_in_their_seed_are_one_row_with_mean_std_and_interval(tmp_path):
    text, rows = run_report(seeds_sweep(tmp_path))
    groups = {row["group"]: row for row in rows if row["status"] == "group"}
    assert list(groups) == ["latent_size=16", "latent_size=8"]  # ranked by the mean: 0.22 before 0.32
    small = groups["latent_size=8"]
    # mean 0.32, std sqrt(((-0.02)^2 + 0 + 0.02^2) / 2) = 0.02, 95%: t(0.975, 2) = 4.3027 * 0.02 / sqrt(3)
    assert float(small["best_val_loss"]) == pytest.approx(0.32)
    assert float(small["best_val_loss_std"]) == pytest.approx(0.02)
    assert float(small["best_val_loss_ci95"]) == pytest.approx(4.302653 * 0.02 / 3**0.5, rel=1e-5)
    assert small["n"] == "3" and groups["latent_size=16"]["n"] == "2"  # the refused run is not counted
    assert float(small["test_codebook_perplexity"]) == pytest.approx(11.0)  # the family's figure too
    runs = [row for row in rows if row["status"] != "group"]
    assert len(runs) == 6 and {row["group"] for row in runs} == {"latent_size=8", "latent_size=16"}
    flat = " ".join(text.split())
    assert "latent_size=16 2/3" in flat and "0.32 ± 0.02" in flat


def test_runs_prints_each_run_and_over_groups_by_the_keys_it_names(tmp_path):
    folder = seeds_sweep(tmp_path)
    text, _ = run_report(folder, per_run=True)
    assert "± " not in text and "refused" in text
    _, rows = run_report(folder, over=["latent_size"])
    assert sorted(row["group"] for row in rows if row["status"] == "group") == ["seed=1", "seed=2", "seed=3"]


def test_over_a_key_no_run_varies_is_refused_naming_the_keys_that_vary(tmp_path, capsys):
    folder = seeds_sweep(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        report.main([str(folder), "--over", "noise.stddev"])
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "noise.stddev" in err and "latent_size, seed" in err
