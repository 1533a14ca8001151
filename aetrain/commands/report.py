"""``aetrain-report DIR``: compare every run of a sweep, completed ones first, best first.

Reads each run folder under DIR (its ``.hydra/overrides.yaml`` and ``metrics.json``) and, when
present, DIR/sweep.json (every job of the sweep, also those that never started). Prints a table of
the overrides that differ between runs and each run's figures: completed runs ranked by ``--sort``
(auto: best validation loss, or test MSE when the runs' validation losses add up different terms,
as a VAE's and a plain autoencoder's do), then interrupted, diverged, failed, refused, unreadable
and never-run jobs, each with why. Writes into DIR (or ``--out``), each file whole or not at all:

- ``report.csv``: the same table, one row per run, full precision;
- ``report.png``: the same test images reconstructed by every completed run, one row per run.

A damaged file of one job makes that job ``unreadable`` (named, with the reason); the rest is
reported. It needs no TensorFlow: the pictures come from the ``reconstructions.npz`` each run writes.
Exit codes: 0 done, 2 DIR holds no runs, 5 report.csv / report.png cannot be written.
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
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from aetrain import exit_codes
from aetrain.analysis import run_groups
from aetrain.errors import AetrainError, failure
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.run_folder.lock import is_locked
from aetrain.run_folder.record import UnreadableRecord, read_metrics, recorded_outcome
from aetrain.sweeps.record import SweepRecord

PICTURE_RUNS = 20
SWEEP_RECORD = layout.SWEEP_RECORD  # what the launchers record about a sweep: every job, run or not
STATUS_STYLES = {
    "completed": "green",
    "interrupted": "yellow",
    "diverged": "yellow",
    "refused": "red",
    "failed": "red",
    "unreadable": "red",
}
# Where a run without a ranking figure goes: completed ones first, then in this order, then the rest.
STATUS_ORDER = ("completed", "interrupted", "diverged", "failed", "refused", "unreadable", "unfinished")

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
# What a group's row summarises beside the family's own test figures (test_NAME).
SUMMARISED = ("best_val_loss", "test_mse", "mean_activation", "near_zero_fraction", "latent_loss")
# --sort: figures where lower is better, and how the title names them.
SORT_KEYS = {
    "best_val_loss": "best validation loss",
    "test_mse": "test MSE",
    "latent_loss": "latent loss",
    "seconds": "training time",
}
AUTO_SORT = "auto"
# Beside the status of a run whose metrics.json has warnings; the lines below the table say what.
WARNING_FLAG = "(!)"


class ReportError(AetrainError):
    """DIR cannot be reported on; the message says why and what to pass instead."""

    exit_code = exit_codes.CONFIG


class ReportUnwritable(AetrainError):
    """report.csv / report.png cannot be written; the message names the path and how to write elsewhere."""

    exit_code = exit_codes.OUTPUT


@dataclass(frozen=True)
class SweepRun:
    """One job of a sweep as it lies on disk (or as sweep.json remembers a job that never ran)."""

    path: Path
    name: str
    overrides: dict[str, str]
    metrics: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.metrics.get("status", "unfinished"))

    @property
    def reason(self) -> str:
        reason = self.metrics.get("error", self.metrics.get("failure", ""))
        return "" if reason is None else str(reason)

    @property
    def warnings(self) -> list[str]:
        """What the run's metrics.json warns of (a model worse than the mean image, an exploded KL)."""
        warnings = self.metrics.get("warnings")
        return [str(w) for w in warnings] if isinstance(warnings, list) else []

    def value(self, sort_key: str) -> float | None:
        """The figure runs are ranked by, when it is a finite number."""
        value = self.figure(dict((c, keys) for c, _, keys in FIGURES)[sort_key])
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if is_number and math.isfinite(value) else None

    def figure(self, keys: tuple[str, ...]) -> Any:
        node: Any = self.metrics
        for key in keys:
            node = node.get(key) if isinstance(node, dict) else None
        return node

    def validation_loss_terms(self) -> str:
        """What this run's validation loss adds up (runs whose terms differ are not comparable), as its
        family named them in metrics.json; for a run recorded before that, read from its config."""
        recorded = self.metrics.get("loss_terms")
        if isinstance(recorded, list) and recorded and all(isinstance(term, str) for term in recorded):
            return " + ".join(recorded)
        config = self.metrics.get("config")
        if not isinstance(config, dict):
            return "reconstruction"
        terms = ["reconstruction"]
        variant, sparsity = config.get("variant"), config.get("sparsity")
        if isinstance(variant, dict) and variant.get("beta"):
            terms.append(f"{_short(variant.get('beta'))} x latent loss")
        if isinstance(sparsity, dict) and sparsity.get("name") not in (None, "none"):
            terms.append(f"{_short(sparsity.get('weight'))} x {sparsity.get('name')} penalty")
        return " + ".join(terms)


