"""``aetrain-evaluate PATH``: test-set figures of a trained run -> eval.json and a table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from aetrain.atomic_files import write_json_atomically
from aetrain.commands import command_parser, load, locate, positive_int, run_command, seed_of

# aetrain.evaluation's defaults, repeated here because importing it loads TensorFlow, which --help and a
# bad path should not wait for (tests/test_commands.py checks that the two agree).
PROBE_STEPS, ELBO_SAMPLES = 2000, 4


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
        type=positive_int,
        default=ELBO_SAMPLES,
        help=f"codings sampled per test image for the VAE's reconstruction term ({ELBO_SAMPLES})",
    )
    return parser


def evaluate(args: argparse.Namespace, console: Console) -> None:
    import dataclasses

    loaded = load(locate(args), args)  # TensorFlow loads here, quietly, once the path is known good
    from aetrain.evaluation import evaluate_trained_model

    data = loaded.data
    if args.train_limit is not None:
        data = dataclasses.replace(
            data, x_train=data.x_train[: args.train_limit], y_train=data.y_train[: args.train_limit]
        )
    seed = seed_of(loaded.run, args)
    with console.status("evaluating on the test set"):
        report = evaluate_trained_model(
            loaded.model,
            loaded.run.config,
            data,
            seed=seed,
            elbo_samples=args.elbo_samples,
            probe_steps=args.probe_steps,
        )
    report = {
        "checkpoint": str(loaded.run.checkpoint),
        "epoch": loaded.run.metadata.get("epoch"),
        "data": str(data.source),
        "seed": seed,
        **report,
    }
    path = write_json_atomically(loaded.output_dir / "eval.json", report)
    console.print(report_table(report))
    console.print(f"[bold]written:[/bold] {path}")


def report_table(report: dict[str, Any]) -> Table:
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
    if "vae" in report:
        vae = report["vae"]
        table.add_row("negative ELBO", f"{vae['negative_elbo_nats']:.2f} nats/image")
        table.add_row("  reconstruction", f"{vae['reconstruction_nats']:.2f} nats (Bernoulli)")
        table.add_row("  KL", f"{vae['kl_nats']:.2f} nats")
    if "denoising" in report:
        denoising = report["denoising"]
        table.add_row("noisy input MSE", f"{denoising['noisy_input_mse']:.5f}")
        table.add_row("denoised MSE", f"{denoising['denoised_mse']:.5f}")
    probe = report["linear_probe"]
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
