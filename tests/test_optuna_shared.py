"""Several workers, one Optuna study: ``aetrain hparams_search=optuna`` processes on one stored study
split its ``n_trials`` (none run twice, none lost), all report the same best trial, and a trial
whose worker died (no heartbeat) is marked failed and run again.

The first tests drive the sweeper with the stand-in launcher of tests/test_optuna.py, in threads (a few
seconds); the slow ones start real ``aetrain -m hparams_search=optuna`` processes at once on one
SQLite file and SIGKILL one of them mid-trial.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState
from test_optuna import StandInLauncher, sweeper_for

from aetrain.sweeps.optuna_search import AetrainOptunaSearch
from aetrain.sweeps.optuna_shared import SEARCH_ATTR, SearchState, SharedSearch

from cli_runs import AETRAIN, aetrain, environment, plain_text, smoke_args, wait_for

optuna.logging.set_verbosity(optuna.logging.WARNING)


class SlowStandIn(StandInLauncher):
    """The stand-in launcher, each job taking a moment (so that workers interleave) and scoring its x."""

    def __init__(self, sweep_dir: Path) -> None:
        super().__init__(sweep_dir, lambda job: ("completed", float(job["x"])))

    def launch(self, job_overrides, initial_job_idx):
        time.sleep(0.05)
        return super().launch(job_overrides, initial_job_idx)


def worker(tmp_path: Path, sweep: str, n_trials: int, launcher=None) -> AetrainOptunaSearch:
    """One worker's sweeper on the study in tmp_path/optuna.db, heartbeat every second."""
    launcher = launcher or SlowStandIn(tmp_path / sweep)
    return sweeper_for(tmp_path, sweep, n_trials, launcher=launcher, heartbeat_interval=1, grace_period=3)


def results(tmp_path: Path, sweep: str):
    return OmegaConf.load(tmp_path / sweep / "optimization_results.yaml")


