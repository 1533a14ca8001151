"""``python -m bench [--quick]``: the seed's recipe against aetrain's defaults, on Fashion-MNIST.

1. the seed's recipe (conv autoencoder, plain Keras, NumPy fit, batch 32, Nadam, MSE, 10 epochs): its
   final validation/test MSE is the quality target, its training wall time the baseline;
2. ``aetrain variant=conv`` with aetrain's defaults for as many epochs: time until its validation MSE
   first reaches the baseline's final validation MSE (the same 5,000 images), and its final test MSE;
3. steady-state training throughput of every variant at its default config beside the seed recipe's
   for the same model;
4. data loading (first run: decode + write the cache; cached) and the CLI's start-up (process start to
   the end of the first training step, from metrics.json).

It prints a markdown report and writes it to bench/RESULTS.md (``--quick``: bench/RESULTS-quick.md).
``--quick`` trains one epoch on a few thousand images, for CI: it reports figures, it never fails on them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
VARIANTS = ("dense", "conv", "vae", "conv_vae")


@dataclass(frozen=True)
class Plan:
    """How much each part trains: the full benchmark, or the quick one for CI."""

    epochs: int  # baseline and aetrain conv (the book's 10)
    throughput_epochs: int  # the other variants: the first epoch traces, the rest are steady
    limit: int | None
    val_size: int
    test_limit: int | None


FULL = Plan(epochs=10, throughput_epochs=3, limit=None, val_size=5000, test_limit=None)
QUICK = Plan(epochs=1, throughput_epochs=1, limit=3000, val_size=500, test_limit=1000)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one epoch on a few thousand images (CI)")
    parser.add_argument("--out", type=Path, help="report file (default bench/RESULTS.md or RESULTS-quick.md)")
    parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST files (default: search)")
    parser.add_argument("--limit", type=int, help="training images kept (default: all, quick: 3000)")
    parser.add_argument("--val-size", type=int, help="validation images (default 5000, quick: 500)")
    parser.add_argument("--epochs", type=int, help="epochs of the baseline and of aetrain conv")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated variants whose throughput is compared (default: {','.join(VARIANTS)}; "
        "conv always runs: it races the recipe)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: no variant {', '.join(unknown)}; choose from {','.join(VARIANTS)}")
    return args


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        epochs=args.epochs or base.epochs,
        throughput_epochs=base.throughput_epochs,
        limit=args.limit if args.limit is not None else base.limit,
        val_size=args.val_size or base.val_size,
        test_limit=base.test_limit,
    )


def data_overrides(plan: Plan, data_dir: str | None) -> list[str]:
    overrides = [
        f"data.limit={'null' if plan.limit is None else plan.limit}",
        f"data.val_size={plan.val_size}",
        f"data.test_limit={'null' if plan.test_limit is None else plan.test_limit}",
    ]
    return overrides + ([f"data.dir={data_dir}"] if data_dir else [])


def time_data_loading(plan: Plan, data_dir: str | None, cache: Path) -> dict[str, float]:
    """Seconds to load and split the data: with an empty cache (decode the gz files, write the .npz),
    then from the cache (median of three)."""
    from aetrain.data import load_fashion_mnist

    os.environ["AETRAIN_CACHE_DIR"] = str(cache)

    def load() -> float:
        started = time.perf_counter()
        load_fashion_mnist(data_dir, plan.limit, plan.val_size, test_limit=plan.test_limit)
        return time.perf_counter() - started

    first = load()
    return {"first": first, "cached": statistics.median(load() for _ in range(3))}


def seed_recipe_on_aetrain_model(variant: str, data, epochs: int) -> dict:
    """The seed's recipe (batch 32, Nadam, fp32, NumPy fit) on the model aetrain builds for ``variant``."""
    import keras
    from hydra import compose, initialize_config_dir

    from aetrain.commands.train import config_dir
    from aetrain.config import validate
    from aetrain.models.build import build_model
    from bench.seed_recipe import train_seed_recipe

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = validate(compose(config_name="config", overrides=[f"variant={variant}"]))
    keras.utils.clear_session()
    keras.mixed_precision.set_dtype_policy("float32")
    return train_seed_recipe(build_model(cfg), data.x_train, data.x_val, None, epochs)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = plan_from(args)
    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    from aetrain.training.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    from aetrain.data import load_fashion_mnist
    from bench import report
    from bench.aetrain_runs import run_aetrain, seconds_to_reach
    from bench.figure import plot_time_to_quality
    from bench.seed_recipe import build_seed_conv_autoencoder, train_seed_recipe

    session_start = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    loads = {"start": report.load_average()}
    work = Path(tempfile.mkdtemp(prefix="aetrain-bench-"))
    say = lambda message: print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: E731

    say("data loading (empty cache, then cached)")
    loading = time_data_loading(plan, args.data_dir, work / "cache")
    data = load_fashion_mnist(args.data_dir, plan.limit, plan.val_size, test_limit=plan.test_limit)
    common = [*data_overrides(plan, args.data_dir), "trainer.progress=true"]

    say(f"1. seed recipe, conv, {plan.epochs} epochs, batch 32, Nadam, float32")
    keras.mixed_precision.set_dtype_policy("float32")
    baseline = train_seed_recipe(
        build_seed_conv_autoencoder(), data.x_train, data.x_val, data.x_test, plan.epochs
    )
    loads["after baseline"] = report.load_average()

    say(f"2. aetrain variant=conv trainer.epochs={plan.epochs} (defaults otherwise)")
    conv = run_aetrain(["variant=conv", f"trainer.epochs={plan.epochs}", *common], work / "conv")
    target = baseline["val_loss"][-1]
    reached_epoch, reached_seconds = seconds_to_reach(conv.val_loss, conv.metrics["epoch_seconds"], target)
    loads["after aetrain conv"] = report.load_average()

    say("3. throughput of the other variants: seed recipe and aetrain defaults")
    throughput = {"conv": (baseline["images_per_second"], conv)}
    for variant in args.variants.split(","):
        if variant == "conv":
            continue
        seed = seed_recipe_on_aetrain_model(variant, data, max(plan.throughput_epochs - 1, 1))
        ours = run_aetrain(
            [f"variant={variant}", f"trainer.epochs={plan.throughput_epochs}", *common], work / variant
        )
        throughput[variant] = (seed["images_per_second"], ours)
    loads["end"] = report.load_average()

    text = render(
        plan,
        args,
        out.with_suffix(".png").name,
        session_start,
        loads,
        loading,
        baseline,
        conv,
        target,
        reached_epoch,
        reached_seconds,
        throughput,
        len(data.x_train),
    )
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    picture = plot_time_to_quality(baseline, conv.metrics, out.with_suffix(".png"))
    say(f"written {out} and {picture}")
    return 0