def find_runs(sweep_dir: Path) -> list[SweepRun]:
    """Every run folder (one with a ``.hydra/`` or ``metrics.json``) under ``sweep_dir``, and the jobs
    ``sweep.json`` lists that have no folder (never started), unranked."""
    if not sweep_dir.is_dir():
        raise ReportError(
            f"{sweep_dir} is not a folder. Pass a sweep folder, e.g. `aetrain-report "
            f"multirun/2025-01-31/12-00-00` (the folder `aetrain -m ...` printed as its sweep output dir)."
        )
    markers = [*sweep_dir.rglob(layout.HYDRA), *sweep_dir.rglob(layout.METRICS)]
    folders = {marker.parent for marker in markers}
    runs = {run.name: run for run in (_read_run(folder, sweep_dir) for folder in folders)}
    for job in sweep_record(sweep_dir).get("jobs", []):
        _merge_recorded_job(runs, job, sweep_dir)
    if not runs:
        raise ReportError(
            f"No runs under {sweep_dir}: no folder there has a metrics.json or a .hydra/ folder. Pass the "
            f"folder of one sweep (it holds the numbered run folders 0, 1, ...), e.g. multirun/DATE/TIME."
        )
    return sorted(runs.values(), key=lambda run: _natural(run.name))


def _natural(name: str) -> list:
    """``2`` before ``10``: folder names in the order the sweep numbered them."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def rank(runs: list[SweepRun], sort_key: str) -> list[SweepRun]:
    """Completed runs by ``sort_key``, lowest first; then the others by status, each in folder order."""

    def key(run: SweepRun) -> tuple:
        value = run.value(sort_key) if run.status == "completed" else None
        order = STATUS_ORDER.index(run.status) if run.status in STATUS_ORDER else len(STATUS_ORDER)
        return (value is None, value or 0.0, order, _natural(run.name))

    return sorted(runs, key=key)


def sweep_record(sweep_dir: Path) -> dict[str, Any]:
    """``sweep.json`` (written by the launchers): the sweep's status and every job; {} if absent.

    A damaged record is reported as a note (``"unreadable"``) and otherwise ignored.
    """
    try:
        record = SweepRecord.load(sweep_dir)
    except UnreadableRecord as error:
        return {"unreadable": str(error)}
    return record.as_dict() if record is not None else {}


def _merge_recorded_job(runs: dict[str, SweepRun], job: dict[str, Any], sweep_dir: Path) -> None:
    """A job sweep.json lists: its status fills in for a folder without metrics.json, or stands alone."""
    name = str(job.get("dir", job.get("num", "?")))
    status = str(job.get("status") or "unfinished")
    if status == "never_started":
        status, reason = "unfinished", job.get("reason") or "never started (the sweep stopped first)"
    else:
        reason = job.get("reason") or ""
    known = runs.get(name)
    if known is not None and "status" in known.metrics:
        return
    overrides = known.overrides if known else dict(_split_override(o) for o in job.get("overrides") or [])
    metrics = {"status": status, "error": str(reason)}
    runs[name] = SweepRun(sweep_dir / name, name, overrides, metrics)


def _read_run(folder: Path, sweep_dir: Path) -> SweepRun:
    """One run folder; a damaged metrics.json or overrides.yaml makes it ``unreadable``, with why."""
    name = str(folder.relative_to(sweep_dir)) if folder != sweep_dir else folder.name
    damaged: list[str] = []
    overrides: dict[str, str] = {}
    overrides_file = folder / layout.OVERRIDES
    if overrides_file.exists():
        try:
            overrides = _read_overrides(overrides_file)
        except Exception as error:  # a damaged file: whatever the YAML parser raises
            damaged.append(f"{overrides_file}: {_one_line(error)}")
    metrics: dict[str, Any] = {}
    try:
        metrics = read_metrics(folder)
    except UnreadableRecord as error:
        if not error.missing:
            damaged.append(str(error))
        elif (folder / layout.HYDRA).is_dir():
            metrics = {"error": "no metrics.json (still running, or stopped before it wrote one)"}
    if damaged:
        metrics = {**metrics, "status": "unreadable", "error": "damaged: " + "; ".join(damaged)}
    elif metrics.get("status") == "running":  # written at each epoch end; its process may be gone
        status, reason = recorded_outcome(metrics, folder)
        metrics = {**metrics, "status": status, **({"error": reason} if reason else {})}
    return SweepRun(folder, name, overrides, metrics)


def _read_overrides(path: Path) -> dict[str, str]:
    overrides = OmegaConf.to_container(OmegaConf.load(path))
    if overrides is None:
        return {}
    if not isinstance(overrides, list):
        raise ValueError(f"holds a {type(overrides).__name__}, not a list of key=value overrides")
    # trainer.resume says where a run continued (resume_sweep=true, a requeued SLURM job: its own
    # folder), not what it is: it neither varies a sweep nor splits a group of seeds
    return dict(_split_override(o) for o in overrides if not str(o).startswith("trainer.resume="))


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def _split_override(override: str) -> tuple[str, str]:
    key, _, value = str(override).partition("=")
    return key.lstrip("+~"), value


def comparable_losses(runs: list[SweepRun]) -> dict[str, list[str]]:
    """The completed runs grouped by what their validation loss adds up; one group: comparable."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        if run.status == "completed":
            groups.setdefault(run.validation_loss_terms(), []).append(run.name)
    return groups


