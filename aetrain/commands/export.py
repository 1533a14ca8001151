"""``aetrain-export RUN [--out DIR]``: the trained model in forms that run without aetrain.

Writes encoder.keras, decoder.keras, autoencoder_savedmodel/, encoder_savedmodel/ and encoder.tflite
(aetrain.analysis.serving_export says what each holds).
Exit codes: 0 done, 2 RUN is not a usable aetrain run or
checkpoint (missing, damaged, foreign), 5 --out cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from aetrain import exit_codes
from aetrain.commands.companion import writable_output_dir
from aetrain.errors import AetrainError, failure
from aetrain.run_folder import layout
from aetrain.run_folder.lock import hold_run_folder
from aetrain.run_folder.trained_run import locate_trained_run

EXPORT_FOLDER = layout.EXPORT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aetrain-export",
        description="Export a trained autoencoder for use without aetrain: encoder.keras and "
        "decoder.keras (Keras's built-in layers only), TensorFlow SavedModels of the autoencoder and "
        "of the encoder (for TF Serving), and encoder.tflite (TensorFlow Lite).",
    )
    parser.add_argument(
        "path",
        metavar="RUN",
        help="a run folder (uses its checkpoints/best.keras) or a .keras checkpoint written by aetrain",
    )
    parser.add_argument("--out", help=f"folder for the exports (default: RUN/{EXPORT_FOLDER})")
    return parser


def export(args: argparse.Namespace, console: Console) -> None:
    run = locate_trained_run(args.path)
    out = writable_output_dir(run, argparse.Namespace(out=args.out or str(run.output_dir / EXPORT_FOLDER)))
    with hold_run_folder(out):  # not while a run trains there
        _export(run, out, console)


def _export(run, out: Path, console: Console) -> None:
    from aetrain.training.backend import BackendChoice, activate, needs_tensorflow
    from aetrain.training.runtime import import_tensorflow_quietly

    needs_tensorflow("aetrain-export (a SavedModel and TensorFlow Lite)")
    # SavedModels and TensorFlow Lite are TensorFlow's: a run trained on JAX exports from TensorFlow
    activate(BackendChoice("tensorflow", "SavedModel and TensorFlow Lite are TensorFlow's"))
    import_tensorflow_quietly()
    from aetrain.analysis.serving_export import export_model
    from aetrain.models.family import family_of
    from aetrain.run_folder.checkpoints import load_checkpoint

    model = load_checkpoint(run.checkpoint, compile=False, expected=run.config)
    with console.status("exporting"):
        paths = export_model(model, family_of(run.config), out)
    for key, path in paths.items():
        console.print(f"[bold]{key}:[/bold] {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    console = Console()
    try:
        export(args, console)
    except (AetrainError, OSError) as error:  # OSError: a write that failed midway (e.g. a full disk)
        message, exit_code = failure(error)
        title = "cannot write the exports" if exit_code == exit_codes.OUTPUT else "cannot do that"
        console.print(Panel(message, title=f"aetrain: {title}", border_style="red"))
        return exit_code
    return exit_codes.OK


if __name__ == "__main__":
    sys.exit(main())
