"""``aetrain-generate PATH``: new images from a trained VAE (samples, interpolation, 2-D manifold)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from aetrain.commands.companion import (
    CommandRefused,
    command_parser,
    load,
    locate,
    positive_int,
    run_command,
    seed_of,
)
from aetrain.models.family import family_of
from aetrain.run_folder import layout

SAMPLES, STEPS, MANIFOLD_SIZE = 30, 9, 15


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "aetrain-generate",
        "Generate from a trained VAE (variant=vae or conv_vae): samples.png (codings drawn from "
        "N(0, I)), interpolation.png (a straight line in coding space between two test images, decoded, "
        "above the plain pixel blend), and manifold.png for 2-D codings (the decoder over a grid of the "
        "prior's quantiles). Writes into the run folder (or --out).",
    )
    parser.add_argument(
        "--samples", type=positive_int, default=SAMPLES, help=f"images in samples.png ({SAMPLES})"
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=STEPS,
        help=f"images on the interpolation path, ends included ({STEPS})",
    )
    parser.add_argument(
        "--pair",
        type=int,
        nargs=2,
        metavar=("A", "B"),
        help="test-image indices to interpolate between (default: image 0 and the first test image of "
        "another class)",
    )
    parser.add_argument(
        "--manifold-size",
        type=positive_int,
        default=MANIFOLD_SIZE,
        help=f"images per side of manifold.png ({MANIFOLD_SIZE})",
    )
    return parser


def generate(args: argparse.Namespace, console: Console) -> None:
    run = locate(args)
    cfg = run.config
    family = family_of(cfg)
    if not family.samples_from_prior:
        raise CommandRefused(
            f"`{run.checkpoint}` is a {cfg.variant.name} autoencoder, which draws no samples; "
            "aetrain-generate needs one whose family samples from a prior, such as a variational one "
            "(variant=vae or variant=conv_vae: its codings are trained to follow N(0, I), so decoding "
            "random codings gives new images). Train one with `aetrain variant=vae`, or use aetrain-look "
            "for this run."
        )
    loaded = load(run, args)  # TensorFlow loads here, quietly
    from aetrain.analysis.pictures import manifold_grid, reconstruction_grid, sample_grid
    from aetrain.analysis.sampling import decoded_manifold, latent_interpolation

    model, data, out = loaded.model, loaded.data, loaded.output_dir
    decoder = model.get_layer("decoder")
    seed = seed_of(run, args)
    written = []

    sample_grid(
        family.sample(model, args.samples, cfg.latent_size, seed),
        out / layout.SAMPLES_PNG,
        f"decoded from codings drawn from {family.prior_description(cfg.latent_size)}, seed {seed}",
    )
    written.append(out / layout.SAMPLES_PNG)

    first, second = _pair(args.pair, data.y_test)
    weights, decoded, blend = latent_interpolation(model, data.x_test[first], data.x_test[second], args.steps)
    titles = [f"t={w:.2f}" for w in weights]
    titles[0] = f"{data.class_names[data.y_test[first]]} (#{first})"
    titles[-1] = f"{data.class_names[data.y_test[second]]} (#{second})"
    reconstruction_grid(
        [("decoded\ncoding path", decoded), ("pixel blend", blend)], titles, out / layout.INTERPOLATION_PNG
    )
    written.append(out / layout.INTERPOLATION_PNG)

    if cfg.latent_size == 2:
        images, coordinates = decoded_manifold(decoder, args.manifold_size)
        manifold_grid(
            images, coordinates, out / layout.MANIFOLD_PNG, "decoded 2-D coding space (quantiles of N(0, 1))"
        )
        written.append(out / layout.MANIFOLD_PNG)
    else:
        console.print(
            f"manifold.png skipped: it needs 2-D codings and this run has {cfg.latent_size} "
            "(train with latent_size=2)."
        )
    for path in written:
        console.print(f"[bold]written:[/bold] {path}")


def _pair(pair: list[int] | None, labels) -> tuple[int, int]:
    """The requested indices (checked), or image 0 and the first test image of another class."""
    if pair is None:
        others = [i for i, label in enumerate(labels) if label != labels[0]]
        return 0, (others[0] if others else min(1, len(labels) - 1))
    for index in pair:
        if not 0 <= index < len(labels):
            raise CommandRefused(
                f"--pair {pair[0]} {pair[1]}: index {index} is outside the {len(labels)} test images in use "
                f"(0 to {len(labels) - 1}). Pick smaller indices or raise --limit."
            )
    return pair[0], pair[1]


def main(argv: list[str] | None = None) -> int:
    return run_command(generate, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
