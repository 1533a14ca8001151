"""``aetrain-evaluate PATH``: test-set figures of a trained run -> eval.json and a table."""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from aetrain.commands.companion import (
    CommandRefused,
    bounded_int,
    command_parser,
    load,
    locate,
    positive_int,
    run_command,
    seed_of,
)
from aetrain.models.family import Family, family_of
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_json_atomically

# aetrain.analysis.evaluation's defaults, repeated here because importing it loads TensorFlow, which
# --help and a bad path should not wait for (tests/test_commands.py checks that the two agree).
PROBE_STEPS, ELBO_SAMPLES, IW_SAMPLES = 2000, 4, 100
MAX_SAMPLES = 5000  # samples per test image: beyond it the arrays grow past any machine's memory


def noise_levels(text: str) -> list[float]:
    """``0,0.1,0.2``: noise levels (Gaussian stddevs or dropout rates), each >= 0."""
    try:
        levels = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be numbers separated by commas, got {text!r}") from None
    if not levels or any(not 0 <= level < float("inf") for level in levels):
        raise argparse.ArgumentTypeError(f"must be numbers >= 0 separated by commas, got {text!r}")
    return levels


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "aetrain-evaluate",
        "Evaluate a trained autoencoder on its data set's test set: per-pixel MSE, PSNR and SSIM; "
        "coding sparsity for sparse runs; the negative ELBO (nats per image, Bernoulli likelihood) for "
        "VAEs; denoising MSE for denoising runs; the linear-probe accuracy of the codings. Writes "
        "eval.json into the run folder (or --out).",
    )
    parser.add_argument(
        "--train-limit",
        type=positive_int,
        help="train the linear probe on the first N training images' codings (default: the run's "
        "whole training split)",
    )
    parser.add_argument(
        "--probe-steps",
        type=positive_int,
        default=PROBE_STEPS,
        help=f"Adam steps (batches of 256) for the linear probe ({PROBE_STEPS})",
    )
    parser.add_argument(
        "--elbo-samples",
        type=functools.partial(bounded_int, low=1, high=MAX_SAMPLES),
        default=ELBO_SAMPLES,
        help=f"codings sampled per test image for the VAE's reconstruction term ({ELBO_SAMPLES}; at most "
        f"{MAX_SAMPLES})",
    )
    parser.add_argument(
        "--iw-samples",
        type=functools.partial(bounded_int, low=1, high=MAX_SAMPLES),
        default=IW_SAMPLES,
        help=f"importance samples K per test image for the VAE's IWAE likelihood estimate ({IW_SAMPLES}; "
        f"at most {MAX_SAMPLES}, the K of the IWAE paper's own estimates)",
    )
    parser.add_argument(
        "--noise-levels",
        type=noise_levels,
        metavar="L1,L2,...",
        help="also measure denoising across these noise levels (e.g. 0,0.1,0.2,0.3,0.5): Gaussian "
        "stddevs, or dropout rates for a noise=dropout run; writes denoising_curve.png",
    )
    return parser


def _check_noise_levels(levels: list[float] | None, cfg) -> None:
    """Each level is a strength the run's noise takes (its own schema checks it); 0 is clean images."""
    if not levels:
        return
    from aetrain.config import ConfigError

    given = f"--noise-levels {','.join(map(str, levels))}"
    noise = cfg.noise
    if noise.at_level(1.0) is None:
        raise CommandRefused(
            f"{given}: this run's noise ({noise.name}) has no one strength to vary (its schema names no "
            "`level_key`), so aetrain-evaluate cannot draw its denoising curve. Leave out --noise-levels."
        )
    for level in levels:
        if level == 0:
            continue
        try:
            noise.at_level(level).check(cfg)
        except ConfigError as error:
            raise CommandRefused(
                f"{given}: this run's levels are {noise.level_label}s, and {level:g} is not one: "
                f"allowed is {error.allowed} (e.g. --noise-levels 0,0.1,0.3,0.5)."
            ) from None


