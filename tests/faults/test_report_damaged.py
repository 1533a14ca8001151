"""aetrain-report on a sweep where one job's files are damaged: that job is named with the reason, the
rest of the table, report.csv and report.png are complete, exit 0 (the real command)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

AETRAIN_REPORT = shutil.which("aetrain-report", path=str(Path(sys.executable).parent)) or "aetrain-report"
IMAGES = 4


def make_sweep(folder: Path) -> Path:
    """Three completed runs with reconstructions of the same test images."""
    originals = np.linspace(0, 1, IMAGES * 28 * 28, dtype=np.float32).reshape(IMAGES, 28, 28)
    for n in range(3):
        run = folder / str(n)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "overrides.yaml").write_text(f"- latent_size={8 * (n + 1)}\n- trainer=smoke\n")
        metrics = {
            "status": "completed",
            "best_val_loss": 0.3 - n / 10,
            "epochs_completed": 1,
            "train_seconds": 1.0,
            "test": {"mse": 0.3 - n / 10},
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
        np.savez(
            run / "reconstructions.npz",
            originals=originals,
            reconstructions=originals * 0.9,
            labels=np.arange(IMAGES),
        )
    return folder


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# How to damage job 1, and the words its reason must hold.
DAMAGE = {
    "metrics.json not UTF-8": (
        lambda run: (run / "metrics.json").write_bytes(b'{"status": "\xff\xfe"}'),
        "utf-8",
    ),
    "metrics.json a JSON list": (lambda run: (run / "metrics.json").write_text("[1, 2, 3]"), "not an object"),
    "metrics.json truncated": (lambda run: truncate(run / "metrics.json"), "metrics.json"),
    "metrics.json a folder": (
        lambda run: ((run / "metrics.json").unlink(), (run / "metrics.json" / "x").mkdir(parents=True)),
        "metrics.json",
    ),
    "overrides.yaml malformed": (
        lambda run: (run / ".hydra" / "overrides.yaml").write_text("- latent_size: [16\n  - : :\n"),
        "overrides.yaml",
    ),
    "overrides.yaml a mapping": (
        lambda run: (run / ".hydra" / "overrides.yaml").write_text("latent_size: 16\n"),
        "not a list",
    ),
    "overrides.yaml binary": (
        lambda run: (run / ".hydra" / "overrides.yaml").write_bytes(b"\x00\xff\xfe\x80garbage"),
        "overrides.yaml",
    ),
}


def aetrain_report(sweep: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "COLUMNS": "100"}
    return subprocess.run(
        [AETRAIN_REPORT, str(sweep)], env=environment, capture_output=True, text=True, timeout=120
    )


def picture_rows(sweep: Path) -> int:
    height = matplotlib.image.imread(sweep / "report.png").shape[0]
    return round((height / 110 - 0.3) / 1.45)


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_one_damaged_job_is_named_unreadable_and_the_rest_reported(tmp_path, damage):
    sweep = make_sweep(tmp_path / "sweep")
    spoil, words = DAMAGE[damage]
    spoil(sweep / "1")
    result = aetrain_report(sweep)
    text = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    unwrapped = "".join(text.split()).lower()  # a long path may wrap anywhere
    assert "run 1 (unreadable): damaged:" in text and "".join(words.split()).lower() in unwrapped, text
    assert str(sweep / "1") in text  # the damaged file is named by its path
    with open(sweep / "report.csv", newline="") as handle:
        rows = {row["run"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["0", "1", "2"]
    assert rows["1"]["status"] == "unreadable"
    assert [rows[n]["status"] for n in ("0", "2")] == ["completed", "completed"]
    assert float(rows["2"]["best_val_loss"]) == pytest.approx(0.1)
    assert list(rows)[-1] == "1"  # ranked last
    assert picture_rows(sweep) == 1 + 2  # the test images, then the two readable completed runs


def test_a_truncated_reconstructions_npz_leaves_that_run_out_of_the_picture_only(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    truncate(sweep / "1" / "reconstructions.npz")
    result = aetrain_report(sweep)
    text = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert f"run 1: {sweep / '1' / 'reconstructions.npz'} is damaged" in text
    with open(sweep / "report.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run"] for row in rows] == ["2", "1", "0"]  # its figures are whole: still ranked
    assert picture_rows(sweep) == 1 + 2


def test_every_job_damaged_still_writes_the_table(tmp_path):
    sweep = make_sweep(tmp_path / "sweep")
    for n in range(3):
        (sweep / str(n) / "metrics.json").write_bytes(b"\x89PNG\r\n")
    result = aetrain_report(sweep)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("(unreadable): damaged:") == 3
    assert (sweep / "report.csv").read_text().count("unreadable") == 3
    assert not (sweep / "report.png").exists()  # no completed run to picture
