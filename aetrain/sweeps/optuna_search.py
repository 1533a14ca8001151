"""``hparams_search=optuna``: Hydra's Optuna sweeper, made to resume, refuse and fail gracefully.

conf/hparams_search/optuna.yaml points ``hydra.sweeper._target_`` at the plugin class
``hydra_plugins.aetrain_optuna_sweeper.AetrainOptunaSweeper``, which runs this one. The search loop is the
plugin's (hydra-optuna-sweeper 1.3, optuna 2.x), with these differences:

- **Resuming adds new trials.** The plugin hands every run the sampler seeded with
  ``hydra.sweeper.sampler.seed``, so a second run on a stored study replays the first run's trials.
  Here each trial is sampled by a sampler seeded from (that seed, the trial's number in the study):
  reproducible for a fresh study, and new for every trial a resumed or shared study adds (the
  storage hands out trial numbers, so two machines never get the same one).
- **A changed search space is refused** before any trial starts (exit 2), naming what changed: the
  study keeps its search space in the user attribute ``aetrain.search_space``.
- **A failed job is a failed trial with its reason.** Each trial's ``status`` (from its run's
  ``metrics.json``: completed, refused, failed, diverged, interrupted), ``reason`` and ``run_dir``
  are trial user attributes; a diverged run is PRUNED, the other failures FAIL.
- **A study with no completed trial** ends with a message and an ``optimization_results.yaml``
  that says so (``best_params: null``), exit 0.
- **Workers share a stored study** (aetrain.sweeps.optuna_shared): processes started on one study
  split its ``n_trials`` (claimed through the database, so none is run twice), each records a
  heartbeat for its running trials, a trial whose worker died is marked FAIL and run again, and
  every worker waits for the others' trials so that all report the same best trial. A stored study
  with another ``hydra.sweeper.direction`` is refused (exit 2) before any trial.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, Trial, TrialState
from sqlalchemy.exc import IntegrityError, OperationalError

from aetrain import exit_codes
from aetrain.errors import AetrainError, failure
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.run_folder.record import read_metrics_or_empty, run_outcome
from aetrain.sweeps.optuna_shared import (
    RETRY_OF_ATTR,
    TRIAL_SEARCH_ATTR,
    SearchState,
    SharedSearch,
    heartbeats,
    retry_sampler,
)

log = logging.getLogger(__name__)

SEARCH_SPACE_ATTR = "aetrain.search_space"
# A trial a stopped search left RUNNING: its sweep folder and job number, for resume_sweep=true.
SWEEP_DIR_ATTR, JOB_ATTR = "aetrain.sweep_dir", "aetrain.job_num"
RESULTS_FILE = layout.OPTIMIZATION_RESULTS
DEFAULT_SUBDIR = "${hydra.job.num}"
# A run's metrics.json status -> how Optuna hears of it. Diverged is PRUNED: a bad region, not a crash.
TRIAL_STATES = {"completed": TrialState.COMPLETE, "diverged": TrialState.PRUNED}


class SearchSpaceChanged(AetrainError):
    """The stored study was searched over other parameters or ranges than this command line's."""

    exit_code = exit_codes.CONFIG


class DirectionChanged(AetrainError):
    """The stored study optimises in another direction than ``hydra.sweeper.direction``."""

    exit_code = exit_codes.CONFIG


