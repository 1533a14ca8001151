"""Which configs may continue a saved run (fast: no training, no TensorFlow)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aetrain.config import ConfigError, validate
from aetrain.run_folder.resume import SavedRun, check_resumable, read_saved_run

from conftest import compose_config


def saved_run(*overrides: str, epoch: int = 3, status: str = "completed") -> SavedRun:
    return SavedRun(
        folder=Path("/runs/a"),
        epoch=epoch,
        config=validate(compose_config(*overrides)).to_dict(),
        metrics={"status": status},
    )


def test_only_epochs_progress_and_resume_may_change():
    cfg = validate(compose_config("trainer.epochs=20", "trainer.progress=false", "trainer.resume=/runs/a"))
    check_resumable(cfg, saved_run())


def test_every_differing_key_is_named():
    cfg = validate(compose_config("latent_size=8", "trainer.learning_rate=0.05"))
    with pytest.raises(ConfigError) as caught:
        check_resumable(cfg, saved_run())
    assert caught.value.key == "trainer.resume"
    assert "latent_size: saved 30, now 8" in str(caught.value)
    assert "trainer.learning_rate: saved 0.01, now 0.05" in str(caught.value)


def test_a_finished_run_needs_more_epochs():
    cfg = validate(compose_config("trainer.epochs=3"))
    with pytest.raises(ConfigError) as caught:
        check_resumable(cfg, saved_run(epoch=3))
    assert caught.value.key == "trainer.epochs" and "raise trainer.epochs" in str(caught.value)


@pytest.mark.parametrize("status", ["interrupted", None])
def test_a_run_stopped_after_training_resumes_with_the_same_epochs(status):
    """Stopped in the evaluation or pictures (or killed there before metrics.json was written)."""
    cfg = validate(compose_config("trainer.epochs=3"))
    saved = saved_run("trainer.epochs=3", epoch=3, status=status)
    check_resumable(cfg, saved)
    with pytest.raises(ConfigError, match=r"raise trainer\.epochs"):  # never fewer epochs than it has
        check_resumable(validate(compose_config("trainer.epochs=2")), saved)


def test_a_run_stopped_in_training_is_not_finished_by_asking_for_fewer_epochs():
    cfg = validate(compose_config("trainer.epochs=3"))
    with pytest.raises(ConfigError, match=r"raise trainer\.epochs"):
        check_resumable(cfg, saved_run("trainer.epochs=10", epoch=3, status="interrupted"))


def not_a_checkpoint(folder: Path) -> Path:
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "last.keras").write_text("not a zip")
    return folder


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p / "missing", "There is no folder"),
        (lambda p: p, "nothing to resume"),
        (not_a_checkpoint, "not a whole .keras file"),
    ],
    ids=["no folder", "no last.keras", "not a checkpoint"],
)
def test_unusable_folders_are_refused_on_trainer_resume(tmp_path, make, words):
    with pytest.raises(ConfigError, match=words) as caught:
        read_saved_run(make(tmp_path))
    assert caught.value.key == "trainer.resume"


def test_empty_resume_is_refused():
    with pytest.raises(ConfigError, match=r"trainer\.resume"):
        validate(compose_config("trainer.resume=''"))


def test_saved_run_paths():
    run = dataclasses.replace(saved_run(), folder=Path("/r"))
    assert run.last_checkpoint == Path("/r/checkpoints/last.keras")
