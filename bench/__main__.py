"""``python -m bench [--quick] [--scaling]``: the six seed presets against the seed's recipe.

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
bench/SCALING.md (``--quick``: SCALING-quick.md).
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
    args = parser.parse_args(argv)
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
    plan = plan_from(args)
    from aetrain.training.runtime import import_tensorflow_quietly

    import_tensorflow_quietly()
    from bench import report

    session_start = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    work = Path(tempfile.mkdtemp(prefix="aetrain-bench-"))
    say = lambda message: print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)  # noqa: E731
    common = [*data_overrides(plan, args.data_dir), "trainer.progress=true"]
    if args.scaling:
        return scaling(args, plan, common, work, say)

    from aetrain.data import load_fashion_mnist
    from bench.presets import PresetRace, race_aetrain, race_recipe

    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    loads = {"start": report.load_average()}
    say("data loading (empty cache, then cached)")
    loading = time_data_loading(plan, args.data_dir, work / "cache")
    data = load_fashion_mnist(args.data_dir, plan.limit, plan.val_size, test_limit=plan.test_limit)

    races = []
    for preset in args.presets.split(","):
        say(f"{preset}: seed recipe, {plan.epochs} epochs, batch 32, Nadam, float32")
        recipe = race_recipe(preset, data, plan.epochs, data_overrides(plan, args.data_dir))
        say(f"{preset}: aetrain experiment={preset} trainer.epochs={plan.epochs}")
        metrics, wall = race_aetrain(preset, plan.epochs, common, work / preset, data)
        races.append(PresetRace(preset, recipe, metrics, wall))
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
    from bench.presets import QUALITY_SPEEDUP, SPARSE, throughput_goal

    goals, runs, startup = [], [], []
    for race in races:
        recipe, ours = race.recipe, race.aetrain
        activation = f"{recipe['activation']:.4f} / {ours['activation']:.4f}" if race.preset in SPARSE else ""
        epoch, seconds = race.reached
        reached = f"{report.seconds(seconds)} (epoch {epoch})" if epoch else "not reached"
        goal = throughput_goal(race.preset)
        met = race.mse_met and race.quality_speedup >= QUALITY_SPEEDUP and race.throughput_ratio >= goal
        goals.append([
            race.preset, f"{recipe['test_mse']:.5f} / {ours['test']['mse']:.5f}", activation, reached,
            f"{race.quality_speedup:.2f}x", f"{report.rate(recipe['images_per_second'])} / "
            f"{report.rate(ours.get('images_per_second'))}", f"{race.throughput_ratio:.2f}x (goal {goal:g}x)",
            _yes(met),
        ])  # fmt: skip
        t = ours["config"]["trainer"]
        runs.append([
            race.preset,
            f"batch {t['batch_size']} in {ours.get('batch_splits', 1)} slice(s), {t['optimizer']} lr "
            f"{t['learning_rate']:g}, {t['schedule']}, {ours.get('precision', t['precision'])}, "
            f"steps_per_execution {t['steps_per_execution']}",
            report.seconds(recipe["train_seconds"]), report.seconds(ours["train_seconds"]),
            f"{recipe['val_mse'][-1]:.5f} / {race.aetrain_val_mse[-1]:.5f}",
        ])  # fmt: skip
        startup.append([f"`aetrain experiment={race.preset}`: process start to end of first training step",
                        report.seconds(ours.get("startup_seconds"))])  # fmt: skip
    machine = report.machine_info()
    mode = "quick: a CI smoke run, figures only" if args.quick else "full"
    goals_table = report.markdown_table(
        ["preset", "test MSE: recipe / aetrain", "mean coding activation: recipe / aetrain",
         "aetrain reaches the recipe's final val MSE", f"speed-up to quality (goal {QUALITY_SPEEDUP:g}x)",
         "training images/s: recipe / aetrain", "throughput ratio", "goals met"],
        goals,
    )  # fmt: skip
    runs_table = report.markdown_table(
        ["preset", "aetrain's recipe", "recipe training time", "aetrain training time",
         "final val MSE: recipe / aetrain"],
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
    lines = [
        f"# aetrain benchmark ({mode})",
        "",
        f"Run {session_start}: `python -m bench{' --quick' if args.quick else ''}`, {plan.epochs} epoch(s), "
        f"{train_images:,} training images, {plan.val_size:,} validation, "
        f"{'all 10,000' if plan.test_limit is None else f'{plan.test_limit:,}'} test.",
        "",
        *[f"- {key}: {value}" for key, value in machine.items()],
        "- 1-minute load average: " + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()),
        "",
        "## Goals (issue 13): each preset against the seed's recipe on the same model",
        "",
        goals_table,
        "",
        "Goals met: test MSE at or below the recipe's (sparse presets: at a mean coding activation no "
        f"higher), the recipe's final validation MSE reached in at most 1/{QUALITY_SPEEDUP:g} of the "
        "recipe's training time, and the throughput ratio. The recipe: batch 32, Nadam, float32, NumPy "
        "`fit`, MSE plus the book's penalties as Keras computes them, on the preset's model (seed_conv: "
        "the seed's own, from plain Keras layers). Times are `fit` wall time including validation and, for "
        "aetrain, per-epoch checkpoints and the progress bar. Throughput: the median epoch after the first.",
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