def choose_sort(requested: str, loss_groups: dict[str, list[str]]) -> str:
    """``auto``: best validation loss, unless the runs' validation losses add up different terms."""
    if requested != AUTO_SORT:
        return requested
    return "best_val_loss" if len(loss_groups) <= 1 else "test_mse"


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
    own = family_figures(runs)
    columns = ["run", "status", *varied, *(column for column, _ in figures), "loss_terms", *own]
    columns += ["warnings", "error", "path"]
    rows = [
        {
            "run": run.name,
            "status": run.status,
            **{key: run.overrides.get(key, "") for key in varied},
            **{column: _plain(run.figure(keys)) for column, keys in figures},
            "loss_terms": run.validation_loss_terms() if run.metrics else "",
            **{column: _plain(run.figure(("test", column.removeprefix("test_")))) for column in own},
            "warnings": "; ".join(run.warnings),
            "error": run.reason,
            "path": str(run.path),
        }
        for run in runs
    ]
    return columns, rows


def family_figures(runs: list[SweepRun]) -> list[str]:
    """CSV columns (``test_NAME``) for the numbers a run's family adds to its test figures (a VQ-VAE's
    codebook perplexity, a WAE's MMD), beyond the figures every report shows."""
    shown = {keys[1] for _, _, keys in FIGURES if keys[0] == "test"} | {"images", "mean_image_mse"}
    found: dict[str, None] = {}
    for run in runs:
        test = run.metrics.get("test")
        if isinstance(test, dict):
            found.update(
                (f"test_{key}", None)
                for key, value in test.items()
                if key not in shown and isinstance(value, (int, float)) and not isinstance(value, bool)
            )
    return list(found)


