"""``aetrain-export RUN [--out DIR]``: the trained model in forms that run without aetrain.

Writes encoder.keras, decoder.keras, autoencoder_savedmodel/, encoder_savedmodel/ and encoder.tflite
(aetrain.export says what each holds). Exit codes: 0 done, 2 RUN is not a usable aetrain run or
checkpoint (missing, damaged, foreign), 5 --out cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

from aetrain.commands import EXIT_USAGE
from aetrain.trained_run import RunPathError, locate_trained_run

EXIT_OUTPUT = 5
EXPORT_FOLDER = "export"


class OutUnwritable(Exception):
    """The --out folder cannot be created or written; the message names it and the fix."""


def check_out_folder(out: Path) -> None:
    """Create ``out`` and write a probe file in it before anything slow, or raise OutUnwritable."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise OutUnwritable(
            f"Cannot write the exports into {out} ({error.strerror or error}). Pass --out DIR with a "
            f"folder you may write to (default: RUN/{EXPORT_FOLDER}); nothing was exported."
        ) from None


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
    out = Path(args.out) if args.out else run.output_dir / EXPORT_FOLDER
    check_out_folder(out)
    from aetrain.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    from aetrain.checkpoints import load_checkpoint
    from aetrain.export import export_model

    try:
        model = load_checkpoint(run.checkpoint, compile=False)
    except Exception as error:  # Keras raises many types for a damaged archive
        raise RunPathError(
            f"`{run.checkpoint}` could not be loaded as a Keras model ({type(error).__name__}: "
            f"{str(error)[:300]}). The file is damaged or was not written by this aetrain; export "
            "another checkpoint (e.g. the run's checkpoints/last.keras) or train again."
        ) from None
    with console.status("exporting"):
        paths = export_model(model, out)
    for key, path in paths.items():
        console.print(f"[bold]{key}:[/bold] {path}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    console = Console()
    try:
        export(args, console)
    except RunPathError as error:
        console.print(Panel(str(error), title="aetrain: cannot do that", border_style="red"))
        return EXIT_USAGE
    except (OutUnwritable, OSError) as error:  # OSError: a write that failed midway (e.g. a full disk)
        console.print(Panel(str(error), title="aetrain: cannot write the exports", border_style="red"))
        return EXIT_OUTPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
