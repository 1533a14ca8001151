"""The real ``aetrain`` command in a subprocess: runs, outputs, errors and exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import matplotlib.image
import pytest

from cli_runs import aetrain, smoke_args


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["dense", "conv", "vae"])
def test_smoke_run_per_variant_writes_a_readable_run_folder(variant, tiny_data_dir, tmp_path):
    run_dir = tmp_path / "run"
    result = aetrain(
        *smoke_args(
            tiny_data_dir,
            f"hydra.run.dir={run_dir}",
            f"variant={variant}",
            "noise=dropout",
            "trainer.run_eagerly=false",  # traced, as real runs are
        ),
        cwd=tmp_path,
        own_process=variant == "dense",  # one run as a process of its own: what reaches its stderr
    )
    assert result.returncode == 0, result.stderr + result.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["variant"] == variant and metrics["status"] == "completed"
    assert metrics["test"]["mse"] > 0 and metrics["best_val_loss"] > 0
    pictures = ["reconstructions.png", "loss.png"] + (["samples.png"] if variant == "vae" else [])
    for picture in pictures:
        assert matplotlib.image.imread(run_dir / picture).shape[-1] in (3, 4)
    for checkpoint in ("best.keras", "last.keras"):
        assert "aetrain.json" in zipfile.ZipFile(run_dir / "checkpoints" / checkpoint).namelist()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert "epoch 1/1" in (run_dir / "aetrain.log").read_text()
    assert "final metrics" in result.stdout
    assert "oneDNN" not in result.stderr and "cuda" not in result.stderr.lower()  # no TF log noise


@pytest.mark.slow
def test_default_run_dir_is_timestamped_under_outputs(tiny_data_dir, tmp_path):
    result = aetrain(*smoke_args(tiny_data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "outputs").glob("*/*")
    assert run_dir.parent.name.count("-") == 2 and run_dir.name.count("-") == 2  # YYYY-MM-DD/HH-MM-SS
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sparsity.target=1.5", "sparsity.target"),
        ("latent_size=0", "latent_size"),
        ("noise.rate=-0.5", "noise.rate"),
    ],
)
def test_bad_config_exits_2_naming_the_key_without_traceback(override, key, tmp_path):
    group = {"sparsity.target=1.5": "sparsity=kl", "noise.rate=-0.5": "noise=dropout"}.get(override, "seed=1")
    result = aetrain(group, override, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert key in output and "Allowed" in output
    assert "Traceback" not in output


def test_vae_with_kl_sparsity_is_refused(tmp_path):
    result = aetrain("variant=vae", "sparsity=kl", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "sparsity" in result.stdout and "variant=vae" in result.stdout


def test_missing_data_exits_3_and_names_the_folder(tmp_path):
    missing = tmp_path / "no-such-folder"
    result = aetrain(
        "trainer=smoke", f"data.dir={missing}", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert result.returncode == 3
    assert str(missing) in result.stdout.replace("\n", "")
    assert "Traceback" not in result.stdout + result.stderr


def test_help_and_cfg_job_work_as_in_any_hydra_app(tmp_path):
    help_text = aetrain("--help", cwd=tmp_path)
    assert help_text.returncode == 0
    assert "variant: beta_tcvae, conv, conv_vae, dense, iwae, vae, vqvae, wae" in help_text.stdout
    job = aetrain("variant=conv", "latent_size=64", "--cfg", "job", cwd=tmp_path)
    assert job.returncode == 0
    assert "latent_size: 64" in job.stdout and "name: conv" in job.stdout


def test_cfg_hydra_resolve_prints_the_run_folder_and_creates_none(tmp_path):
    """`--cfg hydra` prints the hydra node alone, without the job's keys its run folder is made of."""
    printed = aetrain("--cfg", "hydra", "--resolve", cwd=tmp_path, without_tensorflow=True)
    assert printed.returncode == 0, printed.stdout + printed.stderr
    run_dir = re.search(r"^\s*run:\n\s+dir: (.+)$", printed.stdout, re.MULTILINE).group(1)
    assert run_dir.startswith("outputs/")
    assert list(tmp_path.iterdir()) == [], "printing a config creates no folder"


def test_wheel_ships_the_configs_and_runs_from_another_directory(tmp_path):
    """`pip install .` must work: the wheel carries conf/ as aetrain/conf."""
    repo = Path(__file__).resolve().parent.parent
    wheel_command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    build = subprocess.run([*wheel_command, "-w", str(tmp_path), str(repo)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("aetrain-*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    assert (site / "aetrain" / "conf" / "config.yaml").is_file()
    assert (site / "aetrain" / "conf" / "experiment" / "seed_conv.yaml").is_file()
    assert (site / "hydra_plugins" / "aetrain_launchers" / "__init__.py").is_file()  # the sweep launchers
    assert not (site / "hydra_plugins" / "__init__.py").exists()  # a namespace Hydra's plugins share
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import aetrain.commands.train, sys; sys.argv[1:] = ['experiment=seed_vae', '--cfg', 'job']; "
            "print(aetrain.commands.train.config_dir()); aetrain.commands.train.main()",
        ],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert str(site / "aetrain" / "conf") in result.stdout
    assert "latent_loss: log_var" in result.stdout
