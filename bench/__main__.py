"""``python -m bench [--quick] [--scaling] [--data]``: the six seed presets against the seed's recipe.

1. for every preset (``experiment=seed_*``): the seed's recipe (plain Keras, NumPy ``fit``, batch 32,
   Nadam, float32, MSE and the book's penalties, 10 epochs) on the preset's model, then ``aetrain
   experiment=PRESET`` for as many epochs: test MSE, the mean coding activation of the sparse presets,
   the time aetrain takes to reach the recipe's final validation MSE (the same 5,000 images), and the
   steady training throughput of each (bench/presets.py);
2. data loading (first run: decode + write the cache; cached) and the CLI's start-up (process start to
   the end of the first training step, from metrics.json).

It prints a markdown report and writes it to bench/RESULTS.md (``--quick``: bench/RESULTS-quick.md).
``--quick`` trains one epoch on a few thousand images, for CI: it reports figures, it never fails on them.
``--scaling`` measures conv throughput by slice and thread count instead (bench/scaling.py), into
bench/SCALING.md (``--quick``: SCALING-quick.md). ``--data`` measures an image folder of ``--images``
PNGs decoded once and trained on in bounded memory instead (bench/data_loading.py), into bench/DATA.md.
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


@dataclass(frozen=True)
class Plan:
    """How much each part trains: the full benchmark, or the quick one for CI."""

    epochs: int  # the recipe and aetrain (the book's 10)
    scaling_epochs: int  # --scaling: the first epoch traces, the rest are steady
    limit: int | None
    val_size: int
    test_limit: int | None


FULL = Plan(epochs=10, scaling_epochs=3, limit=None, val_size=5000, test_limit=None)
QUICK = Plan(epochs=1, scaling_epochs=1, limit=3000, val_size=500, test_limit=1000)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from bench.presets import PRESETS

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one epoch on a few thousand images (CI)")
    parser.add_argument("--scaling", action="store_true", help="conv throughput by slice and thread count")
    parser.add_argument(
        "--data", action="store_true", help="an image folder: first decode, cached start, memory, images/s"
    )
    parser.add_argument("--images", type=int, default=50_000, help="--data: PNGs in the folder (50,000)")
    parser.add_argument("--size", type=int, default=64, help="--data: their height and width (default 64)")
    parser.add_argument("--out", type=Path, help="report file (default bench/RESULTS.md or RESULTS-quick.md)")
    parser.add_argument("--data-dir", help="folder with the four Fashion-MNIST files (default: search)")
    parser.add_argument("--limit", type=int, help="training images kept (default: all, quick: 3000)")
    parser.add_argument("--val-size", type=int, help="validation images (default 5000, quick: 500)")
    parser.add_argument("--epochs", type=int, help="epochs of the recipe and of aetrain")
    parser.add_argument(
        "--presets",
        default=",".join(PRESETS),
        help=f"comma-separated presets to race (default: all six, {','.join(PRESETS)})",
    )
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated backends aetrain trains each preset on (default: every one installed)",
    )
    parser.add_argument(
        "--recipe-backend", default=None, help="the recipe's Keras backend (default: tensorflow if installed)"
    )
    parser.add_argument(
        "--device",
        action="store_true",
        help="a machine with JAX and no TensorFlow (a GPU): recipe and aetrain on JAX (docs/performance.md)",
    )
    args = parser.parse_args(argv)
    from aetrain.training.backend import BACKENDS, installed

    if args.device:
        args.backends, args.recipe_backend = args.backends or "jax", args.recipe_backend or "jax"
    args.backends = args.backends or ",".join(name for name in BACKENDS if installed(name))
    args.recipe_backend = args.recipe_backend or ("tensorflow" if installed("tensorflow") else "jax")
    os.environ["KERAS_BACKEND"] = args.recipe_backend  # this process's own Keras (data, activations)
    unknown = sorted(set(args.presets.split(",")) - set(PRESETS))
    if unknown:
        parser.error(f"--presets: no preset {', '.join(unknown)}; choose from {','.join(PRESETS)}")
    return args


def plan_from(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        epochs=args.epochs or base.epochs,
        scaling_epochs=base.scaling_epochs,
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


def recipe_args(plan: Plan, data_dir: str | None) -> list[str]:
    """The recipe process's data options: the same images aetrain trains on."""
    found = [f"--val-size={plan.val_size}"]
    found += [] if plan.limit is None else [f"--limit={plan.limit}"]
    found += [] if plan.test_limit is None else [f"--test-limit={plan.test_limit}"]
    return found + ([f"--data-dir={data_dir}"] if data_dir else [])


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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data:  # before Keras loads: aetrain reads a folder before its framework does
        from bench.data_loading import run_data_benchmark

        return run_data_benchmark(args)
    plan = plan_from(args)
    from aetrain.training.runtime import import_keras_quietly

    import_keras_quietly()
    from bench import report

    session_start = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    work = Path(tempfile.mkdtemp(prefix="aetrain-bench-"))
    say = lambda message: print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: E731
    common = [*data_overrides(plan, args.data_dir), "trainer.progress=true"]
    if args.scaling:
        return scaling(args, plan, common, work, say)

    from aetrain.data import load_fashion_mnist
    from bench.presets import PresetRace, auto_backend, race_aetrain, run_recipe_process

    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    loads = {"start": report.load_average()}
    say("data loading (empty cache, then cached)")
    loading = time_data_loading(plan, args.data_dir, work / "cache")
    data = load_fashion_mnist(args.data_dir, plan.limit, plan.val_size, test_limit=plan.test_limit)

    races = []
    backends = args.backends.split(",")
    for preset in args.presets.split(","):
        say(f"{preset}: seed recipe in its own process, {plan.epochs} epochs, batch 32, Nadam, float32")
        recipe_out = work / f"{preset}-recipe.json"
        recipe_data = recipe_args(plan, args.data_dir)
        recipe = run_recipe_process(preset, plan.epochs, recipe_data, recipe_out, args.recipe_backend)
        chosen = auto_backend(preset, common)
        for backend in backends:
            say(f"{preset}: aetrain experiment={preset} trainer.epochs={plan.epochs} (backend {backend})")
            run_dir = work / f"{preset}-{backend}"
            metrics, wall = race_aetrain(preset, plan.epochs, common, run_dir, data, backend)
            races.append(PresetRace(preset, recipe, metrics, wall, backend, auto=backend == chosen))
        loads[f"after {preset}"] = report.load_average()

    text = render(
        plan, args, out.with_suffix(".png").name, session_start, loads, loading, races, len(data.x_train)
    )
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    from bench.figure import plot_time_to_quality

    picture = plot_time_to_quality(races, out.with_suffix(".png"))
    say(f"written {out} and {picture}")
    return 0


