"""``hparams_search=optuna``: aetrain's Optuna sweeper resumes a stored study with new trials, refuses a
changed search space, reports failed trials with their reason, and ends a study with no completed
trial with a results file that says so.

The first tests drive the sweeper with a stand-in launcher (no training, a second each); the slow
ones run the real ``aetrain -m hparams_search=optuna`` on the tiny data.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.trial import TrialState

from aetrain.sweeps.optuna_search import SEARCH_SPACE_ATTR, AetrainOptunaSearch

from cli_runs import AETRAIN, SLOW_RUN, aetrain, environment, plain_text, smoke_args, wait_for

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"x": "interval(0, 1)", "size": "choice(8, 16, 32, 64)"}


class StandInLauncher:
    """Writes each job's metrics.json as aetrain would and returns what aetrain's main returns."""

    def __init__(self, sweep_dir: Path, outcome=lambda job: ("completed", 1.0)) -> None:
        self.sweep_dir, self.outcome, self.launched = sweep_dir, outcome, []

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        returns = []
        for index, overrides in enumerate(job_overrides, start=initial_job_idx):
            job = dict(o.split("=", 1) for o in overrides)
            self.launched.append(job)
            status, value = self.outcome(job)
            folder = self.sweep_dir / str(index)
            folder.mkdir(parents=True)
            metrics = {"status": status, "best_val_loss": value}
            if status != "completed":
                metrics["error"] = f"why job {index} is {status}"
            (folder / "metrics.json").write_text(json.dumps(metrics))
            hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(folder)}}})
            returns.append(
                JobReturn(
                    overrides=list(overrides),
                    hydra_cfg=hydra_cfg,
                    status=JobStatus.COMPLETED,
                    _return_value=value if status == "completed" else None,
                )
            )
        return returns


def sweeper_for(
    tmp_path: Path, sweep: str, n_trials: int = 3, space=SPACE, launcher=None, n_jobs: int = 1, **settings
) -> AetrainOptunaSearch:
    """The sweeper of one `aetrain -m hparams_search=optuna` invocation, not yet run, on a study in
    tmp_path/optuna.db (``settings``: further sweeper keys, e.g. the heartbeat's)."""
    sweep_dir = tmp_path / sweep
    sweep_dir.mkdir()
    sampler_cfg = {"_target_": "optuna.samplers.TPESampler", "seed": 1234, "n_startup_trials": 10}
    sweeper = AetrainOptunaSearch(
        sampler=optuna.samplers.TPESampler(seed=1234, n_startup_trials=10),
        direction="minimize",
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
        study_name="study",
        n_trials=n_trials,
        n_jobs=n_jobs,
        max_failure_rate=1.0,
        search_space=None,
        custom_search_space=None,
        params=OmegaConf.create(space),
        **settings,
    )
    sweep_cfg = {"dir": str(sweep_dir), "subdir": "${hydra.job.num}"}
    sweeper.config = OmegaConf.create({"hydra": {"sweeper": {"sampler": sampler_cfg}, "sweep": sweep_cfg}})
    sweeper.launcher = launcher or StandInLauncher(sweep_dir)
    sweeper.job_idx = 0
    return sweeper


def search(tmp_path: Path, sweep: str, n_trials: int = 3, space=SPACE, launcher=None, n_jobs: int = 1):
    """One `aetrain -m hparams_search=optuna` invocation, run: its launcher and its results."""
    sweeper = sweeper_for(tmp_path, sweep, n_trials, space, launcher, n_jobs)
    sweeper.sweep([])
    return sweeper.launcher, OmegaConf.load(tmp_path / sweep / "optimization_results.yaml")


def stored_trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path / 'optuna.db'}").trials


def test_a_resumed_study_adds_new_trials_instead_of_repeating_the_first_run(tmp_path):
    first, _ = search(tmp_path, "first")
    second, results = search(tmp_path, "second")
    assert first.launched != second.launched
    assert all(job not in first.launched for job in second.launched)
    assert [t.number for t in stored_trials(tmp_path)] == [0, 1, 2, 3, 4, 5]
    assert (results.trials_in_study, results.trials_this_run) == (6, 3)