class AetrainOptunaSearch(OptunaSweeperImpl):
    """The Optuna sweeper of hydra-optuna-sweeper 1.3, with the differences the module names."""

    def __init__(
        self, *, heartbeat_interval: int = 30, grace_period: int | None = None, **settings: Any
    ) -> None:
        super().__init__(**settings)
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.database: RDBStorage | None = None  # the stored study's database, when there is one

    def sweep(self, arguments: list[str]) -> None:
        distributions, fixed_params = self._search_space(arguments)
        directions = self._get_directions()
        study = self._open_checked_study(directions, distributions)
        earlier = len(study.get_trials(deepcopy=False))
        shared = SharedSearch(study, self.database, self._grace_s)
        rejoin = self._finish_stopped_trials(study) if self.config.get("resume_sweep") is True else None
        state, joined = shared.join_or_open(self.n_trials, rejoin=rejoin)
        log.info(search_log_line(study, self.storage, earlier, state, joined, self.n_trials))
        ran = self._run_search(study, shared, distributions, fixed_params)
        self._write_results(study, directions, ran, state.search)

    def _search_space(self, arguments: list[str]) -> tuple[dict[str, BaseDistribution], dict]:
        """The searched distributions and the fixed overrides, as the plugin reads them."""
        self._process_searchspace_config()
        distributions, fixed_params = create_params_from_overrides(
            [*self._parse_sweeper_params_config(), *arguments]
        )
        distributions = {**(self.search_space_distributions or {}), **distributions}
        for name in fixed_params:
            distributions.pop(name, None)
        if self._is_grid_sampler():
            grid = {name: self._to_grid_sampler_choices(d) for name, d in distributions.items()}
            self.sampler = self.sampler(grid)
            self.n_trials = min(self.n_trials, math.prod(len(choices) for choices in grid.values()))
        return distributions, fixed_params

    def _open_checked_study(
        self, directions: list[str], distributions: dict[str, BaseDistribution]
    ) -> optuna.Study:
        """The study, or an exit before any trial naming the key to fix (``_refuse``)."""
        problem = heartbeat_problem(self.heartbeat_interval, self.grace_period)
        if problem:
            self._refuse(problem)
        try:
            study = self._open_study(directions)
        except Exception as error:  # a bad URL, an unreachable or read-only database, another direction
            self._refuse(*storage_refusal(self.storage, self.study_name, error))
        try:
            record_search_space(study, distributions)
        except SearchSpaceChanged as error:
            self._refuse(*failure(error))
        return study

    def _run_search(
        self,
        study: optuna.Study,
        shared: SharedSearch,
        distributions: dict[str, BaseDistribution],
        fixed: dict,
    ) -> int:
        """Claim and run trials until the search has none left to start and all have finished (or
        too many failed); returns how many this worker ran."""
        ran = 0
        while True:
            for lost in shared.fail_lost_trials():
                log.warning(f"Trial {lost.number} lost its worker (no heartbeat): FAIL, and it runs again")
            claims = shared.claim(self.n_jobs)
            if not claims:
                if shared.is_finished(study.get_trials(deepcopy=False)):
                    return ran
                if ran:  # a signal caught by the sweep's control (made at the first launch) ends the wait
                    _stop_if_requested(self._sweep_dir)
                time.sleep(self._poll_s)
                continue
            trials, overrides = self._ask(study, shared, claims, distributions, fixed)
            failures = self._run_batch(study, trials, overrides)
            ran += len(trials)
            if failures / len(trials) > self.max_failure_rate:
                log.error(
                    f"{failures} of {len(trials)} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: the search stops."
                )
                return ran

    def _run_batch(self, study: optuna.Study, trials: list[Trial], overrides: list[tuple[str, ...]]) -> int:
        """Launch one batch with heartbeats, tell Optuna each outcome; returns how many failed."""
        try:
            with heartbeats(self.database, [t._trial_id for t in trials], self.heartbeat_interval):
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
        except BaseException as stop:  # a signal, or a launcher that gave up: no trial left RUNNING
            self._tell_stopped_batch(study, trials, f"the sweep stopped ({type(stop).__name__}: {stop})")
            raise
        self.job_idx += len(returns)
        told = [self._tell(study, trial, ret) for trial, ret in zip(trials, returns, strict=False)]
        for trial in trials[len(returns) :]:
            _tell_unfinished(study, trial, "the launcher returned no result for this job")
        return sum(outcome != TrialState.COMPLETE for outcome in told) + len(trials) - len(returns)

    def _open_study(self, directions: list[str]) -> optuna.Study:
        """The study, created or loaded; a database URL gets heartbeats. Workers that start together
        on a new database race to create its tables: the loser tries again."""
        for attempt in range(5):
            try:
                self.database = open_database(self.storage, self.heartbeat_interval, self.grace_period)
                if self.database is not None:
                    check_direction(self.database, self.study_name, directions)
                return optuna.create_study(
                    study_name=self.study_name,
                    storage=self.database or self.storage,
                    sampler=self.sampler,
                    directions=directions,
                    load_if_exists=True,
                )
            except (OperationalError, IntegrityError) as error:
                raced = isinstance(error, IntegrityError) or "already exists" in str(error)
                if attempt == 4 or not raced:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    @property
    def _grace_s(self) -> float:
        return float(self.grace_period or 2 * self.heartbeat_interval)

    @property
    def _poll_s(self) -> float:
        """How often a worker with nothing to claim looks at the study: every heartbeat, 1 to 5 s."""
        return float(min(max(self.heartbeat_interval, 1), 5))

    # --- one trial -------------------------------------------------------------------------------

    def _ask(
        self,
        study: optuna.Study,
        shared: SharedSearch,
        claims: list[int | None],
        distributions: dict[str, BaseDistribution],
        fixed: dict,
    ) -> tuple[list[Trial], list[tuple[str, ...]]]:
        """A trial for each claim, tagged with the search, and its overrides: a retry proposes the lost
        trial's parameters, a new trial samples its own."""
        trials, overrides = [], []
        for lost_number in claims:
            trial = study.ask()
            if self.database is not None and self.database.is_heartbeat_enabled():
                self.database.record_heartbeat(trial._trial_id)  # a trial with none is never found lost
            trial.set_user_attr(TRIAL_SEARCH_ATTR, shared.search_id)
            lost = None
            if lost_number is not None:
                trial.set_user_attr(RETRY_OF_ATTR, lost_number)
                lost = next(t for t in study.get_trials(deepcopy=False) if t.number == lost_number)
                log.info(f"Trial {trial.number} runs the parameters of lost trial {lost_number} again")
            trials.append(trial)
            overrides.append(self._configure_trial(study, trial, distributions, fixed, lost))
        return trials, overrides

    def _configure_trial(
        self,
        study: optuna.Study,
        trial: Trial,
        distributions: dict[str, BaseDistribution],
        fixed: dict,
        lost: FrozenTrial | None = None,
    ) -> tuple[str, ...]:
        """The trial's overrides, sampled by a sampler seeded for this trial number (a retry: the lost
        trial's parameters)."""
        sampler = self._sampler_for(trial.number)
        if lost is not None:
            sampler = retry_sampler(lost, sampler or self.sampler)
        if sampler is not None:
            study.sampler = sampler
        return tuple(self._configure_trials([trial], distributions, fixed)[0])

    def _sampler_for(self, trial_number: int) -> Any:
        """A fresh sampler seeded from (the configured seed, trial number); None when unseeded."""
        sampler_cfg = self.config.hydra.sweeper.get("sampler")
        if sampler_cfg is None or self._is_grid_sampler() or sampler_cfg.get("seed") is None:
            return None
        return instantiate(sampler_cfg, seed=trial_seed(int(sampler_cfg.seed), trial_number))

    def _is_grid_sampler(self) -> bool:
        sampler = self.sampler
        if isinstance(sampler, functools.partial):
            return sampler.func is optuna.samplers.GridSampler
        return isinstance(sampler, optuna.samplers.GridSampler)

    def _tell(self, study: optuna.Study, trial: Trial, job: JobReturn) -> TrialState:
        """Report a finished job to Optuna: its value, or failed/pruned with the reason."""
        run_dir = _job_dir(job)
        try:
            return self._tell_outcome(study, trial, job, run_dir)
        except RuntimeError as error:  # "Trial#N has already finished": marked lost meanwhile
            log.warning(
                f"Trial {trial.number} ({run_dir}) had been marked lost by another worker, which saw no "
                f"heartbeat from it for over {self._grace_s:g} s, and runs again; this run's result "
                f"stays in its run folder, not in the study ({error}). A longer "
                "hydra.sweeper.grace_period avoids this."
            )
            return TrialState.FAIL

    def _tell_outcome(
        self, study: optuna.Study, trial: Trial, job: JobReturn, run_dir: Path | None
    ) -> TrialState:
        status, reason = job_outcome(job, run_dir)
        trial.set_user_attr("status", status)
        trial.set_user_attr("reason", reason)
        if run_dir is not None:
            trial.set_user_attr("run_dir", str(run_dir))
        state = TRIAL_STATES.get(status, TrialState.FAIL)
        values = None
        if state == TrialState.COMPLETE:
            values = _objective_values(job._return_value)  # .return_value would raise
            if values is None:
                state, reason = TrialState.FAIL, f"returned {job._return_value!r}, not a number"
                trial.set_user_attr("reason", reason)
        study.tell(trial, state=state, values=values)
        if state != TrialState.COMPLETE:
            log.warning(f"Trial {trial.number} ({run_dir}): {status}: {reason}")
        return state

    def _finish_stopped_trials(self, study: optuna.Study) -> str | None:
        """``resume_sweep=true``: run the trials the stopped search left unfinished (RUNNING in the
        stored study, their jobs in sweep.json) as the same trials, resumed from their checkpoints,
        then number new trials after the stopped search's jobs. Returns the id of the search this
        sweep's trials belong to: it goes on (its trials count towards its ``n_trials``), and this
        worker waits for its other workers' trials."""
        from aetrain.sweeps.record import SweepRecord

        if self.storage is None:
            self._refuse(
                "resume_sweep=true continues an Optuna search through its stored study, and this one "
                "was held in memory (no hydra.sweeper.storage), so it ended with its process. Start a "
                "new search, with hydra.sweeper.storage=sqlite:///optuna.db to make it resumable."
            )
        record = SweepRecord.read(self._sweep_dir)
        jobs = record.jobs if record else {}
        self.job_idx = max(jobs, default=-1) + 1
        stopped = [
            trial
            for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if trial.user_attrs.get(SWEEP_DIR_ATTR) == str(self._sweep_dir)
            and trial.user_attrs.get(JOB_ATTR) in jobs
        ]
        for frozen in stopped:
            job = jobs[frozen.user_attrs[JOB_ATTR]]
            trial = Trial(study, frozen._trial_id)
            log.info(f"Trial {frozen.number} (job {job.num}) was stopped: it continues")
            try:
                with heartbeats(self.database, [frozen._trial_id], self.heartbeat_interval):
                    returns = self.launcher.launch([job.overrides], initial_job_idx=job.num)
            except BaseException as stop:
                why = f"the sweep stopped ({type(stop).__name__})"
                self._tell_stopped_batch(study, [trial], why, first=job.num)
                raise
            self._tell(study, trial, returns[0])
        return self._search_of_this_sweep(study)

    def _search_of_this_sweep(self, study: optuna.Study) -> str | None:
        """The search the trials of this sweep folder belong to (its latest), or None."""
        here = str(self._sweep_dir)
        searches = [
            t.user_attrs.get(TRIAL_SEARCH_ATTR)
            for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(SWEEP_DIR_ATTR) == here
            or str(Path(t.user_attrs.get("run_dir", "/")).absolute().parent) == here
        ]
        return next((search for search in reversed(searches) if search), None)

    @property
    def _sweep_dir(self) -> Path:
        return Path(str(self.config.hydra.sweep.dir)).absolute()

    def _tell_stopped_batch(
        self, study: optuna.Study, trials: list[Trial], reason: str, first: int | None = None
    ) -> None:
        """The launcher raised: tell each trial of the batch what its run folder says. One that did
        not finish stays RUNNING in a stored study, marked with its job, for ``resume_sweep=true``
        to finish as the same trial (a FAIL would count a stopped trial as a bad one); in memory, FAIL.

        Run folders are found where Hydra's default ``hydra.sweep.subdir`` (the job number) puts them.
        """
        sweep = OmegaConf.to_container(self.config.hydra.sweep, resolve=False)
        for index, trial in enumerate(trials, start=self.job_idx if first is None else first):
            run_dir = Path(str(self.config.hydra.sweep.dir)) / str(index)
            metrics = read_metrics_or_empty(run_dir) if sweep.get("subdir") == DEFAULT_SUBDIR else None
            value = _objective_values(metrics.get("best_val_loss")) if metrics else None
            try:
                if metrics and metrics.get("status") == "completed" and value is not None:
                    trial.set_user_attr("status", "completed")
                    trial.set_user_attr("reason", "")
                    trial.set_user_attr("run_dir", str(run_dir))
                    study.tell(trial, state=TrialState.COMPLETE, values=value)
                    continue
            except Exception as error:  # the storage itself may be what failed
                log.warning(f"Could not record trial {trial.number}: {error}")
                continue
            if self.storage is None:
                _tell_unfinished(study, trial, reason)
                continue
            with contextlib.suppress(Exception):  # the storage itself may be what failed
                trial.set_user_attr("status", "interrupted")
                trial.set_user_attr("reason", reason)
                trial.set_user_attr(SWEEP_DIR_ATTR, str(self._sweep_dir))
                trial.set_user_attr(JOB_ATTR, index)

    # --- the end --------------------------------------------------------------------------------

    def _write_results(self, study: optuna.Study, directions: list[str], ran: int, search: str) -> None:
        trials = study.get_trials(deepcopy=False)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        counts = {
            state.name.lower(): n for state in TrialState if (n := sum(t.state == state for t in trials))
        }
        results: dict[str, Any] = {"name": "optuna", "study_name": study.study_name}
        if not completed:
            message = (
                f"No trial of study {study.study_name!r} completed ({len(trials)} trials: "
                + ", ".join(f"{n} {state}" for state, n in counts.items())
                + "), so there is no best value. Each trial's status and reason are in its run "
                "folder's metrics.json; `aetrain-report` on the sweep folder lists them."
            )
            if not trials:
                message = "No trials ran (hydra.sweeper.n_trials=0?), so there is no best value."
            log.warning(message)
            print(f"aetrain: {message}", file=sys.stderr)
            results |= {"best_params": None, "best_value": None, "message": message}
        elif len(directions) < 2:
            best = study.best_trial
            results |= {"best_params": best.params, "best_value": best.value, "best_trial": best.number}
            log.info(f"Best parameters: {best.params}")
            log.info(f"Best value: {best.value}")
        else:
            results["solutions"] = [{"params": t.params, "values": t.values} for t in study.best_trials]
        results |= {"trials_in_study": len(trials), "trials_this_run": ran, "search": search}
        results["states"] = counts
        path = Path(str(self.config.hydra.sweep.dir)) / RESULTS_FILE
        write_text_atomically(path, OmegaConf.to_yaml(OmegaConf.create(results)))

    def _refuse(self, message: str, exit_code: int = exit_codes.CONFIG) -> None:
        """Exit before any trial: one paragraph, and no empty sweep folder left behind."""
        from rich.console import Console
        from rich.panel import Panel

        from aetrain.run_folder.claim import remove_created_folders
        from aetrain.run_folder.lock import release_run_folder

        Console().print(Panel(message, title="aetrain: search refused", border_style="red"))
        release_run_folder(leave_no_trace=True)  # the sweep folder's lock, and its file if made here
        remove_created_folders()  # only the folders this process made, and only when empty
        with contextlib.suppress(OSError):
            Path(str(self.config.hydra.sweep.dir)).rmdir()  # only succeeds when empty
        sys.exit(exit_code)