def render(plan, args, picture_name, session_start, loads, loading, baseline, conv, target, reached_epoch,
           reached_seconds, throughput, train_images) -> str:  # fmt: skip
    from bench import report

    m = conv.metrics
    trainer = m["config"]["trainer"]
    recipe = (
        f"batch {trainer['batch_size']}, {trainer['optimizer']} lr {trainer['learning_rate']:g}, "
        f"{trainer['schedule']}, {m.get('precision', trainer['precision'])}, "
        f"output {m['config']['variant']['output_activation']}"
    )
    quality = report.markdown_table(
        ["run (conv, same layers)", "epochs", "training wall time", "less time", "final val MSE",
         "test MSE", "time to val MSE <= baseline's final", "speed-up to quality"],
        [
            ["seed recipe (batch 32, Nadam, float32, linear output)", str(plan.epochs),
             report.seconds(baseline["train_seconds"]), "1.00x", f"{baseline['val_loss'][-1]:.5f}",
             f"{baseline['test_mse']:.5f}", report.seconds(baseline["train_seconds"]), "1.00x"],
            [f"aetrain defaults ({recipe})", str(plan.epochs), report.seconds(m["train_seconds"]),
             report.ratio(baseline["train_seconds"], m["train_seconds"]),
             f"{conv.val_loss[-1]:.5f}", f"{m['test']['mse']:.5f}",
             f"{report.seconds(reached_seconds)} (epoch {reached_epoch})" if reached_epoch else "not reached",
             report.ratio(baseline["train_seconds"], reached_seconds)],
        ],
    )  # fmt: skip
    targets = report.markdown_table(
        ["target (issue 4, 2 CPU cores)", "measured", "met"],
        target_rows(baseline, conv, throughput, loading),
    )
    rows = []
    for variant, (seed_rate, run) in throughput.items():
        t = run.metrics["config"]["trainer"]
        rows.append([
            variant, report.rate(seed_rate), report.rate(run.metrics["images_per_second"]),
            report.ratio(run.metrics["images_per_second"], seed_rate),
            f"batch {t['batch_size']} in {run.metrics.get('batch_splits', 1)} slice(s), "
            f"{run.metrics.get('precision', t['precision'])}, threads {_pools(run.metrics)}",
        ])  # fmt: skip
    speed = report.markdown_table(
        ["variant", "seed recipe images/s", "aetrain images/s", "ratio", "aetrain default"], rows
    )
    startup = report.markdown_table(
        ["figure", "value"],
        [
            ["data loading, first run (decode gz, check, write .npz cache)",
             report.seconds(loading["first"])],
            ["data loading, cached (.npz)", report.seconds(loading["cached"])],
            ["data loading inside `aetrain variant=conv` (cached)", report.seconds(m.get("data_seconds"))],
            ["`aetrain variant=conv`: process start to end of first training step",
             report.seconds(m.get("startup_seconds"))],
            *[[f"`aetrain variant={v}`: process start to end of first training step",
               report.seconds(run.metrics.get("startup_seconds"))] for v, (_, run) in throughput.items()
              if v != "conv"],
            [f"`aetrain variant=conv trainer.epochs={plan.epochs}`: whole command",
             report.seconds(conv.wall_seconds)],
        ],
    )  # fmt: skip
    machine = report.machine_info()
    mode = "quick: a CI smoke run, figures only" if args.quick else "full"
    lines = [
        f"# aetrain benchmark ({mode})",
        "",
        f"Run {session_start}: `python -m bench{' --quick' if args.quick else ''}`, "
        f"{train_images:,} training images, {plan.val_size:,} validation, "
        f"{'all 10,000' if plan.test_limit is None else f'{plan.test_limit:,}'} test.",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        "- 1-minute load average: " + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()),
        "",
        "## Targets",
        "",
        targets,
        "",
        "## Time to quality (conv)",
        "",
        quality,
        "",
        f"![validation MSE against training time]({picture_name})",
        "",
        f"Target: the seed recipe's final validation MSE ({target:.5f}, the same {plan.val_size:,} held-out "
        "training images for both). Times are `fit` wall time including validation and, for aetrain, "
        "per-epoch checkpoints and the progress bar; the speed-up is the baseline's whole training time over "
        "aetrain's time to the target; less time is the baseline's training time over aetrain's.",
        "",
        "## Training throughput (steady-state epochs, images/s)",
        "",
        speed,
        "",
        "Seed recipe: batch 32, Nadam, float32, NumPy `fit`, on the same model (conv: the seed's own, from "
        "plain Keras layers; dense, vae: the model aetrain builds). Steady state: median epoch after the "
        "first.",
        "",
        "## Start-up and data",
        "",
        startup,
        "",
    ]
    return "\n".join(lines)


