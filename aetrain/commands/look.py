"""``aetrain-look PATH``: the test set's codings in 2-D (PCA, t-SNE); denoising.png for denoising runs."""

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
from aetrain.config import NoNoise
from aetrain.models.family import family_of
from aetrain.run_folder import layout

TSNE_POINTS, DENOISING_IMAGES = 2000, 10
MIN_MAP_POINTS = 3  # two principal components and a t-SNE perplexity below the count need three


def _too_few_points(what: str) -> str:
    return (
        f"{what} a map of codings in 2-D needs at least {MIN_MAP_POINTS} test images (PCA's two "
        f"components, t-SNE's neighbours). Give --limit {MIN_MAP_POINTS} or more, or leave it out."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "aetrain-look",
        "Look at a trained autoencoder: codings_pca.png (the test set's codings on their two principal "
        "components, coloured by class), codings_tsne.png (t-SNE, when scikit-learn is installed), and "
        "denoising.png (clean, noisy, reconstructed) for runs trained with noise. Writes into the run "
        "folder (or --out).",
    )
    parser.add_argument(
        "--tsne-points",
        type=positive_int,
        default=TSNE_POINTS,
        help=f"t-SNE on the first N of the test images in use ({TSNE_POINTS}; t-SNE is slow)",
    )
    parser.add_argument("--no-tsne", action="store_true", help="skip t-SNE even when scikit-learn is there")
    parser.add_argument(
        "--images",
        type=positive_int,
        default=DENOISING_IMAGES,
        help=f"columns of denoising.png ({DENOISING_IMAGES})",
    )
    return parser


def look(args: argparse.Namespace, console: Console) -> None:
    if args.limit is not None and args.limit < MIN_MAP_POINTS:
        raise CommandRefused(_too_few_points(f"--limit {args.limit}"))
    run = locate(args)
    loaded = load(run, args)  # TensorFlow loads here, quietly
    from aetrain.analysis.pictures import coding_map, reconstruction_grid
    from aetrain.analysis.projections import pca_2d, tsne_2d, tsne_available
    from aetrain.models.build import coding_vectors
    from aetrain.models.noise import corrupt

    cfg, model, data, out = run.config, loaded.model, loaded.data, loaded.output_dir
    seed = seed_of(run, args)
    codings = coding_vectors(model, data.x_test)
    if len(codings) < MIN_MAP_POINTS:
        raise CommandRefused(_too_few_points(f"The run's test split holds {len(codings)} images:"))
    kind = family_of(cfg).coding_kind
    written = []

    points, explained = pca_2d(codings)
    coding_map(
        points,
        data.y_test,
        data.class_names,
        out / layout.CODINGS_PCA_PNG,
        f"{cfg.variant.name}: PCA of {len(codings):,} test {kind} ({codings.shape[1]}-D); "
        f"PC1 {100 * explained[0]:.0f} %, PC2 {100 * explained[1]:.0f} % of the variance",
    )
    written.append(out / layout.CODINGS_PCA_PNG)

    if args.no_tsne:
        pass
    elif tsne_available():
        count = min(args.tsne_points, len(codings))
        with console.status(f"t-SNE on {count:,} codings"):
            embedded = tsne_2d(codings[:count], seed)
        coding_map(
            embedded,
            data.y_test[:count],
            data.class_names,
            out / layout.CODINGS_TSNE_PNG,
            f"{cfg.variant.name}: t-SNE of {count:,} test {kind} ({codings.shape[1]}-D), seed {seed}",
        )
        written.append(out / layout.CODINGS_TSNE_PNG)
    else:
        console.print("codings_tsne.png skipped: t-SNE needs scikit-learn (pip install 'aetrain[tsne]').")

    if isinstance(cfg.noise, NoNoise):
        console.print("denoising.png skipped: this run was trained without noise (noise=none).")
    else:
        count = min(args.images, len(data.x_test))
        clean = data.x_test[:count]
        noisy = corrupt(model, clean)
        reconstructed = model.predict(noisy, verbose=0)
        reconstruction_grid(
            [("clean", clean), (f"noisy\n({cfg.noise.name})", noisy), ("reconstructed", reconstructed)],
            [data.class_names[int(label)] for label in data.y_test[:count]],
            out / layout.DENOISING_PNG,
        )
        written.append(out / layout.DENOISING_PNG)
    for path in written:
        console.print(f"[bold]written:[/bold] {path}")


def main(argv: list[str] | None = None) -> int:
    return run_command(look, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