def storage_refusal(storage: Any, study_name: str | None, error: Exception) -> tuple[str, int]:
    """Why the study cannot be opened, and the exit code: 5 when the database cannot be used, else 2."""
    if isinstance(error, AetrainError):
        return failure(error)
    reason = " ".join(f"{type(error).__name__}: {error}".split())[:400]
    if isinstance(error, OperationalError):
        return (
            f"Cannot open the Optuna storage hydra.sweeper.storage={storage} ({reason}). Check that its "
            "folder exists and may be written, that no other program holds the database, or pass "
            "another one, e.g. hydra.sweeper.storage=sqlite:///optuna.db. No trial was started.",
            exit_codes.OUTPUT,
        )
    return (
        f"Cannot open study {study_name!r} in hydra.sweeper.storage={storage} ({reason}). Fix "
        "hydra.sweeper.storage / hydra.sweeper.direction, or start a new study with "
        "hydra.sweeper.study_name=NEW_NAME. No trial was started.",
        exit_codes.CONFIG,
    )


def open_database(storage: Any, heartbeat_interval: int, grace_period: int | None) -> RDBStorage | None:
    """The database of a storage URL, with heartbeats; None for no storage (memory) or a storage that
    is no URL. SQLite waits up to a minute for a lock another worker holds (its default is 5 s)."""
    if not isinstance(storage, str) or storage.startswith("redis"):
        return None
    engine_kwargs = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else {}
    return RDBStorage(
        storage, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period
    )


