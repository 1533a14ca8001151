"""``aetrain-report DIR``: compare every run of a sweep, best first.

Reads each run folder under DIR (its ``.hydra/overrides.yaml`` and ``metrics.json``), prints a
table of the overrides that differ between runs and each run's figures, sorted by the value the
sweep minimised (best validation loss; failed runs last, with why), and writes next to the runs:

- ``report.csv``: the same table, one row per run, full precision;
- ``report.png``: the same test images reconstructed by every completed run, one row per run.

It needs no TensorFlow: the pictures come from the ``reconstructions.npz`` each run writes.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from rich import box
from rich.console import Console
from rich.table import Table

from aetrain.atomic_files import write_text_atomically

EXIT_BAD_DIR = 2
PICTURE_RUNS = 20
OBJECTIVE = "best_val_loss"
STATUS_STYLES = {"completed": "green", "diverged": "yellow", "refused": "red", "failed": "red"}

# Columns after the overrides: (CSV name, table heading, where in metrics.json).
FIGURES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("best_val_loss", "best val loss", ("best_val_loss",)),
    ("test_mse", "test MSE", ("test", "mse")),
    ("epochs", "epochs", ("epochs_completed",)),
    ("seconds", "train time (s)", ("train_seconds",)),
    ("mean_activation", "mean act.", ("test", "mean_activation")),
    ("near_zero_fraction", "near-0 frac.", ("test", "near_zero_fraction")),
    ("latent_loss", "latent loss", ("test", "latent_loss")),
)
ALWAYS_SHOWN = {"best_val_loss", "test_mse", "epochs", "seconds"}


class ReportError(Exception):
    """DIR cannot be reported on; the message says why and what to pass instead."""


@dataclass(frozen=True)
class SweepRun:
    """One job of a sweep as it lies on disk."""

    path: Path
    name: str
    overrides: dict[str, str]
    metrics: dict[str, Any]

    @property
    def status(self) -> str:
        return self.metrics.get("status", "unfinished")

    @property
    def objective(self) -> float | None:
        value = self.metrics.get(OBJECTIVE)
        return value if isinstance(value, (int, float)) and math.isfinite(value) else None

    def figure(self, keys: tuple[str, ...]) -> Any:
        node: Any = self.metrics
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node


def find_runs(sweep_dir: Path) -> list[SweepRun]:
    """Every run folder (one with a ``.hydra/`` or ``metrics.json``) under ``sweep_dir``, best first."""
    if not sweep_dir.is_dir():
        raise ReportError(
            f"{sweep_dir} is not a folder. Pass a sweep folder, e.g. `aetrain-report "
            f"multirun/2025-01-31/12-00-00` (the folder `aetrain -m ...` printed as its sweep output dir)."
        )
    markers = [*sweep_dir.rglob(".hydra"), *sweep_dir.rglob("metrics.json")]
    folders = {marker.parent for marker in markers}
    runs = [_read_run(folder, sweep_dir) for folder in folders]
    if not runs:
        raise ReportError(
            f"No runs under {sweep_dir}: no folder there has a metrics.json or a .hydra/ folder. Pass the "
            f"folder of one sweep (it holds the numbered run folders 0, 1, ...), e.g. multirun/DATE/TIME."
        )
    return sorted(runs, key=_rank)


def _read_run(folder: Path, sweep_dir: Path) -> SweepRun:
    overrides_file = folder / ".hydra" / "overrides.yaml"
    metrics_file = folder / "metrics.json"
    overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) if overrides_file.is_file() else []
    try:
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    except json.JSONDecodeError as error:
        metrics = {"status": "unreadable", "error": f"metrics.json: {error}"}
    name = str(folder.relative_to(sweep_dir)) if folder != sweep_dir else folder.name
    return SweepRun(folder, name, dict(_split_override(o) for o in overrides or []), metrics)


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = str(override).partition("=")
    return key.lstrip("+~"), value


def _rank(run: SweepRun) -> tuple:
    """Lowest objective first; runs without one (failed, unfinished) last, in folder order."""
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", run.name)]
    return (run.objective is None, run.objective or 0.0, natural)


def differing_overrides(runs: list[SweepRun]) -> list[str]:
    """Override keys whose value is not the same in every run (what the sweep varied)."""
    in_command_line_order = dict.fromkeys(key for run in runs for key in run.overrides)
    return [key for key in in_command_line_order if len({run.overrides.get(key) for run in runs}) > 1]


def report_rows(runs: list[SweepRun]) -> tuple[list[str], list[dict[str, Any]]]:
    """The columns and one row per run (already ranked), as plain values for the CSV."""
    varied = differing_overrides(runs)
    figures = [
        (column, keys)
        for column, _, keys in FIGURES
        if column in ALWAYS_SHOWN or any(run.figure(keys) is not None for run in runs)
    ]
    columns = ["run", "status", *varied, *(column for column, _ in figures), "error", "path"]
    rows = [
        {
            "run": run.name,
            "status": run.status,
            **{key: run.overrides.get(key, "") for key in varied},
            **{column: run.figure(keys) for column, keys in figures},
            "error": run.metrics.get("error", run.metrics.get("failure", "")),
            "path": str(run.path),
        }
        for run in runs
    ]
    return columns, rows


def write_csv(columns: list[str], rows: list[dict[str, Any]], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return write_text_atomically(path, buffer.getvalue())


def comparison_picture(runs: list[SweepRun], varied: list[str], path: Path, limit: int) -> list[str]:
    """report.png: the test images, then each completed run's reconstructions of them, best first.

    The test images are those most runs reconstructed (runs with other data settings reconstruct
    others). Returns notes about the runs left out, and why.
    """
    from aetrain.data import CLASS_NAMES
    from aetrain.images import reconstruction_grid

    notes: list[str] = []
    saved: dict[str, dict[str, np.ndarray]] = {}
    for run in runs:
        archive = run.path / "reconstructions.npz"
        if run.status != "completed":
            continue
        if not archive.is_file():
            notes.append(f"run {run.name}: no reconstructions.npz (made by an older aetrain?)")
            continue
        with np.load(archive) as arrays:
            saved[run.name] = {key: arrays[key] for key in arrays.files}
    if not saved:
        return notes
    fingerprints = {name: arrays["originals"].tobytes() for name, arrays in saved.items()}
    common = Counter(fingerprints.values()).most_common(1)[0][0]
    rows: list[tuple[str, np.ndarray]] = []
    for run in runs:
        if run.name not in saved:
            continue
        if fingerprints[run.name] != common:
            notes.append(f"run {run.name}: reconstructed other test images (other data settings)")
        elif len(rows) < limit:
            rows.append((_row_label(run, varied), saved[run.name]["reconstructions"]))
    reference = saved[next(name for name, print_ in fingerprints.items() if print_ == common)]
    # Runs since data sets became a choice store their class names; older runs were Fashion-MNIST.
    names = [str(name) for name in reference.get("class_names", CLASS_NAMES)]
    titles = [names[int(label)] if int(label) < len(names) else str(label) for label in reference["labels"]]
    reconstruction_grid([("test image", reference["originals"]), *rows], titles, path, horizontal_labels=True)
    return notes


def _row_label(run: SweepRun, varied: list[str]) -> str:
    headings = _override_headings(varied)
    lines = [f"{headings[key]}={_short(run.overrides.get(key, ''))}" for key in varied]
    return "\n".join([f"run {run.name}", *lines, f"val {run.objective:.4g}"])


def _short(value: Any, digits: int = 4) -> str:
    """Decimals to a few significant digits (Optuna proposes 0.00024156772025296256), the rest as is."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, str) and any(mark in value for mark in ".eE"):
        try:
            return f"{float(value):.{digits}g}"
        except ValueError:
            return value
    return str(value)


