"""A checkpoint damaged inside its archive (the zip directory intact, bytes flipped in a member):
``trainer.resume`` and the companion commands exit 2 naming the file and saying it is damaged, with
no traceback and before TensorFlow loads; a refused resume leaves the old folder byte for byte."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_runs import aetrain, command, plain_text, smoke_args
from damaged_files import copy_run, flip_bytes_inside, folder_digest, rewrite_member

RUN = ("variant=vae", "latent_size=2")
COMMANDS = ("aetrain-evaluate", "aetrain-generate", "aetrain-look")


def companion(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed command, with a "tensorflow" that fails to import: refusals come before it."""
    return command(name, *args, cwd=cwd, without_tensorflow=True)


@pytest.fixture(scope="module")
def finished_run(tiny_data_dir, tmp_path_factory) -> Path:
    """A one-epoch run through the real command: checkpoints, .hydra/, the log, metrics.json."""
    cwd = tmp_path_factory.mktemp("damaged")
    folder = cwd / "run"
    result = aetrain(*smoke_args(tiny_data_dir, *RUN, f"hydra.run.dir={folder}"), cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return folder


def assert_refused_as_damaged(result: subprocess.CompletedProcess, checkpoint: Path, member: str) -> None:
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    assert str(checkpoint) in text and "is damaged" in text and member in text, text
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("member", ["model.weights.h5", "config.json", "aetrain.json"])
@pytest.mark.parametrize("name", COMMANDS)
def test_companion_commands_refuse_a_damaged_checkpoint(finished_run, tmp_path, name, member):
    run = copy_run(finished_run, tmp_path / "run")
    best = run / "checkpoints" / "best.keras"
    flip_bytes_inside(best, member, count=4)
    before = folder_digest(run)
    for path in (run, best):  # the run folder, and the checkpoint named alone
        assert_refused_as_damaged(companion(name, str(path), cwd=tmp_path), best, member)
    assert folder_digest(run) == before  # nothing written


def test_a_damaged_last_checkpoint_refuses_the_resume_and_leaves_the_folder_as_it_was(
    finished_run, tiny_data_dir, tmp_path
):
    for name in ("last.keras", "best.keras"):  # the resumed run may load either
        run = copy_run(finished_run, tmp_path / f"run-{name}")
        checkpoint = run / "checkpoints" / name
        flip_bytes_inside(checkpoint)
        before = folder_digest(run)
        result = aetrain(
            *smoke_args(tiny_data_dir, *RUN, "trainer.epochs=2", f"trainer.resume={run}"),
            cwd=tmp_path,
            without_tensorflow=True,
        )
        text = plain_text(result.stdout + result.stderr)
        assert result.returncode == 2, text
        assert "`trainer.resume`" in text and str(checkpoint) in text and "is damaged" in text, text
        assert "Traceback" not in result.stderr
        assert folder_digest(run) == before  # no rewritten .hydra/overrides.yaml, nothing in the log


def test_a_truncated_or_foreign_archive_is_refused_in_one_paragraph(finished_run, tmp_path):
    run = copy_run(finished_run, tmp_path / "run")
    best = run / "checkpoints" / "best.keras"
    best.write_bytes(best.read_bytes()[: os.path.getsize(best) // 2])
    result = companion("aetrain-evaluate", str(best), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(best) in plain_text(result.stdout)
    not_json = tmp_path / "not-json.keras"
    shutil.copy(finished_run / "checkpoints" / "best.keras", not_json)
    rewrite_member(not_json, "aetrain.json", lambda raw: b"\xff\xfe not json")
    result = companion("aetrain-look", str(not_json), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "aetrain.json is not valid JSON" in plain_text(result.stdout)