def _plain(value: Any) -> Any:
    """A figure as the CSV and the table take it: numbers and strings; anything else as its JSON."""
    if value is None or isinstance(value, (int, float, str)):
        return value
    return json.dumps(value)


def write_csv(columns: list[str], rows: list[dict[str, Any]], path: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return write_text_atomically(path, buffer.getvalue())


def comparison_picture(
    runs: list[SweepRun], varied: list[str], path: Path, limit: int, sort_key: str = "best_val_loss"
) -> list[str]:
    """report.png: the test images, then each completed run's reconstructions of them, best first.

    The test images are those most runs reconstructed (runs with other data settings reconstruct
    others). A missing or damaged reconstructions.npz leaves that run out. Returns notes about the
    runs left out, and why.
    """
    from aetrain.analysis.pictures import reconstruction_grid
    from aetrain.data import data_spec

    notes: list[str] = []
    saved: dict[str, dict[str, np.ndarray]] = {}
    for run in runs:
        archive = run.path / layout.RECONSTRUCTIONS_NPZ
        if run.status != "completed":
            continue
        if not archive.is_file():
            notes.append(f"run {run.name}: no reconstructions.npz (made by an older aetrain?)")
            continue
        try:
            saved[run.name] = _read_reconstructions(archive)
        except Exception as error:  # a damaged archive: zipfile, zlib, NumPy's format errors
            notes.append(f"run {run.name}: {archive} is damaged ({_one_line(error)})")
    if not saved:
        return notes
    fingerprints = {name: arrays["originals"].tobytes() for name, arrays in saved.items()}
    common = Counter(fingerprints.values()).most_common(1)[0][0]
    reference = saved[next(name for name, print_ in fingerprints.items() if print_ == common)]
    rows: list[tuple[str, np.ndarray]] = []
    for run in runs:
        if run.name not in saved:
            continue
        if fingerprints[run.name] != common:
            notes.append(f"run {run.name}: reconstructed other test images (other data settings)")
        elif saved[run.name]["reconstructions"].shape != reference["originals"].shape:
            notes.append(f"run {run.name}: its reconstructions.npz does not match its test images")
        elif len(rows) < limit:
            rows.append((_row_label(run, varied, sort_key), saved[run.name]["reconstructions"]))
    # Runs since data sets became a choice store their class names; older runs were Fashion-MNIST.
    names = [str(name) for name in reference.get("class_names", data_spec("fashion_mnist").class_names)]
    titles = [names[int(label)] if int(label) < len(names) else str(label) for label in reference["labels"]]
    reconstruction_grid([("test image", reference["originals"]), *rows], titles, path, horizontal_labels=True)
    return notes


def _read_reconstructions(archive: Path) -> dict[str, np.ndarray]:
    with np.load(archive, allow_pickle=False) as arrays:
        saved = {key: arrays[key] for key in ("originals", "reconstructions", "labels")}
        if "class_names" in arrays:
            saved["class_names"] = arrays["class_names"]
    if len(saved["labels"]) != len(saved["originals"]):
        raise ValueError("labels and originals differ in length")
    return saved


def _row_label(run: SweepRun, varied: list[str], sort_key: str) -> str:
    headings = _override_headings(varied)
    lines = [f"{headings[key]}={_short(run.overrides.get(key, ''))}" for key in varied]
    value = run.value(sort_key)
    figure = f"{_short(value)}" if value is not None else "-"
    return "\n".join(
        [f"run {run.name}", *lines, f"{dict(_SHORT_SORT_NAMES).get(sort_key, sort_key)} {figure}"]
    )


_SHORT_SORT_NAMES = (("best_val_loss", "val"), ("test_mse", "test MSE"), ("latent_loss", "latent"))


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


# Figure columns in the order they give way when the terminal is narrow (all stay in report.csv).
OPTIONAL_FIGURES = ("seconds", "mean_activation", "near_zero_fraction", "epochs", "latent_loss")
OVERRIDES_MIN_WIDTH = 16  # the wrapped overrides column at its narrowest, before figures give way


def rich_table(
    columns: list[str], rows: list[dict[str, Any]], console: Console
) -> tuple[RenderableType, list[str]]:
    """The table fitted to ``console`` by rich, and the headings of the figures left out.

    The run number, status, best validation loss and test MSE never wrap nor are cut. When the table
    does not fit on one line a run, the overrides become one wrapped column (one key=value a line),
    the only one rich may narrow; then the optional figures give way, and below the narrowest table
    each run is a block of lines.
    """
    headings = {column: heading for column, heading, _ in FIGURES} | {"run": "run", "status": "status"}
    varied = [c for c in columns if c not in headings and c not in ("warnings", "error", "path")]
    headings |= _override_headings(varied)
    figures = [c for c in columns if c in headings and c not in ("run", "status", *varied)]
    cells = [{column: _cell(column, row) for column in ("run", "status", *varied, *figures)} for row in rows]

    def table(shown: list[str], merged: bool, overrides_width: int | None = None) -> Table:
        table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("run", no_wrap=True)
        table.add_column("status", no_wrap=True)
        if merged and varied:
            table.add_column(
                "overrides", overflow="fold", min_width=OVERRIDES_MIN_WIDTH, max_width=overrides_width
            )
        for column in [] if merged else varied:
            table.add_column(headings[column], no_wrap=True)
        for column in shown:
            heading = "\n".join(headings[column].split()) if merged else headings[column]
            table.add_column(heading, justify="right", no_wrap=True)
        for row in cells:
            overrides = "\n".join(f"{headings[c]}={row[c]}" for c in varied if row[c])
            by_key = [Text(overrides)] if varied else []
            line = [row["run"], row["status"], *(by_key if merged else [row[c] for c in varied])]
            table.add_row(*line, *(row[c] for c in shown))
        return table

    def fits(table: Table) -> bool:  # its width with no column narrowed, as rich measures it
        unbounded = console.options.update_width(sys.maxsize)
        return console.measure(table, options=unbounded).maximum <= console.width

    if fits(whole := table(figures, merged=False)):
        return whole, []
    optional = [c for c in OPTIONAL_FIGURES if c in figures]
    for given_way in range(len(optional) + 1):
        shown = [c for c in figures if c not in optional[:given_way]]
        if fits(table(shown, merged=True, overrides_width=OVERRIDES_MIN_WIDTH)):
            return table(shown, merged=True), [headings[c] for c in figures if c not in shown]
    blocks = []  # per run: its number and status, then one figure or override a line
    for row in cells:
        blocks.append(Text.assemble((f"run {row['run']}", "bold"), "  ", row["status"]))
        blocks += [Text(f"  {headings[c]}: {row[c]}") for c in figures if row[c]]
        blocks += [Text(f"  {headings[c]}={row[c]}") for c in varied if row[c]]
    return Group(*blocks), []


def _cell(column: str, row: dict[str, Any]) -> Text:
    if column != "status":
        return Text(_short(row[column], 3))
    flag = [" ", (WARNING_FLAG, "bold yellow")] if row.get("warnings") else []
    return Text.assemble((str(row["status"]), STATUS_STYLES.get(row["status"], "dim")), *flag)


def optuna_result(sweep_dir: Path) -> dict[str, Any] | None:
    """What the Optuna sweeper wrote (best_params, best_value or why there is none), if a search."""
    path = sweep_dir / layout.OPTIMIZATION_RESULTS
    if not path.is_file():
        return None
    try:
        result = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as error:  # a damaged file: whatever the YAML parser raises
        return {"unreadable": f"{path}: {_one_line(error)}"}
    return result if isinstance(result, dict) else {"unreadable": f"{path}: not a mapping"}


def report(
    sweep_dir: Path,
    console: Console,
    picture_runs: int = PICTURE_RUNS,
    sort: str = AUTO_SORT,
    out_dir: Path | None = None,
    over: list[str] | None = None,
    per_run: bool = False,
) -> list[dict[str, Any]]:
    """Print the table, write report.csv and report.png into ``out_dir`` (default ``sweep_dir``).

    Runs that differ only in ``over`` (default: ``seed``, when the sweep varied it) are summarised a
    group per row (aetrain.analysis.run_groups); ``per_run`` prints the table of runs instead, and
    report.csv holds both. Returns the rows of the runs. Raises ReportError when ``sweep_dir`` holds
    no runs or ``over`` names a key no run varies, ReportUnwritable when the files cannot be written
    (after the table is printed).
    """
    out_dir = sweep_dir if out_dir is None else out_dir
    found = find_runs(sweep_dir)
    loss_groups = comparable_losses(found)
    sort_key = choose_sort(sort, loss_groups)
    runs = rank(found, sort_key)
    columns, rows = report_rows(runs)
    varied = differing_overrides(runs)
    over = grouped_over(over, varied)
    groups = run_groups.group_runs(rows, varied, over, summarised_figures(columns), sort_key) if over else []
    completed = sum(run.status == "completed" for run in runs)
    if sort != AUTO_SORT:
        how = f"--sort {sort_key}"
    elif sort_key == "best_val_loss":
        how = "the default; --sort to change"
    else:
        how = "the default here: their validation losses are not comparable, see below"
    title = (
        f"aetrain-report: {len(runs)} runs in {sweep_dir}; {completed} completed, ranked by "
        f"{SORT_KEYS[sort_key]}, lowest first ({how}); the others last, with why"
    )
    console.print(Text(title, style="bold"))
    if groups and not per_run:
        console.print(groups_table(groups, over, sort_key))
        console.print(f"(one row per setting, over {', '.join(over)}; each run: --runs; both in report.csv)")
    else:
        table, left_out = rich_table(columns, rows, console)
        console.print(table)
        if left_out:
            console.print(f"(left out at this width, all in report.csv: {', '.join(left_out)})")
    for row in rows:
        if row["error"]:
            console.print(Text.assemble((f"run {row['run']}", "bold"), f" ({row['status']}): {row['error']}"))
    for run in runs:
        for warning in run.warnings:
            flagged = (f"run {run.name} {WARNING_FLAG}", "bold yellow")
            console.print(Text.assemble(flagged, f" ({run.status}): {warning}"))
    if len(loss_groups) > 1:
        console.print(
            "[bold yellow]Validation losses are not comparable[/bold yellow] between these runs: they add up "
            "different terms ("
            + "; ".join(_loss_group_lines(loss_groups))
            + "). Compare [bold]test MSE[/bold] (the reconstruction error alone, on the same test images)."
        )
    record = sweep_record(sweep_dir)
    if "unreadable" in record:
        console.print(f"[yellow]sweep record left out[/yellow]: {record['unreadable']}")
    elif record.get("status") == "running" and not is_locked(sweep_dir):
        console.print(
            "[bold]sweep[/bold]: [bold red]dead[/bold red]: sweep.json says running, but no process holds "
            "the sweep (it was killed); continue it with the same command and resume_sweep=true"
        )
    elif record.get("status"):
        signal_ = f" ({record['signal']})" if record.get("signal") else ""
        console.print(f"[bold]sweep[/bold]: {record['status']}{signal_}")
    _print_optuna_result(optuna_result(sweep_dir), console)
    if groups:
        columns, rows = with_group_rows(columns, rows, groups)
        runs = _best_of_each(groups, runs)  # report.png: one run per group
    written = _write_outputs(runs, columns, rows, out_dir, picture_runs, sort_key, console)
    console.print("[bold]wrote:[/bold] " + ", ".join(str(p) for p in written))
    return rows


def grouped_over(over: list[str] | None, varied: list[str]) -> list[str]:
    """The keys runs are grouped over: ``over`` as asked (each must be one the runs vary), else
    ``seed`` when the runs vary it, else none."""
    if over is None:
        return ["seed"] if "seed" in varied else []
    unknown = [key for key in over if key not in varied]
    if unknown:
        raise ReportError(
            f"--over {','.join(over)}: no run varies {', '.join(unknown)}. The keys these runs vary: "
            f"{', '.join(varied) or 'none (every run has the same settings)'}."
        )
    return over


def summarised_figures(columns: list[str]) -> list[str]:
    """The figures a group's row summarises: every figure column but the epochs."""
    return [column for column in columns if column in SUMMARISED or column.startswith("test_")]


def groups_table(groups: list[run_groups.Group], over: list[str], sort_key: str) -> Table:
    """One row per group: its setting, its completed runs, and mean ± std [95% interval] per figure."""
    figures = summarised_figures_of(groups)
    table = Table(box=box.SIMPLE_HEAD, header_style="bold")
    table.add_column("setting", overflow="fold")
    table.add_column("runs", justify="right", no_wrap=True)
    for figure in figures:
        table.add_column(_heading(figure), justify="right", overflow="fold")
    for group in groups:
        cells = [group.label, f"{len(group.completed)}/{len(group.runs)}"]
        cells += [_summary_cell(group.figures.get(figure)) for figure in figures]
        table.add_row(*cells)
    return table


def summarised_figures_of(groups: list[run_groups.Group]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        seen.update(dict.fromkeys(group.figures))
    return list(seen)


def _heading(figure: str) -> str:
    known = {column: heading for column, heading, _ in FIGURES}
    return known.get(figure, figure.removeprefix("test_").replace("_", " "))


def _summary_cell(summary: run_groups.Summary | None) -> str:
    if summary is None:
        return ""
    if summary.std is None:
        return _short(summary.mean)
    return f"{_short(summary.mean)} ± {_short(summary.std, 2)} [±{_short(summary.ci95, 2)}]"


def with_group_rows(
    columns: list[str], rows: list[dict[str, Any]], groups: list[run_groups.Group]
) -> tuple[list[str], list[dict[str, Any]]]:
    """report.csv's columns and rows with both: each run's row names its group; each group's row
    (``run`` empty) gives n, and per figure the mean, ``_std`` and ``_ci95``."""
    group_of = {id(row): group.label for group in groups for row in group.runs}
    figures = summarised_figures_of(groups)
    extra = ["group", "n", *(f"{figure}_{part}" for figure in figures for part in ("std", "ci95"))]
    run_rows = [{**row, "group": group_of.get(id(row), "")} for row in rows]
    group_rows = []
    for group in groups:
        row: dict[str, Any] = {"run": "", "status": "group", "group": group.label, "n": len(group.completed)}
        row.update(group.setting)
        for figure, summary in group.figures.items():
            row.update({figure: summary.mean, f"{figure}_std": summary.std, f"{figure}_ci95": summary.ci95})
        group_rows.append(row)
    return ["group", *columns, *(column for column in extra if column != "group")], run_rows + group_rows


def _best_of_each(groups: list[run_groups.Group], runs: list[SweepRun]) -> list[SweepRun]:
    """Each group's best run (the first of the ranked runs in it), in the groups' order."""
    by_name = {run.name: run for run in runs}
    return [by_name[group.runs[0]["run"]] for group in groups if group.runs]


def _loss_group_lines(loss_groups: dict[str, list[str]], shown: int = 4) -> list[str]:
    lines = [
        f"run{'s' if len(names) > 1 else ''} {', '.join(names)}: {terms}"
        for terms, names in loss_groups.items()
    ]
    if len(lines) > shown:
        lines = [*lines[:shown], f"and {len(lines) - shown} more kinds"]
    return lines


def _print_optuna_result(search: dict[str, Any] | None, console: Console) -> None:
    if not search:
        return
    if "unreadable" in search:
        console.print(f"[yellow]Optuna's results left out[/yellow]: {search['unreadable']}")
    elif isinstance(search.get("best_params"), dict):
        value = search.get("best_value")
        shown = f"{value:.5g}" if isinstance(value, (int, float)) else str(value)
        console.print(f"[bold]Optuna's best parameters[/bold] (value {shown}):")
        for key, value in search["best_params"].items():
            console.print(f"  {key}={value}")
    elif search.get("message"):
        console.print(f"[bold]Optuna[/bold]: {search['message']}")


def _write_outputs(
    runs: list[SweepRun],
    columns: list[str],
    rows: list[dict[str, Any]],
    out_dir: Path,
    picture_runs: int,
    sort_key: str,
    console: Console,
) -> list[Path]:
    """report.csv, then report.png, each written whole or not at all."""
    from aetrain.run_folder.atomic_files import RunFolderWriteError

    csv_path, picture = out_dir / layout.REPORT_CSV, out_dir / layout.REPORT_PNG
    try:
        if out_dir.exists() and not out_dir.is_dir():
            raise NotADirectoryError(20, "a file is in the way, not a folder", str(out_dir))
        write_csv(columns, rows, csv_path)
        notes = comparison_picture(runs, differing_overrides(runs), picture, picture_runs, sort_key)
    except (RunFolderWriteError, OSError) as error:
        path = getattr(error, "path", None) or out_dir
        cause = getattr(error, "__cause__", None) or error
        raise ReportUnwritable(
            f"Cannot write {path} ({getattr(cause, 'strerror', None) or cause}). The table above is "
            "complete; to write report.csv and report.png elsewhere, pass a folder you may write to: "
            "`aetrain-report SWEEP_DIR --out OTHER_DIR`."
        ) from None
    for note in notes:
        console.print(f"[yellow]left out of report.png[/yellow]: {note}")
    return [csv_path] + ([picture] if picture.is_file() else [])


def picture_runs_count(text: str) -> int:
    """--picture-runs: a count from 1 (report.png shows at least the best run)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (runs shown in report.png), got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="aetrain-report",
        description="Compare the runs of an aetrain sweep: a table (completed runs first, best first; "
        "failed, refused, diverged, interrupted and never-run jobs last with why), report.csv and "
        "report.png (each run's reconstructions of the same test images).",
    )
    parser.add_argument("dir", type=Path, metavar="DIR", help="a sweep folder, e.g. multirun/DATE/TIME")
    parser.add_argument(
        "--sort",
        choices=[AUTO_SORT, *SORT_KEYS],
        default=AUTO_SORT,
        help="the figure completed runs are ranked by, lowest first (default auto: best_val_loss, or "
        "test_mse when the runs' validation losses add up different terms, e.g. VAE and plain)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="OUT_DIR",
        help="write report.csv and report.png into OUT_DIR (created if needed) instead of DIR",
    )
    parser.add_argument(
        "--picture-runs",
        type=picture_runs_count,
        default=PICTURE_RUNS,
        metavar="N",
        help=f"at most N runs (the best) in report.png (default {PICTURE_RUNS})",
    )
    parser.add_argument(
        "--over",
        type=lambda text: [key for key in text.split(",") if key],
        metavar="KEY,...",
        help="group runs that differ only in these overrides, one row per group with the mean, standard "
        "deviation and 95%% interval of each figure (default: seed, when the sweep varied it)",
    )
    parser.add_argument("--runs", action="store_true", help="print one row per run, not per group")
    args = parser.parse_args(argv)
    console = Console()
    errors = Console(stderr=True)
    try:
        report(args.dir, console, args.picture_runs, args.sort, args.out, args.over, args.runs)
    except AetrainError as error:
        message, exit_code = failure(error)
        errors.print(f"[bold red]aetrain-report:[/bold red] {message}")
        sys.exit(exit_code)


if __name__ == "__main__":
    main()
