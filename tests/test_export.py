"""aetrain-export: every export loads in a fresh process that cannot import aetrain, and computes what
the checkpoint computes (within 1e-5); a damaged RUN exits 2, an unwritable --out exits 5."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from aetrain.commands import export as export_command
from aetrain.run_folder.checkpoints import load_checkpoint, read_metadata

from cli_runs import unwrapped

# What a user without aetrain writes (docs/doctor.md shows the same lines).
CONSUMER = """
import ast
import sys
import numpy as np
import keras
import tensorflow as tf

out, images = sys.argv[1], np.load(sys.argv[2])
encoder = keras.models.load_model(f"{out}/encoder.keras")
decoder = keras.models.load_model(f"{out}/decoder.keras")
codings = encoder.predict(images, verbose=0)
codings = codings[0] if isinstance(codings, list) else codings  # a VAE's encoder gives [mean, log_var]
results = {"encoder_keras": codings, "decoder_keras": decoder.predict(codings, verbose=0)}
served_autoencoder = tf.saved_model.load(f"{out}/autoencoder_savedmodel")  # keep the object alive
results["autoencoder_savedmodel"] = served_autoencoder.serve(images)
served_encoder = tf.saved_model.load(f"{out}/encoder_savedmodel")
served = served_encoder.serve(images)
results["encoder_savedmodel"] = served[0] if isinstance(served, (list, tuple)) else served
lite = tf.lite.Interpreter(model_path=f"{out}/encoder.tflite").get_signature_runner()
outputs = lite(images=images)
results["encoder_tflite"] = outputs["output_0"]
np.savez(sys.argv[3], **{key: np.asarray(value) for key, value in results.items()})

# The README's lines, as a user pastes them, one statement at a time: each gives the same codings.
readme = {"keras": keras, "tf": tf, "x": images[:1]}
for statement in ast.parse(open(sys.argv[4]).read().replace("RUN/export", out)).body:
    exec(compile(ast.Module([statement], []), "README.md", "exec"), readme)
    if "codings" in readme:
        got = readme.pop("codings")
        got = got[0] if isinstance(got, (list, tuple)) else got
        np.testing.assert_allclose(np.asarray(got), results["encoder_keras"][:1], atol=1e-5)
        print("README line ok")
"""

RUNS = [
    ("variant.tied_weights=true", "sparsity=kl", "noise=gaussian", "trainer.precision=float32"),
    ("variant=conv_vae", "noise=dropout", "trainer.precision=float32"),
]


def without_aetrain(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import aetrain`` fails (whatever the virtualenv has installed)."""
    blocker = tmp_path / "blocker" / "aetrain"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('the exports must not need aetrain')\n")
    return {**os.environ, "PYTHONPATH": str(blocker.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.slow
@pytest.mark.parametrize("overrides", RUNS, ids=["tied_dense_kl_sparse_gaussian", "conv_vae_dropout"])
def test_exports_load_without_aetrain_and_match_the_checkpoint(overrides, trained_runs, tmp_path):
    folder = trained_runs(*overrides)
    out = tmp_path / "export"
    assert export_command.main([str(folder), "--out", str(out)]) == 0
    images = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "consumer.py").write_text(CONSUMER)
    (tmp_path / "readme_lines.py").write_text(readme_encoding_lines())
    done = subprocess.run(
        [sys.executable, "consumer.py", str(out), "images.npy", "got.npz", "readme_lines.py"],
        cwd=tmp_path,
        env=without_aetrain(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("README line ok") == 3, done.stdout
    model = load_checkpoint(folder / "checkpoints" / "best.keras", compile=False)
    codings = model.get_layer("encoder").predict(images, verbose=0)
    codings = codings[0] if isinstance(codings, list) else codings
    expected = {
        "encoder": codings,
        "decoder": model.get_layer("decoder").predict(codings, verbose=0),
        "autoencoder": model.predict(images, verbose=0),
    }
    got = np.load(tmp_path / "got.npz")
    assert sorted(got.files) == sorted(export_command_exports())
    for key in got.files:
        np.testing.assert_allclose(got[key], expected[key.split("_")[0]], atol=1e-5, err_msg=key)


def readme_encoding_lines() -> str:
    """The README's Python block that encodes an image with each export."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    after = readme.split("Encoding an image `x`", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def export_command_exports() -> list[str]:
    from aetrain.analysis.serving_export import EXPORTS

    return list(EXPORTS)


def test_a_foreign_or_damaged_run_exits_2(trained_runs, tmp_path, capsys):
    foreign = tmp_path / "foreign.keras"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("config.json", "{}")
    assert export_command.main([str(foreign), "--out", str(tmp_path / "a")]) == 2
    assert "aetrain.json" in capsys.readouterr().out

    metadata = read_metadata(trained_runs() / "checkpoints" / "best.keras")
    damaged = tmp_path / "damaged.keras"
    with zipfile.ZipFile(damaged, "w") as archive:
        archive.writestr("aetrain.json", json.dumps(metadata))
        archive.writestr("model.weights.h5", b"not hdf5")
    assert export_command.main([str(damaged), "--out", str(tmp_path / "b")]) == 2
    # named (a long path may wrap anywhere), refused as not a whole checkpoint
    assert "damaged.keras" in unwrapped(capsys.readouterr().out)
    assert export_command.main([str(tmp_path / "missing"), "--out", str(tmp_path / "c")]) == 2


def test_an_unwritable_out_exits_5_before_loading(trained_runs, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert export_command.main([str(trained_runs()), "--out", str(blocker / "sub")]) == 5
    assert "--out" in capsys.readouterr().out