def check_direction(database: RDBStorage, study_name: str | None, directions: list[str]) -> None:
    """Raise DirectionChanged when the stored study ``study_name`` optimises in other directions."""
    try:
        stored = database.get_study_directions(database.get_study_id_from_name(str(study_name)))
    except KeyError:  # no such study yet
        return
    stored_names = [d.name.lower() for d in stored]
    if "not_set" in stored_names or stored_names == [d.lower() for d in directions]:
        return
    theirs, ours = ",".join(stored_names), ",".join(directions)
    raise DirectionChanged(
        f"The stored study {study_name!r} in hydra.sweeper.storage={database.url} was made to "
        f"{theirs}, and this command asks hydra.sweeper.direction={ours}: its trials' values cannot "
        f"rank this search's. Search it with hydra.sweeper.direction={theirs} (every worker of a "
        "study the same), or start a new study: hydra.sweeper.study_name=NEW_NAME. No trial was started."
    )


def heartbeat_problem(interval: Any, grace: Any) -> str | None:
    """Why ``hydra.sweeper.heartbeat_interval`` / ``grace_period`` cannot work, or None."""
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        return (
            f"hydra.sweeper.heartbeat_interval={interval!r} is not a whole number of seconds >= 1. Each "
            "worker records a heartbeat for its running trials this often, so that the others can tell "
            "a dead worker's trial and run it again; e.g. hydra.sweeper.heartbeat_interval=30."
        )
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool) or grace <= interval):
        return (
            f"hydra.sweeper.grace_period={grace!r} must be a whole number of seconds above "
            f"hydra.sweeper.heartbeat_interval={interval}: a trial whose worker sent no heartbeat for "
            "that long is counted lost, so a shorter one would fail trials that are still running. "
            f"Leave it null for {2 * interval} s (twice the interval), or raise it."
        )
    return None