def target_rows(baseline, conv, throughput, loading) -> list[list[str]]:
    """Each of the issue's targets: what was measured in this session, and whether it is met."""
    from bench import report

    m = conv.metrics
    time_ratio = baseline["train_seconds"] / m["train_seconds"]
    mse, baseline_mse, inside = m["test"]["mse"], baseline["test_mse"], m.get("data_seconds") or 0.0
    rows = [
        ["`aetrain variant=conv trainer.epochs=10`: at most 1/3 of the seed recipe's training time",
         f"{report.seconds(m['train_seconds'])} vs {report.seconds(baseline['train_seconds'])}: "
         f"{time_ratio:.2f}x less", _yes(time_ratio >= 3)],
        ["... with a test MSE at or below the seed recipe's",
         f"{mse:.5f} vs {baseline_mse:.5f}", _yes(mse <= baseline_mse)],
    ]  # fmt: skip
    for variant, (seed_rate, run) in throughput.items():
        ours = run.metrics["images_per_second"]
        ok = ours is not None and ours >= 2 * seed_rate
        rows.append([f"{variant}: training throughput at least 2x the seed recipe's",
                     f"{report.rate(ours)} vs {report.rate(seed_rate)} images/s", _yes(ok)])  # fmt: skip
    rows.append(["data loading under 1 s after the first run",
                 f"{report.seconds(loading['cached'])} (inside the CLI: {report.seconds(inside)})",
                 _yes(max(loading["cached"], inside) < 1)])  # fmt: skip
    return rows


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _pools(metrics: dict) -> str:
    pools = metrics.get("thread_pools") or {}
    show = lambda n: str(n) if n else "TF's"  # noqa: E731
    return f"{show(pools.get('intra_op'))} intra / {show(pools.get('inter_op'))} inter"


if __name__ == "__main__":
    sys.exit(main())