def test_a_fresh_study_is_reproducible(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, _ = search(tmp_path / "a", "s")
    second, _ = search(tmp_path / "b", "s")
    assert first.launched == second.launched


def test_failed_refused_and_diverged_trials_carry_status_and_reason(tmp_path):
    outcomes = iter([("completed", 0.5), ("refused", None), ("diverged", None), ("failed", None)])
    _, results = search(
        tmp_path, "s", n_trials=4, launcher=StandInLauncher(tmp_path / "s", lambda _: next(outcomes))
    )
    trials = stored_trials(tmp_path)
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.FAIL,
        TrialState.PRUNED,
        TrialState.FAIL,
    ]
    assert [t.user_attrs["status"] for t in trials] == ["completed", "refused", "diverged", "failed"]
    assert trials[2].user_attrs["reason"] == "why job 2 is diverged"
    assert trials[3].user_attrs["run_dir"] == str(tmp_path / "s" / "3")
    assert results.best_value == 0.5 and results.states == {"complete": 1, "pruned": 1, "fail": 2}


def test_a_study_with_no_completed_trial_writes_results_that_say_so(tmp_path, capsys):
    launcher = StandInLauncher(tmp_path / "s", lambda _: ("diverged", None))
    _, results = search(tmp_path, "s", n_trials=2, launcher=launcher)
    assert results.best_params is None and results.best_value is None
    assert "No trial of study 'study' completed (2 trials: 2 pruned)" in results.message
    assert "No trial of study" in capsys.readouterr().err


def test_a_stopped_trial_stays_resumable_not_failed(tmp_path):
    class Stopping(StandInLauncher):
        """Job 0 of the batch finishes, then a signal stops the sweep while job 1 trains."""

        def launch(self, job_overrides, initial_job_idx):
            super().launch(job_overrides[:1], initial_job_idx)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, "s", n_trials=2, launcher=Stopping(tmp_path / "s"), n_jobs=2)
    finished, stopped = stored_trials(tmp_path)
    assert finished.state == TrialState.COMPLETE and finished.value == 1.0
    # A FAIL would count a stopped trial as a bad region; resume_sweep=true finishes it as itself.
    assert stopped.state == TrialState.RUNNING and stopped.user_attrs["status"] == "interrupted"
    assert stopped.user_attrs["aetrain.job_num"] == 1
    assert stopped.user_attrs["aetrain.sweep_dir"] == str((tmp_path / "s").absolute())
    assert "KeyboardInterrupt" in stopped.user_attrs["reason"]


def test_a_changed_search_space_is_refused_before_any_trial(tmp_path, capsys):
    search(tmp_path, "first", n_trials=1)
    launcher = StandInLauncher(tmp_path / "second")
    with pytest.raises(SystemExit) as exit_info:
        search(
            tmp_path,
            "second",
            space={**SPACE, "size": "choice(16, 32)", "y": "interval(1, 2)"},
            launcher=launcher,
        )
    assert exit_info.value.code == 2
    text = plain_text(capsys.readouterr().out)
    assert "`size` was CategoricalDistribution(choices=(8, 16, 32, 64)), now CategoricalDistribution(" in text
    assert "`y` is new" in text and "hydra.sweeper.study_name=NEW_NAME" in text
    assert launcher.launched == [] and not (tmp_path / "second").exists()
    assert [t.state for t in stored_trials(tmp_path)] == [TrialState.COMPLETE]


# --- the real command ------------------------------------------------------------------------------


def optuna_search(data_dir: Path, cwd: Path, sweep: str, *overrides: str):
    return aetrain(
        "-m",
        "hparams_search=optuna",
        "hydra.sweeper.storage=sqlite:///optuna.db",
        *smoke_args(data_dir, f"hydra.sweep.dir={cwd / sweep}", "trainer.grid_images=4", *overrides),
        cwd=cwd,
    )


def study_in(cwd: Path, name: str = "aetrain") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{cwd / 'optuna.db'}")


@pytest.mark.slow
def test_the_real_command_resumes_a_stored_study_and_refuses_a_changed_space(tiny_data_dir, tmp_path):
    for sweep in ("first", "second"):
        result = optuna_search(tiny_data_dir, tmp_path, sweep, "hydra.sweeper.n_trials=1")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = study_in(tmp_path).trials
    assert len(trials) == 2 and all(t.state == TrialState.COMPLETE for t in trials)
    assert trials[0].params != trials[1].params  # the plain plugin replayed trial 0
    assert trials[1].user_attrs["run_dir"] == str(tmp_path / "second" / "0")
    results = OmegaConf.load(tmp_path / "second" / "optimization_results.yaml")
    assert results.best_value == min(t.value for t in trials) and results.trials_in_study == 2

    changed = optuna_search(
        tiny_data_dir, tmp_path, "third", "hydra.sweeper.n_trials=2", "latent_size=choice(16,32)"
    )
    text = plain_text(changed.stdout + changed.stderr)
    assert changed.returncode == 2, text
    assert "`latent_size` was CategoricalDistribution(choices=(8, 16, 32, 64))" in text
    assert "Traceback" not in text and not (tmp_path / "third").exists()
    assert [t.state for t in study_in(tmp_path).trials] == [TrialState.COMPLETE] * 2  # none RUNNING


