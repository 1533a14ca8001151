"""``python -m bench.results [--quick]`` (``make results``): every preset trained and evaluated on
Fashion-MNIST, one table in docs/RESULTS.md.

The runs: every ``conf/experiment/seed_*.yaml``, ``variant=conv_vae``, and the shallow autoencoder of
TensorFlow's "Intro to Autoencoders" (784 -> 64 -> 784). Each is ``aetrain`` with its preset's
settings (full data, the preset's epochs), then ``aetrain-evaluate`` on the 10,000 test images; the
table is read from their ``eval.json`` and ``metrics.json``: MSE, PSNR, SSIM, linear-probe accuracy,
and for the VAEs the negative ELBO, the IWAE NLL and the active units, with the training time and the
machine. ``--quick`` trains one small epoch per run (CI, and tests/test_results.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.aetrain_runs import run_aetrain

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "conf" / "experiment"


@dataclass(frozen=True)
class Entry:
    name: str
    overrides: tuple[str, ...]


def entries() -> list[Entry]:
    """Every seed preset, then the conv VAE and the shallow 784 -> 64 -> 784 autoencoder."""
    presets = [
        Entry(path.stem, (f"experiment={path.stem}",)) for path in sorted(EXPERIMENTS.glob("seed_*.yaml"))
    ]
    return [
        *presets,
        Entry("conv_vae", ("variant=conv_vae",)),
        Entry("shallow_64", ("variant=dense", "variant.hidden_units=[]", "latent_size=64")),
        *(Entry(family, (f"variant={family}",)) for family in FAMILIES),
    ]


#: aetrain's families from the literature (aetrain/models/families/), each at its defaults.
FAMILIES = ("vqvae", "wae", "iwae", "beta_tcvae")


def own_figure(metrics: dict, report: dict) -> str:
    """The figure a family from the literature is known by (IWAE's NLL has its own column)."""
    if "vqvae" in report:
        usage = report["vqvae"]
        return f"codebook perplexity {usage['codebook_perplexity']:.1f} of {usage['codebook_size']}"
    if "wae" in report:
        return f"MMD² {report['wae']['mmd']:.4f}"
    test = metrics.get("test", {})
    if "total_correlation" in test:
        return f"TC {test['total_correlation']:.1f} nats (MWS)"
    return ""


def quick_overrides(data_dir: str | None) -> list[str]:
    data = [f"data.dir={data_dir}"] if data_dir else []
    eager = "trainer.run_eagerly=true"  # a few batches: quicker than tracing them
    return ["trainer=smoke", "trainer.progress=false", eager, "data.limit=256", "data.val_size=64", *data]


def evaluate_run(run_dir: Path, quick: bool, data_dir: str | None) -> dict:
    """``aetrain-evaluate RUN`` in a subprocess; its eval.json."""
    command = [sys.executable, "-m", "aetrain.commands.evaluate", str(run_dir)]
    if data_dir:
        command += ["--data-dir", data_dir]
    if quick:
        command += ["--limit", "200", "--probe-steps", "20", "--iw-samples", "5"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return json.loads((run_dir / "eval.json").read_text())


def machine() -> str:
    """The CPU model (from /proc/cpuinfo when there is one) and the OS."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _figure(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table_row(entry: Entry, metrics: dict, report: dict) -> str:
    vae = report.get("vae", {})
    active = f"{vae['active_units']} / {vae['latent_dimensions']}" if "active_units" in vae else ""
    cells = [
        entry.name,
        "`" + " ".join(entry.overrides) + "`",
        str(metrics.get("epochs_completed", "")),
        _figure(report["mse"], 5),
        _figure(report["psnr_db"], 2),
        _figure(report["ssim"], 4),
        _figure(100 * report["linear_probe"]["probe_test_accuracy"], 1),
        _figure(vae.get("negative_elbo_nats"), 1),
        _figure(vae.get("iwae_nats"), 1),
        active,
        own_figure(metrics, report),
        _figure(metrics.get("train_seconds"), 0),
        metrics.get("device", ""),
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| run | overrides | epochs | MSE | PSNR (dB) | SSIM | linear probe (%) | -ELBO (nats) | IWAE NLL (nats) "
    "| active units | own figure | train (s) | device |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---|"
)


def render(rows: list[str], quick: bool, machine_line: str, seconds: float) -> str:
    mode = "quick mode (one small epoch per run: figures for CI, not results)" if quick else "full runs"
    return "\n".join(
        [
            "# Results: every aetrain preset on Fashion-MNIST",
            "",
            f"Written by `make results` (`python -m bench.results`), {mode}, in {seconds / 60:.1f} min on "
            f"{machine_line}.",
            "",
            "Test-set figures from `aetrain-evaluate` (10,000 test images; MSE per pixel; PSNR and SSIM on "
            "[0, 1] pixels; linear probe: logistic regression on the training set's codings). For the VAEs: "
            "the negative ELBO and the IWAE estimate of -log p(x) (K = 100 importance samples) under a "
            "Bernoulli likelihood, in nats per image, and the latent dimensions whose encoder mean varies "
            "across test images (variance > 0.01). The families from the literature at their defaults, "
            "each with the figure it is known by: the VQ-VAE's codebook perplexity, the WAE's MMD² to "
            "N(0, I), beta-TCVAE's total correlation (minibatch-weighted sampling, so offset by "
            "(latent_size - 1) log(N M)), IWAE's NLL in its column. Training time: the `fit` call "
            "(metrics.json `train_seconds`).",
            "",
            HEADER,
            *rows,
            "",
        ]
    )


def _merged_with_table(table: Path, new_rows: list[str], order: list[str]) -> list[str]:
    """``new_rows`` in place of the rows of the same runs in ``table``'s current table (the others
    kept as they are), in the order of ``order``."""

    def name(row: str) -> str:
        return row.split("|")[1].strip()

    kept = {}
    if table.is_file():
        lines = table.read_text().splitlines()
        kept = {name(line): line for line in lines if line.startswith("| ") and name(line) in order}
    kept.update({name(row): row for row in new_rows})
    return [kept[run] for run in order if run in kept]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small epoch per run (CI, tests)")
    parser.add_argument("--data-dir", help="Fashion-MNIST folder (default: aetrain's usual search)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "RESULTS.md"), help="the table's file")
    parser.add_argument("--runs-dir", default=str(ROOT / "outputs" / "results"), help="the run folders")
    parser.add_argument(
        "--only", help="comma-separated run names (default: all); the table's other rows are kept"
    )
    args = parser.parse_args(argv)

    chosen = entries()
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {entry.name for entry in chosen}
        if unknown:
            parser.error(f"no such run: {', '.join(sorted(unknown))}")
        chosen = [entry for entry in chosen if entry.name in names]
    started = time.perf_counter()
    rows = []
    for entry in chosen:
        run_dir = Path(args.runs_dir) / entry.name
        overrides = [*entry.overrides]
        if args.quick:
            overrides += quick_overrides(args.data_dir)
        elif args.data_dir:
            overrides.append(f"data.dir={args.data_dir}")
        print(f"training {entry.name}: aetrain {' '.join(overrides)}", flush=True)
        run = run_aetrain(overrides, run_dir)
        report = evaluate_run(run_dir, args.quick, args.data_dir)
        rows.append(table_row(entry, run.metrics, report))
    if args.only:
        rows = _merged_with_table(Path(args.out), rows, [entry.name for entry in entries()])
    text = render(rows, args.quick, machine(), time.perf_counter() - started)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