def record_search_space(study: optuna.Study, distributions: dict[str, BaseDistribution]) -> None:
    """Check the study's search space against ``distributions`` and record it when the study has
    none yet. Workers that start together may record it at once: the second checks the first's."""
    record = search_space_record(distributions)
    for _ in range(3):
        check_search_space(study, distributions)
        if study.user_attrs.get(SEARCH_SPACE_ATTR) == record:
            return
        try:
            study.set_user_attr(SEARCH_SPACE_ATTR, record)
            return
        except IntegrityError:
            continue


def search_log_line(
    study: optuna.Study, storage: Any, earlier: int, state: SearchState, joined: bool, n_trials: int
) -> str:
    """What this worker does in the study, for the log."""
    where = f"Study {study.study_name!r} in {storage or 'memory'}: {earlier} earlier trials; "
    left = state.n_trials - state.started
    if not joined:
        return where + f"a new search of {state.n_trials} trials."
    other = "" if n_trials == state.n_trials else f" (not this command's n_trials={n_trials})"
    return where + (
        f"joins the search in progress ({state.n_trials} trials{other}, {left} still to start, "
        f"{len(state.retry)} to run again)."
    )


def trial_seed(seed: int, trial_number: int) -> int:
    """A seed for one trial: distinct per trial number, the same for the same (seed, number)."""
    return int(np.random.SeedSequence([seed, trial_number]).generate_state(1)[0])


