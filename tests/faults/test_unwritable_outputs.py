"""The companion commands exit 5 naming the path when their outputs cannot be written (``--out`` that
is a file or lies under one, a read-only run folder), say to use ``--out DIR``, and write nothing
partial; out-of-range ``--seed`` / counts are refused by argparse (exit 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cli_runs import command, plain_text
from damaged_files import copy_run, folder_digest
from read_only_folders import read_only

COMMANDS = ("aetrain-evaluate", "aetrain-generate", "aetrain-look")
VAE_RUN = ("variant=vae", "latent_size=2")


def companion(
    name: str, *args: str, cwd: Path, without_tensorflow: bool = True
) -> subprocess.CompletedProcess:
    return command(name, *args, cwd=cwd, without_tensorflow=without_tensorflow)


def assert_unwritable(result: subprocess.CompletedProcess, path: Path) -> None:
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 5, text
    assert str(path) in text and "--out DIR" in text, text
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", COMMANDS)
def test_out_that_is_a_file_or_under_one_exits_5_before_tensorflow(trained_runs, tmp_path, name):
    run = trained_runs(*VAE_RUN)
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    for out in (a_file, a_file / "sub"):
        assert_unwritable(companion(name, str(run), "--out", str(out), cwd=tmp_path), out)
    assert a_file.read_text() == "keep me"


@pytest.mark.parametrize("name", COMMANDS)
def test_a_read_only_run_folder_exits_5_and_names_it(trained_runs, tmp_path, name):
    run = copy_run(trained_runs(*VAE_RUN), tmp_path / "run")
    before = folder_digest(run)
    with read_only(run):
        assert_unwritable(companion(name, str(run), cwd=tmp_path), run)
    assert folder_digest(run) == before


def test_a_failed_write_after_tensorflow_loaded_exits_5_with_nothing_partial(trained_runs, tmp_path):
    """The folder is writable when checked, then a picture cannot be written: a folder in its place."""
    run = trained_runs(*VAE_RUN)
    out = tmp_path / "out"
    (out / "eval.json").mkdir(parents=True)  # os.replace cannot put a file over a folder
    result = companion(
        "aetrain-evaluate",
        str(run),
        "--out",
        str(out),
        "--limit",
        "20",
        "--probe-steps",
        "2",
        cwd=tmp_path,
        without_tensorflow=False,
    )
    assert_unwritable(result, out / "eval.json")
    assert sorted(p.name for p in out.iterdir()) == ["eval.json"]  # no partial file beside it


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("option", [("--seed", "-1"), ("--seed", str(2**32)), ("--limit", str(2**31))])
def test_out_of_range_numbers_are_refused_by_name(trained_runs, tmp_path, name, option):
    result = companion(name, str(trained_runs(*VAE_RUN)), *option, cwd=tmp_path)
    assert result.returncode == 2 and option[0] in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("name", "option", "bound"),
    [
        ("aetrain-evaluate", ("--iw-samples", "2147483647"), "from 1 to 5000"),
        ("aetrain-evaluate", ("--elbo-samples", "5001"), "from 1 to 5000"),
        ("aetrain-look", ("--limit", "1"), "at least 3 test images"),
        ("aetrain-report", ("--picture-runs", "0"), "an integer >= 1"),
    ],
)
def test_counts_without_a_sane_bound_are_refused_before_any_work(trained_runs, tmp_path, name, option, bound):
    """A count that would allocate without bound, or that a map cannot use, is exit 2 naming the
    option and its bound, before TensorFlow loads and before anything is written."""
    run = trained_runs(*VAE_RUN)
    target = run.parent if name == "aetrain-report" else run
    before = folder_digest(run)
    result = companion(name, str(target), *option, cwd=tmp_path)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    assert option[0] in text and bound in text and "Traceback" not in text
    assert folder_digest(run) == before
