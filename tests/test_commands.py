"""aetrain-evaluate / -generate / -look on smoke-sized runs: files written, contents, errors, exit codes."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import matplotlib.image
import pytest

from aetrain.commands import evaluate, generate, look

from cli_runs import command

BIN = Path(sys.executable).parent


def png_ok(path: Path) -> bool:
    return matplotlib.image.imread(path).ndim == 3


VAE_RUN = ("variant=conv_vae", "latent_size=2", "noise=gaussian")


def test_evaluate_writes_eval_json_and_a_table(trained_runs, tmp_path, capsys):
    run = trained_runs(*VAE_RUN)
    assert evaluate.main([str(run), "--out", str(tmp_path), "--limit", "50", "--probe-steps", "20"]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["test_images"] == 50 and report["checkpoint"].endswith("best.keras")
    assert {"mse", "psnr_db", "ssim", "vae", "denoising", "linear_probe"} <= set(report)
    assert report["vae"]["likelihood"].startswith("Bernoulli")
    out = "".join(capsys.readouterr().out.split())  # the table wraps at the console's width
    assert "negativeELBO" in out and "linearprobeaccuracy" in out and "eval.json" in out


def test_evaluate_reads_a_checkpoint_found_alone(trained_runs, tmp_path):
    lone = tmp_path / "somewhere" / "model.keras"
    lone.parent.mkdir()
    shutil.copy(trained_runs("sparsity=kl", "latent_size=16") / "checkpoints" / "best.keras", lone)
    assert evaluate.main([str(lone), "--limit", "40", "--train-limit", "100", "--probe-steps", "20"]) == 0
    report = json.loads((lone.parent / "eval.json").read_text())  # next to the checkpoint
    assert report["linear_probe"]["probe_train_images"] == 100
    assert len(report["sparsity_report"]["unit_mean_activation"]) == 16


def test_generate_writes_samples_interpolation_and_the_2d_manifold(trained_runs, tmp_path):
    run = trained_runs(*VAE_RUN)
    assert generate.main([str(run), "--out", str(tmp_path), "--limit", "20", "--manifold-size", "4"]) == 0
    for name in ("samples.png", "interpolation.png", "manifold.png"):
        assert png_ok(tmp_path / name), name


def test_generate_refuses_a_plain_autoencoder(trained_runs, tmp_path, capsys):
    run = trained_runs("sparsity=kl", "latent_size=16")
    assert generate.main([str(run), "--out", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "variational" in out and "variant=vae" in out
    assert not list(tmp_path.iterdir())


def test_generate_checks_the_pair_indices(trained_runs, tmp_path, capsys):
    run = trained_runs(*VAE_RUN)
    assert generate.main([str(run), "--out", str(tmp_path), "--limit", "10", "--pair", "0", "99"]) == 2
    assert "99" in capsys.readouterr().out


def test_look_writes_coding_maps_and_the_denoising_figure(trained_runs, tmp_path):
    run = trained_runs(*VAE_RUN)
    assert look.main([str(run), "--out", str(tmp_path), "--limit", "60", "--images", "4"]) == 0
    assert png_ok(tmp_path / "codings_pca.png") and png_ok(tmp_path / "denoising.png")
    from aetrain.analysis.projections import tsne_available

    assert (tmp_path / "codings_tsne.png").is_file() == tsne_available()


def test_look_skips_denoising_for_a_run_without_noise(trained_runs, tmp_path, capsys):
    run = trained_runs("sparsity=kl", "latent_size=16")
    assert look.main([str(run), "--out", str(tmp_path), "--limit", "40", "--no-tsne"]) == 0
    assert png_ok(tmp_path / "codings_pca.png")
    assert not (tmp_path / "denoising.png").exists() and not (tmp_path / "codings_tsne.png").exists()
    assert "noise=none" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["aetrain-evaluate", "aetrain-generate", "aetrain-look"])
def test_bad_paths_exit_2_with_one_paragraph(name, tmp_path):
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    plain = tmp_path / "plain.keras"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("config.json", "{}")
    cases = {
        tmp_path / "missing": "does not exist",
        not_a_run: "checkpoints/best.keras",
        plain: "aetrain.json",
    }
    for path, phrase in cases.items():
        result = command(name, str(path), cwd=tmp_path)
        output = " ".join((result.stdout + result.stderr).split()).replace("│", "")
        assert result.returncode == 2, output
        assert phrase in " ".join(output.split())
        assert "Traceback" not in output


def test_evaluate_command_defaults_are_the_evaluation_defaults():
    from aetrain.analysis import evaluation

    defaults = evaluate.build_parser().parse_args(["run"])
    assert (defaults.probe_steps, defaults.elbo_samples) == (evaluation.PROBE_STEPS, evaluation.ELBO_SAMPLES)
    assert defaults.iw_samples == evaluation.IW_SAMPLES and defaults.noise_levels is None


@pytest.mark.parametrize("name", ["aetrain-evaluate", "aetrain-generate", "aetrain-look"])
def test_help_lists_the_options(name, tmp_path):
    result = command(name, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "PATH" in result.stdout and "--data-dir" in result.stdout and "--limit" in result.stdout


@pytest.mark.slow
def test_train_then_evaluate_generate_look_through_the_real_commands(tiny_data_dir, tmp_path):
    run = tmp_path / "run"
    trained = command(
        "aetrain",
        "variant=vae",
        "latent_size=2",
        "noise=dropout",
        "trainer=smoke",
        f"data.dir={tiny_data_dir}",
        "data.limit=256",
        "data.val_size=64",
        "trainer.progress=false",
        "logger=[csv,tensorboard]",
        "trainer.run_eagerly=true",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert list((run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    for name, args in (
        ("aetrain-evaluate", ["--probe-steps", "30"]),
        ("aetrain-generate", []),
        ("aetrain-look", ["--tsne-points", "100"]),
    ):
        own_process = name == "aetrain-evaluate"  # a process of its own: what reaches its stderr
        result = command(name, str(run), *args, cwd=tmp_path, own_process=own_process)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "oneDNN" not in result.stderr  # TensorFlow's start-up noise stays hidden
    assert json.loads((run / "eval.json").read_text())["test_images"] == 200
    for name in ("samples.png", "interpolation.png", "manifold.png", "codings_pca.png", "denoising.png"):
        assert png_ok(run / name), name
