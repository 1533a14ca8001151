"""``python -m bench.levers``: training throughput of config variations, interleaved A/B/A/B in one process.

Each configuration is built and traced once; then every round trains one epoch of each, in turn, so
a neighbour's load on a shared machine hits all of them alike. The medians say which lever wins; the
CPU time per image (all threads) is the steadier figure where the machine's speed itself wanders.
Thread counts cannot change inside one process: compare them with ``aetrain trainer.intra_op_threads=N``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_SETS = {
    "conv": [
        "variant=conv trainer.batch_size=32 trainer.precision=float32",
        "variant=conv trainer.precision=float32",
        "variant=conv",
        "variant=conv trainer.batch_size=64",
        "variant=conv trainer.batch_size=256",
        "variant=conv trainer.steps_per_execution=8",
        "variant=conv trainer.progress=false",
    ],
    "dense": [
        "variant=dense trainer.batch_size=32",
        "variant=dense",
        "variant=dense trainer.steps_per_execution=8",
        "variant=dense trainer.precision=float32",
        "variant=dense trainer.batch_size=256",
        "variant=vae",
        "variant=vae trainer.steps_per_execution=8",
        "variant=vae trainer.precision=float32",
    ],
    "xla": ["variant=conv", "variant=conv trainer.jit_compile=true"],
    # run with --intra 1 --inter 2 (the pools batch_splits=2 gets on 2 cores)
    "splits": [
        "variant=conv trainer.batch_splits=1",
        "variant=conv trainer.batch_splits=2",
        "variant=conv trainer.batch_splits=2 trainer.steps_per_execution=4",
        "variant=conv trainer.batch_splits=4",
        "variant=dense trainer.batch_splits=1",
        "variant=dense trainer.batch_splits=2",
        "variant=vae trainer.batch_splits=1",
        "variant=vae trainer.batch_splits=2",
    ],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.levers", description=__doc__.split("\n\n")[0])
    parser.add_argument("set", nargs="?", default="conv", help=f"one of {sorted(DEFAULT_SETS)}")
    parser.add_argument("--config", action="append", help="override strings instead of a set (repeatable)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=16384, help="training images per epoch")
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow decides)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow decides)")
    args = parser.parse_args(argv)

    import keras
    from hydra import compose, initialize_config_dir
    from rich.console import Console

    from aetrain.commands.train import config_dir
    from aetrain.config import validate
    from aetrain.data import load_fashion_mnist, make_dataset
    from aetrain.models.build import build_model
    from aetrain.models.family import family_of
    from aetrain.training.batch_splits import resolve_batch_splits, split_steps
    from aetrain.training.callbacks import RichProgress
    from aetrain.training.optimization import build_optimizer
    from aetrain.training.runtime import (
        available_cores,
        has_gpu,
        import_tensorflow_quietly,
        resolve_precision,
    )

    tf = import_tensorflow_quietly()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter)
    gpu = has_gpu()

    images = load_fashion_mnist().x_train[: args.images]
    configs = args.config or DEFAULT_SETS[args.set]
    prepared = {}
    for overrides in configs:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = validate(compose(config_name="config", overrides=overrides.split()))
        trainer = cfg.trainer
        convolutional = family_of(cfg).convolutional
        keras.mixed_precision.set_dtype_policy(resolve_precision(trainer.precision, gpu, convolutional))
        model = build_model(cfg)
        steps = -(-len(images) // trainer.batch_size)
        model.compile(
            optimizer=build_optimizer(trainer, steps),
            loss="mse",
            jit_compile=trainer.jit_compile,
            steps_per_execution=trainer.steps_per_execution,
        )
        keras.mixed_precision.set_dtype_policy("float32")
        split_steps(model, resolve_batch_splits(cfg, available_cores(), gpu))
        dataset = make_dataset(images, trainer.batch_size, shuffle=True, seed=cfg.seed)
        # a terminal console that really draws, into a buffer: the bar's cost is counted
        console = Console(file=io.StringIO(), force_terminal=True, width=100)
        callbacks = [RichProgress(1, steps, console, show_bar=trainer.progress)]
        model.fit(dataset, steps_per_epoch=10, epochs=1, verbose=0)  # trace
        prepared[overrides] = (model, dataset, callbacks)

    rates: dict[str, list[float]] = {overrides: [] for overrides in configs}
    cpu_costs: dict[str, list[float]] = {overrides: [] for overrides in configs}
    for _ in range(args.rounds):
        for overrides, (model, dataset, callbacks) in prepared.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            model.fit(dataset, epochs=1, verbose=0, callbacks=callbacks)
            rates[overrides].append(len(images) / (time.perf_counter() - started))
            cpu_costs[overrides].append((time.process_time() - cpu_started) / len(images) * 1e6)
    print(f"threads intra {args.intra} inter {args.inter}; 1-minute load after: {os.getloadavg()[0]:.2f}")
    print(
        "| configuration (aetrain overrides) | images/s, median | images/s, best round "
        "| CPU µs per image, median | rounds (images/s) |\n|---|---|---|---|---|"
    )
    for overrides, values in rates.items():
        rounds = " ".join(f"{value:,.0f}" for value in values)
        median, cpu = statistics.median(values), statistics.median(cpu_costs[overrides])
        print(f"| `{overrides}` | {median:,.0f} | {max(values):,.0f} | {cpu:.1f} | {rounds} |")


if __name__ == "__main__":
    main()
