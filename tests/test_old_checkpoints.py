"""Runs written by release 0.1 (the flat-package layout) still evaluate and resume.

tests/fixtures/release_0_1/ holds two tiny runs made by that release's ``aetrain`` (trainer=smoke,
256 images, one epoch): ``dense_l1`` (sparsity=l1) and ``vae``. Their checkpoints name aetrain's
custom layers as registered with ``package="aetrain"``, with no module path, so moving modules
does not break them; these tests prove it through the real commands.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from aetrain import data
from aetrain.commands import evaluate

from cli_runs import aetrain, plain_text

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1"
RUNS = ["dense_l1", "vae"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", RUNS)
def test_an_old_run_evaluates(name, tiny_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    run, out = FIXTURES / name, tmp_path / "eval"
    before = files_of(run)
    args = [str(run), "--data-dir", str(tiny_data_dir), "--out", str(out), "--limit", "50"]
    assert evaluate.main([*args, "--probe-steps", "20", "--iw-samples", "4"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert 0 < report["mse"] < 1
    assert ("vae" in report) == (name == "vae")  # the negative ELBO and IWAE NLL
    assert files_of(run) == before  # evaluating with --out leaves the old run as it was


@pytest.mark.slow
@pytest.mark.skipif(
    not all((data.DEBIAN_DIR / name).is_file() for name in data.FILES.values()),
    reason="the runs were made on the Debian package's Fashion-MNIST (data.dir unset), which a resume keeps",
)
@pytest.mark.parametrize("name", RUNS)
def test_an_old_run_resumes_for_one_more_epoch(name, tmp_path):
    """The same overrides as the run (its .hydra/overrides.yaml), trainer.epochs=2, trainer.resume, and
    trainer.batch_size=64: trainer=smoke's batch then (it is 32 now; CHANGELOG, issue 20)."""
    run = tmp_path / name
    shutil.copytree(FIXTURES / name, run)
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    overrides = [o for o in overrides if not o.startswith("trainer.epochs=")]
    result = aetrain(
        *overrides,
        f"trainer.resume={run}",
        "trainer.epochs=2",
        "trainer.batch_size=64",
        cwd=tmp_path,
    )
    assert result.returncode == 0, plain_text(result.stdout + result.stderr)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert metrics["resumed_from_epoch"] == 1
    assert metrics["epochs_completed"] == 2