def scaling(args, plan: Plan, common: list[str], work: Path, say) -> int:
    """--scaling: the slice/thread table of this machine, printed and written."""
    from bench import report
    from bench.scaling import measure, render, scaling_configs

    out = args.out or HERE / ("SCALING-quick.md" if args.quick else "SCALING.md")
    configs = scaling_configs(os.cpu_count() or 1, args.quick)
    rows = measure(
        configs, [c for c in common if c != "trainer.progress=true"], plan.scaling_epochs, work, say
    )
    heading = (
        f"# aetrain scaling ({'quick' if args.quick else 'full'}): conv throughput by slices and threads\n\n"
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: "
        f"`python -m bench --scaling{' --quick' if args.quick else ''}`, "
        f"{plan.scaling_epochs} epoch(s) each; images/s of the steady epochs (metrics.json)."
    )
    text = render(rows, report.machine_info(), heading)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 0


def render(plan, args, picture_name, session_start, loads, loading, races, train_images) -> str:
    from bench import report
    from bench.presets import SPARSE, quality_goal, throughput_goal

    goals, runs, startup = [], [], []
    for race in races:
        recipe, ours = race.recipe, race.aetrain
        label = f"{race.preset} on {race.backend}" + (" (auto)" if race.auto else "")
        activation = f"{recipe['activation']:.4f} / {ours['activation']:.4f}" if race.preset in SPARSE else ""
        epoch, seconds = race.reached
        reached = f"{report.seconds(seconds)} (epoch {epoch})" if epoch else "not reached"
        quality, goal = quality_goal(race.preset), throughput_goal(race.preset)
        met = race.mse_met and race.quality_speedup >= quality and race.throughput_ratio >= goal
        goals.append([
            label, f"{recipe['test_mse']:.5f} / {ours['test']['mse']:.5f}", activation,
            report.seconds(recipe["process_seconds"]), reached,
            f"{race.quality_speedup:.2f}x (goal {quality:g}x)",
            f"{report.rate(recipe['images_per_second'])} / {report.rate(ours.get('images_per_second'))}",
            f"{race.throughput_ratio:.2f}x (goal {goal:g}x)",
            _yes(met),
        ])  # fmt: skip
        t = ours["config"]["trainer"]
        runs.append([
            label,
            f"batch {t['batch_size']} in {ours.get('batch_splits', 1)} slice(s), {t['optimizer']} lr "
            f"{t['learning_rate']:g}, {t['schedule']}, {ours.get('precision', t['precision'])}, "
            f"steps_per_execution {t['steps_per_execution']}",
            report.seconds(recipe["process_seconds"]), report.seconds(race.wall_seconds),
            f"{race.whole_run_speedup:.2f}x", f"{recipe['val_mse'][-1]:.5f} / {race.aetrain_val_mse[-1]:.5f}",
        ])  # fmt: skip
        first_step = (
            f"`aetrain experiment={race.preset} trainer.backend={race.backend}`: process start to end"
        )
        startup.append([f"{first_step} of first training step", report.seconds(ours.get("startup_seconds"))])
    machine = report.machine_info()
    mode = "quick: a CI smoke run, figures only" if args.quick else "full"
    goals_table = report.markdown_table(
        ["preset, aetrain's backend", "test MSE: recipe / aetrain",
         "mean coding activation: recipe / aetrain", "recipe: whole process",
         "aetrain reaches the recipe's final val MSE (from process start)",
         "speed-up to quality", "training images/s: recipe / aetrain", "throughput ratio", "goals met"],
        goals,
    )  # fmt: skip
    runs_table = report.markdown_table(
        ["preset, aetrain's backend", "aetrain's recipe", "recipe: whole process", "aetrain: whole process",
         "whole-run speed-up", "final val MSE: recipe / aetrain"],
        runs,
    )  # fmt: skip
    startup_table = report.markdown_table(
        ["figure", "value"],
        [
            [
                "data loading, first run (decode gz, check, write .npz cache)",
                report.seconds(loading["first"]),
            ],
            ["data loading, cached (.npz)", report.seconds(loading["cached"])],
            *startup,
        ],
    )
    command = "python -m bench" + (" --quick" if args.quick else "") + (" --device" if args.device else "")
    lines = [
        f"# aetrain benchmark ({mode})",
        "",
        f"Run {session_start}: `{command}`, {plan.epochs} epoch(s), "
        f"{train_images:,} training images, {plan.val_size:,} validation, "
        f"{'all 10,000' if plan.test_limit is None else f'{plan.test_limit:,}'} test; the recipe on "
        f"{args.recipe_backend}, aetrain on {args.backends.replace(',', ' and ')}.",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        "- 1-minute load average: " + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()),
        "",
        "## Goals (issues 13 and 22): each preset against the seed's recipe on the same model",
        "",
        goals_table,
        "",
        "Every time is a whole process's, as the user waits for it: the recipe runs as a script of its "
        "own (`python -m bench.recipe_process`), timed from its start to its exit; aetrain's time to "
        "quality is from its process's start to the end of the epoch whose validation MSE first reaches "
        "the recipe's final one (metrics.json `epoch_end_seconds`). Goals met: test MSE at or below the "
        "recipe's (sparse presets: at a mean coding activation no higher), the speed-up to quality (the "
        "recipe's whole process over aetrain's time to its quality: 6x for the dense and variational "
        "presets, 4x for seed_conv) and the throughput ratio (the median epoch after the first). The "
        "recipe: batch 32, Nadam, float32, NumPy `fit`, MSE plus the book's penalties as Keras computes "
        "them, on the preset's model (seed_conv: the seed's own, from plain Keras layers). `(auto)` marks "
        "the backend `trainer.backend=auto` picks for the preset here.",
        "",
        f"![validation MSE against training time, per preset]({picture_name})",
        "",
        "## The runs",
        "",
        runs_table,
        "",
        "## Start-up and data",
        "",
        startup_table,
        "",
    ]
    return "\n".join(lines)


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


if __name__ == "__main__":
    sys.exit(main())
