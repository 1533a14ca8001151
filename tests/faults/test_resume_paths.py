"""The printed "Resume with:" line works when pasted, for any folder a user can have (spaces, `=`,
`,`, `$`, `;`, quotes, brackets, `~`, backslashes, non-ASCII); ``trainer.resume`` and
``hydra.run.dir`` read `~` and relative paths the same way everywhere."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from aetrain.commands.train import hydra_value, resume_command_line

from cli_runs import (
    OutputReader,
    plain_text,
    printed_resume_command,
    run_in_shell,
    smoke_args,
    start_aetrain_merged,
)

NAMES = [
    "plain",
    "with space",
    "k=v,w",
    "$HOME;ls",
    "it's",
    'say "hi"',
    "[a]{b}(c)",
    "~tilde",
    "back\\slash\\",
    "quote\\'s",
    "${not.an.interpolation}",
    "ünïcödé 日本",
    "tab\there",
    "*?|:#!`",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_folder_reads_back_through_hydra_and_omegaconf_as_itself(name):
    folder = f"/runs/{name}"
    override = OverridesParser.create().parse_override(f"trainer.resume={hydra_value(folder)}")
    assert OmegaConf.create({"resume": override.value()}).resume == folder


def test_the_resume_line_pasted_into_bash_names_the_folder(tmp_path):
    """Shell, Hydra and OmegaConf in turn, as a pasted line meets them (--cfg job: no run); the
    names in three folders, to start fewer processes."""
    for name in (" ".join(NAMES[i::3]) for i in range(3)):
        folder = tmp_path / name
        line = resume_command_line(["trainer=smoke", "seed=3"], folder)
        result = run_in_shell(f"{line} --cfg job --resolve", cwd=tmp_path)
        assert result.returncode == 0, (name, result.stderr)
        config = yaml.safe_load(result.stdout)
        assert config["trainer"]["resume"] == str(folder) and config["seed"] == 3, name


def test_tilde_and_relative_resume_folders_resolve_alike(tmp_path):
    home = tmp_path / "home"
    (home / "runs" / "x").mkdir(parents=True)
    expected = f"{home / 'runs' / 'x'} has no checkpoints/last.keras"
    for override, cwd in (("trainer.resume='~/runs/x'", tmp_path), ("trainer.resume=runs/x", home)):
        result = run_in_shell(f'aetrain "{override}"', cwd=cwd, HOME=str(home))
        text = plain_text(result.stdout + result.stderr)
        assert result.returncode == 2 and expected in text, text
        assert "`trainer.resume`" in text and "hydra.run.dir" not in text
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["home", "runs", "x"]  # no ./~ folder


def test_a_tilde_run_folder_is_the_home_one(tiny_data_dir, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # No data there: the run stops with exit 3 after Hydra wrote .hydra/ into its folder.
    result = run_in_shell(
        f"aetrain \"hydra.run.dir='~/new run'\" data.dir={tmp_path / 'missing'}", cwd=tmp_path, HOME=str(home)
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert (home / "new run" / ".hydra" / "overrides.yaml").is_file()
    assert not (tmp_path / "~").exists()


# Two folders of NAMES's characters together; the stopped run's own folder is the first.
NASTY = ["it's $HOME; a=b,c [x] ünï", 'say "hi" \\ ~{y} (z) 日本']


@pytest.fixture(scope="module")
def stopped_in_pictures(tiny_data_dir, tmp_path_factory) -> tuple[Path, str]:
    """A run in a folder named NASTY[0], stopped by SIGTERM while drawing; its printed resume line."""
    cwd = tmp_path_factory.mktemp("paths")
    run_dir = cwd / NASTY[0]
    args = smoke_args(tiny_data_dir, "trainer.grid_images=1000", f"hydra.run.dir={hydra_value(str(run_dir))}")
    process = start_aetrain_merged(*args, cwd=cwd)
    reader = OutputReader(process)
    reader.until("phase pictures")
    process.send_signal(signal.SIGTERM)
    output = reader.rest()
    assert process.returncode == 143, output
    return run_dir, printed_resume_command(output)


@pytest.mark.slow
def test_the_printed_line_resumes_a_run_in_a_nasty_folder(stopped_in_pictures, tmp_path):
    run_dir, line = stopped_in_pictures
    elsewhere = tmp_path / NASTY[1]  # the same run copied to the other name: its own resume line
    shutil.copytree(run_dir, elsewhere)
    copied_line = resume_command_line(shlex.split(line)[1:-1], elsewhere)  # its overrides, that folder
    for folder, command in ((run_dir, line), (elsewhere, copied_line)):
        result = run_in_shell(f"{command} trainer.grid_images=3", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["status"] == "completed" and (folder / "reconstructions.png").is_file()