def search_space_record(distributions: dict[str, BaseDistribution]) -> dict[str, Any]:
    """The search space as plain JSON values (a study user attribute must be JSON)."""
    return {name: json.loads(distribution_to_json(d)) for name, d in sorted(distributions.items())}


def check_search_space(study: optuna.Study, distributions: dict[str, BaseDistribution]) -> None:
    """Raise SearchSpaceChanged when the study was searched over another space than ``distributions``.

    The space is the one recorded by an earlier aetrain run, else the distributions its trials used
    (a study made by the plain plugin). A study with neither is new: anything goes.
    """
    stored_record = study.user_attrs.get(SEARCH_SPACE_ATTR)
    if stored_record is not None:
        stored = {name: json_to_distribution(json.dumps(d)) for name, d in stored_record.items()}
    else:
        stored = {}
        for trial in study.get_trials(deepcopy=False):
            for name, distribution in trial.distributions.items():
                stored.setdefault(name, distribution)
    if not stored:
        return
    changes = []
    for name in sorted(stored.keys() | distributions.keys()):
        before, now = stored.get(name), distributions.get(name)
        if before is None:
            changes.append(f"`{name}` is new ({_describe(now)})")
        elif now is None:
            changes.append(f"`{name}` is no longer searched (it was {_describe(before)})")
        elif before != now:
            changes.append(f"`{name}` was {_describe(before)}, now {_describe(now)}")
    if changes:
        raise SearchSpaceChanged(
            f"The stored study {study.study_name!r} was searched over another space: "
            + "; ".join(changes)
            + ". Trials from two spaces cannot be compared, so no trial was started. Search the "
            "stored space again (the same hydra.sweeper.params), or start a new study: "
            "`hydra.sweeper.study_name=NEW_NAME` (or another hydra.sweeper.storage)."
        )