def stored(tmp_path: Path, name: str = "study") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def test_workers_in_threads_split_the_trials_and_report_the_same_best(tmp_path):
    workers = [worker(tmp_path, f"w{n}", n_trials=9) for n in range(3)]
    threads = [threading.Thread(target=w.sweep, args=([],)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    trials = stored(tmp_path).trials
    assert [t.number for t in trials] == list(range(9))
    assert all(t.state == TrialState.COMPLETE for t in trials)
    launched = [job for w in workers for job in w.launcher.launched]
    assert len(launched) == 9 and len({tuple(sorted(job.items())) for job in launched}) == 9
    ends = [results(tmp_path, f"w{n}") for n in range(3)]
    assert sum(r.trials_this_run for r in ends) == 9
    assert len({(r.best_trial, r.best_value, r.search) for r in ends}) == 1
    assert ends[0].best_value == min(t.value for t in trials)


def test_a_trial_without_heartbeat_is_failed_and_its_parameters_run_again(tmp_path):
    class Dies(StandInLauncher):
        """The worker stops mid-trial and its trial stays RUNNING, as after kill -9."""

        def launch(self, job_overrides, initial_job_idx):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        worker(tmp_path, "dead", n_trials=2, launcher=Dies(tmp_path / "dead")).sweep([])
    with sqlite3.connect(tmp_path / "optuna.db") as db:  # its last heartbeat, an hour ago
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")

    alive = worker(tmp_path, "alive", n_trials=5)  # joins the open search: its n_trials is not used
    alive.sweep([])
    lost, retry, new = stored(tmp_path).trials
    assert lost.state == TrialState.FAIL and lost.user_attrs["lost_worker"] is True
    assert lost.user_attrs["status"] == "failed" and "no heartbeat" in lost.user_attrs["reason"]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params
    assert retry.user_attrs["aetrain.retry_of"] == lost.number
    assert new.state == TrialState.COMPLETE and new.params != lost.params
    end = results(tmp_path, "alive")
    assert (end.trials_this_run, dict(end.states)) == (2, {"complete": 2, "fail": 1})


def test_the_search_state_changes_for_one_writer_only(tmp_path):
    """Two workers that read the same state and both try to claim the last trial: one gets it."""
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    database = study._storage._backend
    first, second = SharedSearch(study, database, 3.0), SharedSearch(study, database, 3.0)
    first.join_or_open(1)
    second.join_or_open(7)  # joins: the open search keeps its n_trials
    token, state = first._attribute._read()
    assert state == SearchState(first.search_id, 1) and second.search_id == first.search_id
    claimed = replace(state, started=1, claims=1)
    assert first._attribute._swap(token, claimed) is True
    assert second._attribute._swap(token, claimed) is False  # the value it read is gone
    assert second.claim(1) == [] and study.user_attrs[SEARCH_ATTR]["started"] == 1


# --- the real command ------------------------------------------------------------------------------


def start_worker(data_dir: Path, cwd: Path, sweep: str, *overrides: str) -> subprocess.Popen:
    """``aetrain -m hparams_search=optuna`` on cwd/optuna.db, a process group of its own."""
    args = [
        "-m", "hparams_search=optuna", "hydra.sweeper.storage=sqlite:///optuna.db",
        "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=5",
        *smoke_args(data_dir, f"hydra.sweep.dir={cwd / sweep}", "trainer.grid_images=4", *overrides),
    ]  # fmt: skip
    return subprocess.Popen(
        [AETRAIN, *args], cwd=cwd, env=environment(cwd), text=True, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.mark.slow
def test_two_real_workers_share_one_study(tiny_data_dir, tmp_path):
    started = time.monotonic()
    workers = [start_worker(tiny_data_dir, tmp_path, sweep, "hydra.sweeper.n_trials=4") for sweep in "ab"]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    wall = time.monotonic() - started
    for process, output in zip(workers, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    trials = stored(tmp_path, "aetrain").trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and {t.state for t in trials} == {TrialState.COMPLETE}
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4  # no parameter set twice
    run_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert {str(tmp_path / s / str(n)) for s in "ab" for n in range(4)} >= run_dirs and len(run_dirs) == 4
    ends = [results(tmp_path, sweep) for sweep in "ab"]
    assert sorted(r.trials_this_run for r in ends) != [0, 4], "one worker ran every trial"
    assert sum(r.trials_this_run for r in ends) == 4
    assert ends[0].best_trial == ends[1].best_trial and ends[0].best_value == ends[1].best_value
    assert ends[0].best_value == min(t.value for t in trials)
    assert "joins the search in progress" in "".join(outputs)
    print(f"two workers, 4 trials: {[r.trials_this_run for r in ends]} each, {wall:.1f} s")


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_and_run_again_by_the_other(tiny_data_dir, tmp_path):
    started = time.monotonic()
    # One worker's trials last long (12 traced epochs of 24 batches), the other's a second or two.
    slow = start_worker(
        tiny_data_dir, tmp_path, "slow", "hydra.sweeper.n_trials=2",
        "trainer.batch_size=8", "trainer.epochs=12", "trainer.run_eagerly=false",
    )  # fmt: skip
    fast = start_worker(tiny_data_dir, tmp_path, "fast", "hydra.sweeper.n_trials=2")
    wait_for(tmp_path / "slow" / "0" / "checkpoints" / "last.keras", slow)
    os.killpg(slow.pid, signal.SIGKILL)
    slow.wait(timeout=30)
    killed_at = time.monotonic()
    output = fast.communicate(timeout=240)[0]
    assert fast.returncode == 0, output[-3000:]

    trials = stored(tmp_path, "aetrain").trials
    (lost,) = [t for t in trials if t.state == TrialState.FAIL]
    assert lost.user_attrs["lost_worker"] is True and "no heartbeat for over 5" in lost.user_attrs["reason"]
    (retry,) = [t for t in trials if t.user_attrs.get("aetrain.retry_of") == lost.number]
    assert retry.state == TrialState.COMPLETE and retry.params == lost.params
    assert retry.user_attrs["run_dir"].startswith(str(tmp_path / "fast"))
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(completed) == 2 and len(trials) == 3  # n_trials completed, the lost one beside them
    end = results(tmp_path, "fast")
    assert end.trials_this_run == 2 and end.best_trial in {t.number for t in completed}
    assert f"Trial {lost.number} lost its worker" in output
    print(f"retried {time.monotonic() - killed_at:.1f} s after the kill, {time.monotonic() - started:.1f} s")


# --- refused before any trial ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["hydra.sweeper.heartbeat_interval=0"], "hydra.sweeper.heartbeat_interval=0 is not a whole number"),
        (
            ["hydra.sweeper.heartbeat_interval=10", "hydra.sweeper.grace_period=10"],
            "hydra.sweeper.grace_period=10 must be a whole number of seconds above",
        ),
    ],
    ids=["no heartbeat", "grace within one heartbeat"],
)
def test_a_heartbeat_that_cannot_work_is_refused(tmp_path, overrides, words):
    result = aetrain(
        "-m", "hparams_search=optuna", "hydra.sweeper.storage=sqlite:///optuna.db",
        f"hydra.sweep.dir={tmp_path / 's'}", *overrides, cwd=tmp_path,
    )  # fmt: skip
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    assert words in text and "Traceback" not in text and not (tmp_path / "s").exists()


def test_a_stored_study_with_another_direction_is_refused_naming_the_keys(tmp_path):
    optuna.create_study(
        study_name="aetrain", storage=f"sqlite:///{tmp_path / 'optuna.db'}", direction="maximize"
    )
    result = aetrain(
        "-m", "hparams_search=optuna", "hydra.sweeper.storage=sqlite:///optuna.db",
        f"hydra.sweep.dir={tmp_path / 's'}", cwd=tmp_path,
    )  # fmt: skip
    text = plain_text(result.stdout + result.stderr)
    assert result.returncode == 2, text
    assert "was made to maximize, and this command asks hydra.sweeper.direction=minimize" in text
    assert "hydra.sweeper.study_name=NEW_NAME" in text and "Traceback" not in text
    assert not (tmp_path / "s").exists() and stored(tmp_path, "aetrain").trials == []