def evaluate(args: argparse.Namespace, console: Console) -> None:
    import dataclasses

    located = locate(args)
    _check_noise_levels(args.noise_levels, located.config)
    loaded = load(located, args)  # TensorFlow loads here, quietly, once the path is known good
    from aetrain.analysis.evaluation import evaluate_trained_model

    data = loaded.data
    if args.train_limit is not None:
        kept = slice(0, args.train_limit)  # rows, still unread: the probe reads them a batch at a time
        data = dataclasses.replace(data, x_train=data.x_train.subset(kept), y_train=data.y_train[kept])
    seed = seed_of(loaded.run, args)
    with console.status("evaluating on the test set"):
        report = evaluate_trained_model(
            loaded.model,
            loaded.run.config,
            data,
            seed=seed,
            elbo_samples=args.elbo_samples,
            probe_steps=args.probe_steps,
            iw_samples=args.iw_samples,
            noise_levels=args.noise_levels,
        )
    report = {
        "checkpoint": str(loaded.run.checkpoint),
        "epoch": loaded.run.metadata.get("epoch"),
        "data": str(data.source),
        "seed": seed,
        **report,
    }
    report["manifest"] = _run_manifest(loaded.run)
    _write_health_pictures(report, loaded.output_dir)
    path = write_json_atomically(loaded.output_dir / layout.EVAL, report)
    console.print(report_table(report, family_of(loaded.run.config)))
    for warning in report.get("warnings", []):
        console.print(f"[bold yellow]warning:[/bold yellow] {warning}")
    console.print(f"[bold]written:[/bold] {path}")


def _run_manifest(run) -> dict[str, Any] | None:
    """The manifest the checkpoint carries, else the run folder's manifest.json (None for older runs)."""
    from aetrain.run_folder.manifest import read_manifest

    return run.metadata.get("manifest") or read_manifest(run.output_dir)


def _write_health_pictures(report: dict[str, Any], output_dir: Path) -> None:
    """denoising_curve.png when --noise-levels was given; sparsity.png for a sparse run."""
    from aetrain.analysis.pictures import denoising_curve_plot, unit_activation_histogram

    if "denoising_curve" in report:
        curve = report["denoising_curve"]
        denoising_curve_plot(curve["points"], curve["level"], output_dir / layout.DENOISING_CURVE_PNG)
    if "sparsity_report" in report:
        sparse = report["sparsity_report"]
        unit_activation_histogram(
            sparse["unit_mean_activation"], sparse.get("target_activation"), output_dir / layout.SPARSITY_PNG
        )


def report_table(report: dict[str, Any], family: Family) -> Table:
    table = Table(title=f"aetrain-evaluate: {Path(report['checkpoint']).name}", header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(
        "model",
        f"{report['variant']} / noise {report['noise']} / sparsity {report['sparsity']} "
        f"/ latent {report['latent_size']}",
    )
    table.add_row("test images", f"{report['test_images']:,}")
    table.add_row("MSE per pixel", f"{report['mse']:.5f}")
    table.add_row("PSNR", f"{report['psnr_db']:.2f} dB")
    table.add_row("SSIM", f"{report['ssim']:.4f}")
    if "sparsity_report" in report:
        sparse = report["sparsity_report"]
        low, high = sparse["unit_mean_activation_range"]
        target = sparse.get("target_activation")
        table.add_row(
            "mean activation", f"{sparse['mean_activation']:.4f}" + (f" (target {target})" if target else "")
        )
        table.add_row("per-unit mean activation", f"{low:.4f} .. {high:.4f}")
        table.add_row(
            f"codings < {sparse['near_zero_threshold']}", f"{100 * sparse['near_zero_fraction']:.1f} %"
        )
        if "dead_units" in sparse:
            table.add_row("dead units (never > 0.05)", str(sparse["dead_units"]))
    for label, value in family.evaluation_rows(report):
        table.add_row(label, value)
    if "denoising" in report:
        denoising = report["denoising"]
        table.add_row("noisy input MSE", f"{denoising['noisy_input_mse']:.5f}")
        table.add_row("denoised MSE", f"{denoising['denoised_mse']:.5f}")
    for point in report.get("denoising_curve", {}).get("points", []):
        table.add_row(
            f"noise {point['level']:g}: input / reconstruction MSE",
            f"{point['noisy_input_mse']:.5f} / {point['reconstruction_mse']:.5f}",
        )
    probe = report["linear_probe"]
    if "probe_undefined" in probe:
        table.add_row("linear probe accuracy", f"not defined: {probe['probe_undefined']}")
    else:
        table.add_row(
            "linear probe accuracy",
            f"{100 * probe['probe_test_accuracy']:.1f} % test "
            f"({100 * probe['probe_train_accuracy']:.1f} % on {probe['probe_train_images']:,} train)",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    return run_command(evaluate, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