def _describe(distribution: BaseDistribution | None) -> str:
    if distribution is None:
        return "absent"
    fields = ", ".join(f"{key}={value!r}" for key, value in distribution._asdict().items())
    return f"{type(distribution).__name__}({fields})"


def job_outcome(job: JobReturn, run_dir: Path | None) -> tuple[str, str]:
    """(status, reason) of a finished job: its metrics.json's word, else what the launcher saw."""
    if job.status == JobStatus.FAILED:
        error = job._return_value  # the exception the job raised
        return "failed", f"{type(error).__name__}: {error}"
    if run_dir is None:
        return "failed", "the job has no run folder"
    status, reason = run_outcome(run_dir)
    return status, reason or ("" if status == "completed" else status)


def _job_dir(job: JobReturn) -> Path | None:
    try:
        return Path(str(job.hydra_cfg.hydra.runtime.output_dir))
    except Exception:  # a launcher that sent no config back
        return Path(job.working_dir) if job.working_dir else None


def _objective_values(value: Any) -> list[float] | None:
    items = value if isinstance(value, (list, tuple)) else [value]
    try:
        values = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def _stop_if_requested(sweep_dir: Path) -> None:
    """End the sweep as a stopped launch does when its control caught SIGINT / SIGTERM (and wrote
    the sweep's stop request)."""
    from aetrain.sweeps.control import SweepStopped, finish_sweep
    from aetrain.training.stop_request import read_stop_request

    if read_stop_request(sweep_dir) is not None:
        raise SweepStopped(finish_sweep())


def _tell_unfinished(study: optuna.Study, trial: Trial, reason: str) -> None:
    try:
        trial.set_user_attr("status", "interrupted")
        trial.set_user_attr("reason", reason)
        study.tell(trial, state=TrialState.FAIL)
    except Exception as error:  # the storage itself may be what failed
        log.warning(f"Could not mark trial {trial.number} failed: {error}")