def _override_headings(varied: list[str]) -> dict[str, str]:
    """``trainer.learning_rate`` -> ``learning_rate`` where the last part names one key only."""
    last = [key.rsplit(".", 1)[-1] for key in varied]
    return {key: short if last.count(short) == 1 else key for key, short in zip(varied, last, strict=True)}


def rich_table(columns: list[str], rows: list[dict[str, Any]], title: str) -> Table:
    headings = {column: heading for column, heading, _ in FIGURES}
    figure_columns = set(headings) | {"run"}
    headings |= _override_headings([c for c in columns if c not in headings and c not in ("run", "status")])
    shown = [c for c in columns if c not in ("error", "path")]
    cells = [
        [
            f"[{STATUS_STYLES.get(row[c], 'dim')}]{row[c]}[/]" if c == "status" else _short(row[c], 3)
            for c in shown
        ]
        for row in rows
    ]
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in shown:
        is_figure = column in figure_columns
        table.add_column(
            headings.get(column, column),
            justify="right" if is_figure else "left",
            no_wrap=not is_figure,  # names stay whole; figure headings wrap to make room
        )
    for line in cells:
        table.add_row(*line)
    return table


def optuna_result(sweep_dir: Path) -> dict[str, Any] | None:
    """What Hydra's Optuna sweeper wrote (best_params, best_value), if this sweep was a search."""
    path = sweep_dir / "optimization_results.yaml"
    return OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None


def report(sweep_dir: Path, console: Console, picture_runs: int = PICTURE_RUNS) -> list[dict[str, Any]]:
    """Print the table, write report.csv and report.png into ``sweep_dir``; returns the rows."""
    runs = find_runs(sweep_dir)
    columns, rows = report_rows(runs)
    title = f"aetrain-report: {len(runs)} runs in {sweep_dir}, best validation loss first"
    console.print(rich_table(columns, rows, title))
    for row in rows:
        if row["error"]:
            console.print(f"[bold]run {row['run']}[/bold] ({row['status']}): {row['error']}")
    search = optuna_result(sweep_dir)
    if search and "best_params" in search:
        console.print(f"[bold]Optuna's best parameters[/bold] (value {search['best_value']:.5g}):")
        for key, value in search["best_params"].items():
            console.print(f"  {key}={value}")
    csv_path = write_csv(columns, rows, sweep_dir / "report.csv")
    notes = comparison_picture(runs, differing_overrides(runs), sweep_dir / "report.png", picture_runs)
    for note in notes:
        console.print(f"[yellow]left out of report.png[/yellow]: {note}")
    written = [csv_path] + ([sweep_dir / "report.png"] if (sweep_dir / "report.png").is_file() else [])
    console.print("[bold]wrote:[/bold] " + ", ".join(str(p) for p in written))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="aetrain-report",
        description="Compare the runs of an aetrain sweep: a table sorted by best validation loss, "
        "report.csv and report.png (each run's reconstructions of the same test images) in DIR.",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="a sweep folder, e.g. multirun/DATE/TIME")
    parser.add_argument(
        "--picture-runs",
        type=int,
        default=PICTURE_RUNS,
        metavar="N",
        help=f"at most N runs (the best) in report.png (default {PICTURE_RUNS})",
    )
    args = parser.parse_args(argv)
    console = Console()
    try:
        report(args.dir, console, max(args.picture_runs, 1))
    except ReportError as error:
        Console(stderr=True).print(f"[bold red]aetrain-report:[/bold red] {error}")
        sys.exit(EXIT_BAD_DIR)


if __name__ == "__main__":
    main()