@pytest.mark.slow
def test_a_stopped_search_continues_with_its_printed_line_as_the_same_trials(tiny_data_dir, tmp_path):
    """The printed resume_sweep=true line was refused when pasted, and the stopped trial was FAIL."""
    args = [
        "-m", "hparams_search=optuna", "hydra.sweeper.storage=sqlite:///optuna.db",
        "hydra.sweeper.n_trials=2",
        *smoke_args(tiny_data_dir, f"hydra.sweep.dir={tmp_path / 's'}", *SLOW_RUN, "trainer.grid_images=4"),
    ]  # fmt: skip
    search = subprocess.Popen(
        [AETRAIN, *args], cwd=tmp_path, env=environment(tmp_path), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for(tmp_path / "s" / "0" / "checkpoints" / "last.keras", search)
    search.send_signal(signal.SIGINT)
    output = search.communicate(timeout=120)[0]
    assert search.returncode == 130, output[-3000:]
    (stopped,) = study_in(tmp_path).trials
    assert stopped.state == TrialState.RUNNING and stopped.user_attrs["status"] == "interrupted"

    lines = output.splitlines()
    pasted = shlex.split(lines[lines.index("Continue it with:") + 1])
    resumed = subprocess.run(
        [AETRAIN, *pasted[1:]], cwd=tmp_path, env=environment(tmp_path), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    trials = study_in(tmp_path).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # n_trials in all, none FAIL
    assert trials[0].number == stopped.number and trials[0].params == stopped.params
    assert json.loads((tmp_path / "s" / "0" / "metrics.json").read_text())["resumed_from_epoch"] >= 1
    assert trials[1].user_attrs["run_dir"] == str(tmp_path / "s" / "1")


@pytest.mark.slow
def test_the_real_command_with_no_completed_trial_exits_0_with_results_that_say_so(tiny_data_dir, tmp_path):
    result = optuna_search(
        tiny_data_dir, tmp_path, "s", "hydra.sweeper.n_trials=2", "variant=vae"
    )  # + sparsity=l1
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 0, text
    assert "Traceback" not in text and "No trial of study 'aetrain' completed (2 trials: 2 fail)" in text
    results = OmegaConf.load(tmp_path / "s" / "optimization_results.yaml")
    assert results.best_params is None and "no best value" in results.message
    trials = study_in(tmp_path).trials
    assert [t.user_attrs["status"] for t in trials] == ["refused", "refused"]
    assert "sparsity" in trials[0].user_attrs["reason"]


@pytest.mark.parametrize(
    "spelling",
    ["latent_size=choice(16,32)", "hydra.sweeper.params.latent_size='choice(16,32)'"],
    ids=["as a sweep override", "quoted for Hydra"],
)
def test_the_search_space_can_be_narrowed_on_the_command_line(tiny_data_dir, tmp_path, spelling):
    """The old README's `hydra.sweeper.params.latent_size='choice(16,32)'` lost its quotes to the shell."""
    result = optuna_search(tiny_data_dir, tmp_path, "s", "hydra.sweeper.n_trials=0", spelling)
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 0, text
    assert "No trials ran" in text
    space = study_in(tmp_path).user_attrs[SEARCH_SPACE_ATTR]
    assert space["latent_size"]["attributes"]["choices"] == [16, 32]
    assert OmegaConf.load(tmp_path / "s" / "optimization_results.yaml").best_params is None


@pytest.mark.parametrize(
    ("storage", "exit_code", "words"),
    [
        ("sqlite:////nonexistent-folder/optuna.db", 5, "Cannot open the Optuna storage"),
        ("bogus://nowhere", 2, "Cannot open study 'aetrain'"),
    ],
    ids=["unreachable database", "bad URL"],
)
def test_a_storage_that_cannot_be_opened_is_named_before_any_trial(tmp_path, storage, exit_code, words):
    sweep_dir = tmp_path / "s"
    result = aetrain(
        "-m", "hparams_search=optuna", f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == exit_code, text
    assert words in text and storage in text and "Traceback" not in text
    assert not sweep_dir.exists()
