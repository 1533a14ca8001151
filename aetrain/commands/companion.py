"""Companion commands for a finished run: ``aetrain-evaluate``, ``aetrain-generate``, ``aetrain-look``.

Plain argparse (one PATH, a few options), not Hydra: they read the run's config from its checkpoint
instead of composing one. Like ``aetrain``, they touch the process here only. Exit codes: 0 done,
2 a path or run the command cannot use (a damaged or foreign checkpoint included), 3 a data problem,
5 the folder they write into is in use by another process (a run still training there: see
aetrain.run_folder.lock) or cannot be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from aetrain import exit_codes
from aetrain.config import MAX_COUNT, MAX_SEED
from aetrain.data import DataError
from aetrain.errors import AetrainError, failure
from aetrain.run_folder.atomic_files import RunFolderWriteError
from aetrain.run_folder.claim import probe_writable, remove_created_folders
from aetrain.run_folder.lock import hold_run_folder
from aetrain.run_folder.trained_run import TrainedRun, locate_trained_run

# The panel's title over a refusal, by its exit code.
REFUSAL_TITLES = {
    exit_codes.CONFIG: "aetrain: cannot do that",
    exit_codes.DATA: "aetrain: data problem",
    exit_codes.OUTPUT: "aetrain: cannot write there",
}


class CommandRefused(AetrainError):
    """A valid run this command cannot work with (e.g. generating from a non-variational model)."""

    exit_code = exit_codes.CONFIG


class OutputUnwritable(AetrainError):
    """The folder the outputs go to cannot be created or written; the message names it and --out."""

    exit_code = exit_codes.OUTPUT


@dataclass
class LoadedRun:
    """A trained run ready to use: its config and checkpoint, the model, the data, where outputs go."""

    run: TrainedRun
    model: Any
    data: Any
    output_dir: Path


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """PATH plus the options every companion command takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "path",
        metavar="PATH",
        help="a run folder (uses its checkpoints/best.keras) or a .keras checkpoint written by aetrain",
    )
    parser.add_argument(
        "--data-dir",
        help="folder holding the run's data set's files (default: the run's data.dir if it exists "
        "here, else the usual search for its data set)",
    )
    parser.add_argument("--out", help="folder for the outputs (default: the run folder)")
    parser.add_argument(
        "--limit", type=positive_int, help="use only the first N test images (default: all of them)"
    )
    parser.add_argument("--seed", type=seed_value, help="seed for sampling (default: the run's seed)")
    return parser


def positive_int(text: str) -> int:
    return bounded_int(text, 1, MAX_COUNT)


def seed_value(text: str) -> int:
    return bounded_int(text, 0, MAX_SEED)


def bounded_int(text: str, low: int, high: int) -> int:
    """An argparse type: an integer from ``low`` to ``high``, else a message naming both."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be an integer from {low} to {high}, got {text}")
    return value


def run_command(body: Callable[[argparse.Namespace, Console], None], args: argparse.Namespace) -> int:
    """Run ``body``; a bad path, an unusable run, a data problem or an output that cannot be written
    is one red paragraph and the error's exit code (aetrain.errors), no traceback."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    console = Console()
    try:
        with hold_run_folder(output_folder(args)):  # not while a run trains there
            _write_outputs(body, args, console)
    except AetrainError as error:
        message, exit_code = failure(error)
        title = REFUSAL_TITLES.get(exit_code, "aetrain: cannot do that")
        console.print(Panel(message, title=title, border_style="red"))
        return _failed(exit_code)
    return exit_codes.OK


def _write_outputs(
    body: Callable[[argparse.Namespace, Console], None], args: argparse.Namespace, console: Console
) -> None:
    """``body``, whose outputs that cannot be written are OutputUnwritable: the message names --out."""
    try:
        body(args, console)
    except RunFolderWriteError as error:
        raise OutputUnwritable(_unwritable(error.path, error)) from None


def _failed(exit_code: int) -> int:
    """A refused command leaves no folder it created (an --out it made), only those it found."""
    remove_created_folders()
    return exit_code


def output_folder(args: argparse.Namespace) -> Path:
    """The folder the command writes into (--out, else the run's folder): created if missing, probed."""
    return writable_output_dir(locate_trained_run(args.path), args)


def locate(args: argparse.Namespace) -> TrainedRun:
    """The run PATH names, and a check that its outputs can be written (cheap: no TensorFlow yet)."""
    run = locate_trained_run(args.path)
    writable_output_dir(run, args)
    return run


def writable_output_dir(run: TrainedRun, args: argparse.Namespace) -> Path:
    """``--out`` or the run folder, created if missing (a refused command removes what it created)
    and probed with a temp file, or OutputUnwritable naming it."""
    folder = Path(args.out).expanduser() if args.out else run.output_dir
    if folder.exists() and not folder.is_dir():
        raise OutputUnwritable(
            f"--out {folder} is a file, not a folder. Write the outputs elsewhere with `--out DIR`."
        )
    try:
        probe_writable(folder)
    except OSError as err:
        raise OutputUnwritable(_unwritable(folder, err)) from None
    return folder


def _unwritable(path: Path, err: OSError) -> str:
    reason = getattr(err, "strerror", None) or str(err)
    return (
        f"Cannot write the outputs to {path} ({reason}). Write them elsewhere with `--out DIR`: a "
        "folder you may write to (created if missing; not a file). Nothing partial was left."
    )


def load(run: TrainedRun, args: argparse.Namespace) -> LoadedRun:
    """Load Keras quietly (on ``KERAS_BACKEND``, else the run's own backend), the checkpoint and the
    run's data splits (test set cut to --limit)."""
    from aetrain.training.backend import activate, backend_for_trained_run
    from aetrain.training.runtime import import_keras_quietly

    manifest = run.metadata.get("manifest")
    trained_on = manifest.get("backend") if isinstance(manifest, dict) else None
    activate(backend_for_trained_run(trained_on))
    import_keras_quietly()
    from aetrain.data import load_data
    from aetrain.run_folder.checkpoints import load_checkpoint

    cfg = run.config
    data_dir = args.data_dir
    run_dir = getattr(cfg.data, "dir", None)
    if data_dir is None and run_dir is not None and Path(run_dir).is_dir():
        data_dir = run_dir
    if not hasattr(cfg.data, "dir"):
        if data_dir is not None:
            raise DataError(
                f"--data-dir={data_dir}: this run's data set, {cfg.data.name}, reads no files. Leave "
                "--data-dir out."
            )
        data_cfg = cfg.data
    else:
        data_cfg = dataclasses.replace(cfg.data, dir=None if data_dir is None else str(data_dir))
    data = load_data(data_cfg, test_limit=args.limit)
    model = load_checkpoint(run.checkpoint, compile=False, expected=cfg)
    output_dir = writable_output_dir(run, args)
    return LoadedRun(run=run, model=model, data=data, output_dir=output_dir)


def seed_of(run: TrainedRun, args: argparse.Namespace) -> int:
    return run.config.seed if args.seed is None else args.seed
