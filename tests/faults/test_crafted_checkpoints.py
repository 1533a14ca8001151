"""Checkpoints that are whole but foreign or crafted: a Lambda layer, a class from another module, an
``aetrain.json`` whose config aetrain refuses (out of range, interpolations) or that does not describe
the model beside it. Each is exit 2 in one paragraph, no traceback; nothing from the file runs and no
interpolation in it is resolved."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_runs import aetrain, command, plain_text, smoke_args
from damaged_files import copy_run, edit_stored_config, folder_digest, rewrite_member

RUN = ("variant=vae", "latent_size=2")


def companion(
    name: str, *args: str, cwd: Path, without_tensorflow: bool = True
) -> subprocess.CompletedProcess:
    return command(name, *args, cwd=cwd, without_tensorflow=without_tensorflow, AETRAIN_SECRET="s3cret")


@pytest.fixture(scope="module")
def finished_run(tiny_data_dir, tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("crafted")
    folder = cwd / "run"
    result = aetrain(*smoke_args(tiny_data_dir, *RUN, f"hydra.run.dir={folder}"), cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def crafted(finished_run: Path, tmp_path: Path) -> Path:
    checkpoint = tmp_path / "crafted.keras"
    shutil.copy(finished_run / "checkpoints" / "best.keras", checkpoint)
    return checkpoint


def edit_layers(checkpoint: Path, edit) -> None:
    """Apply ``edit(layer_config)`` to the first Dense layer in the archive's config.json."""

    def change(raw: bytes) -> bytes:
        tree = json.loads(raw)
        stack = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, dict) and node.get("class_name") == "Dense":
                edit(node)
                return json.dumps(tree).encode()
            stack.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])
        raise AssertionError("no Dense layer")

    rewrite_member(checkpoint, "config.json", change)


def set_key(key: str, value):
    def edit(config: dict) -> None:
        *parents, leaf = key.split(".")
        for part in parents:
            config = config[part]
        config[leaf] = value

    return edit


def refused(result: subprocess.CompletedProcess, *phrases: str) -> str:
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    assert "Traceback" not in result.stdout + result.stderr, text
    for phrase in phrases:
        assert phrase in text, (phrase, text)
    return text


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        (lambda layer: layer.update(class_name="Lambda"), "Lambda"),
        (lambda layer: layer.update(module="os"), "from module os"),
        (lambda layer: layer.update(module="evil.layers", registered_name="evil>Dense"), "evil"),
    ],
    ids=["lambda", "module os", "another package"],
)
def test_foreign_classes_are_refused_before_keras_loads_them(finished_run, tmp_path, edit, phrase):
    checkpoint = crafted(finished_run, tmp_path)
    edit_layers(checkpoint, edit)
    for name in ("aetrain-evaluate", "aetrain-look"):
        refused(companion(name, str(checkpoint), cwd=tmp_path), str(checkpoint), "names a class", phrase)


@pytest.mark.parametrize(
    ("key", "value", "phrase"),
    [
        ("latent_size", 10**12, "`latent_size`"),
        ("seed", 2**40, "`seed`"),
        ("trainer.weight_decay", float("inf"), "`trainer.weight_decay`"),
        ("data.dir", "${oc.env:AETRAIN_SECRET}", "`data.dir`"),
        ("variant.name", "${oc.env:AETRAIN_SECRET}", "`variant.name`"),
        ("seed", "${oc.env:AETRAIN_SECRET}", "`seed`"),
        ("variant.hidden_units", ["${oc.env:AETRAIN_SECRET}"], "`variant.hidden_units.0`"),
        ("variant.name", "nope", "`variant.name`"),
        ("variant._declared_in_", "aetrain.__main__", "`variant._declared_in_`"),
        ("variant._declared_in_", "__main__", "`variant._declared_in_`"),
        # a family declared outside aetrain whose module is not on the path: named, nothing imported
        ("variant._declared_in_", "gone_family", "There is no module 'gone_family' on the path"),
    ],
)
def test_stored_configs_aetrain_refuses_are_refused_by_key(finished_run, tmp_path, key, value, phrase):
    checkpoint = crafted(finished_run, tmp_path)
    edit_stored_config(checkpoint, set_key(key, value))
    for name in ("aetrain-evaluate", "aetrain-generate"):
        text = refused(companion(name, str(checkpoint), cwd=tmp_path), str(checkpoint), phrase)
        assert "s3cret" not in text  # an interpolation is never resolved


def test_a_resume_whose_stored_config_holds_an_interpolation_is_refused_untouched(
    finished_run, tiny_data_dir, tmp_path
):
    run = copy_run(finished_run, tmp_path / "run")
    edit_stored_config(run / "checkpoints" / "last.keras", set_key("data.dir", "${oc.env:AETRAIN_SECRET}"))
    before = folder_digest(run)
    result = aetrain(
        *smoke_args(tiny_data_dir, *RUN, "trainer.epochs=2", f"trainer.resume={run}"),
        cwd=tmp_path,
        without_tensorflow=True,
    )
    text = refused(result, "`trainer.resume`", "`data.dir`", "interpolations")
    assert "s3cret" not in text
    assert folder_digest(run) == before


@pytest.mark.parametrize("name", ["aetrain.log", ".hydra/config.yaml", ".hydra"])
def test_a_resume_never_writes_through_a_symlink_in_the_run_folder(
    finished_run, tiny_data_dir, tmp_path, name
):
    """Hydra writes .hydra/*.yaml and appends to aetrain.log in place: a link there is exit 5."""
    run = copy_run(finished_run, tmp_path / "run")
    victim = tmp_path / "victim"
    if name == ".hydra":
        shutil.move(run / name, victim)
    else:
        victim.write_text("keep me\n")
        (run / name).unlink()
    (run / name).symlink_to(victim)
    before = folder_digest(victim) if victim.is_dir() else victim.read_text()
    result = aetrain(
        *smoke_args(tiny_data_dir, *RUN, "trainer.epochs=2", f"trainer.resume={run}"),
        cwd=tmp_path,
        without_tensorflow=True,
    )
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 5, text
    assert f"{run / name} is a symlink" in text and "Traceback" not in text
    assert (folder_digest(victim) if victim.is_dir() else victim.read_text()) == before


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "name"),
    [
        (set_key("latent_size", 3), "aetrain-evaluate"),
        (lambda config: config.update(variant={"name": "dense"}), "aetrain-look"),
    ],
    ids=["another latent size", "another variant"],
)
def test_a_stored_config_that_does_not_describe_its_model_is_refused(finished_run, tmp_path, edit, name):
    checkpoint = crafted(finished_run, tmp_path)
    edit_stored_config(checkpoint, edit)
    result = companion(name, str(checkpoint), "--limit", "20", cwd=tmp_path, without_tensorflow=False)
    refused(result, str(checkpoint), "is not the one its own aetrain.json describes")
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.slow
def test_a_resume_whose_model_does_not_match_its_config_is_refused(finished_run, tiny_data_dir, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    edit_stored_config(run / "checkpoints" / "last.keras", set_key("latent_size", 3))
    result = aetrain(
        *smoke_args(
            tiny_data_dir, "variant=vae", "latent_size=3", "trainer.epochs=2", f"trainer.resume={run}"
        ),
        cwd=tmp_path,
    )
    refused(result, "last.keras", "is not the one its own aetrain.json describes")
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    assert os.path.getsize(run / "checkpoints" / "last.keras") > 0
