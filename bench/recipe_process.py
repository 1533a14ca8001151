"""``python -m bench.recipe_process PRESET --epochs N --out FILE [data options]``: the seed's recipe on
a preset's model in a process of its own, as a reader of the book runs a script, so that the benchmark
times it from process start to exit, as it times ``aetrain``. Writes the recipe's figures as JSON,
each epoch's end in seconds from the process's start among them."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recipe_process")
    parser.add_argument("preset")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--val-size", type=int, default=5000)
    parser.add_argument("--test-limit", type=int)
    parser.add_argument("--override", action="append", default=[], help="aetrain override for the model")
    args = parser.parse_args(argv)

    from aetrain.data import load_fashion_mnist
    from aetrain.training.runtime import import_keras_quietly
    from bench.presets import race_recipe

    import_keras_quietly()
    data = load_fashion_mnist(args.data_dir, args.limit, args.val_size, test_limit=args.test_limit)
    result = race_recipe(args.preset, data, args.epochs, args.override)
    import keras

    result["backend"] = keras.config.backend()
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
