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
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.trial import Trial, TrialState

from aetrain import exit_codes
from aetrain.errors import AetrainError, failure
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import write_text_atomically
from aetrain.run_folder.record import read_metrics_or_empty, run_outcome

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


class AetrainOptunaSearch(OptunaSweeperImpl):
    """The Optuna sweeper of hydra-optuna-sweeper 1.3, with the differences the module names."""

    def sweep(self, arguments: list[str]) -> None:
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

        directions = self._get_directions()
        try:
            study = optuna.create_study(
                study_name=self.study_name,
                storage=self.storage,
                sampler=self.sampler,
                directions=directions,
                load_if_exists=True,
            )
        except Exception as error:  # a bad URL, an unreachable or read-only database, another direction
            self._refuse(*storage_refusal(self.storage, self.study_name, error))
        try:
            check_search_space(study, distributions)
        except SearchSpaceChanged as error:
            self._refuse(*failure(error))
        study.set_user_attr(SEARCH_SPACE_ATTR, search_space_record(distributions))
        earlier = len(study.get_trials(deepcopy=False))
        log.info(
            f"Study {study.study_name!r} in {self.storage or 'memory'}: {earlier} earlier trials, "
            f"{self.n_trials} to add."
        )

        stopped_early = False
        to_go = self.n_trials
        if self.config.get("resume_sweep") is True:
            to_go -= self._finish_stopped_trials(study)
        while to_go > 0 and not stopped_early:
            batch = min(to_go, self.n_jobs)
            trials = [study.ask() for _ in range(batch)]
            overrides = [self._configure_trial(study, trial, distributions, fixed_params) for trial in trials]
            try:
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            except BaseException as stop:  # a signal, or a launcher that gave up: no trial left RUNNING
                self._tell_stopped_batch(study, trials, f"the sweep stopped ({type(stop).__name__}: {stop})")
                raise
            self.job_idx += len(returns)
            told = [self._tell(study, trial, ret) for trial, ret in zip(trials, returns, strict=False)]
            failures = sum(state != TrialState.COMPLETE for state in told)
            for trial in trials[len(returns) :]:
                _tell_unfinished(study, trial, "the launcher returned no result for this job")
            if failures / max(len(returns), 1) > self.max_failure_rate:
                log.error(
                    f"{failures} of {len(returns)} trials failed, more than "
                    f"hydra.sweeper.max_failure_rate={self.max_failure_rate}: the search stops."
                )
                stopped_early = True
            to_go -= batch

        self._write_results(study, directions, earlier)

    # --- one trial -------------------------------------------------------------------------------

    def _configure_trial(
        self, study: optuna.Study, trial: Trial, distributions: dict[str, BaseDistribution], fixed: dict
    ) -> tuple[str, ...]:
        """The trial's overrides, sampled by a sampler seeded for this trial number."""
        sampler = self._sampler_for(trial.number)
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

    def _finish_stopped_trials(self, study: optuna.Study) -> int:
        """``resume_sweep=true``: run the trials the stopped search left unfinished (RUNNING in the
        stored study, their jobs in sweep.json) as the same trials, resumed from their checkpoints,
        then number new trials after the stopped search's jobs. Returns how many trials the stopped
        search had started (they count towards ``n_trials``)."""
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
                returns = self.launcher.launch([job.overrides], initial_job_idx=job.num)
            except BaseException as stop:
                why = f"the sweep stopped ({type(stop).__name__})"
                self._tell_stopped_batch(study, [trial], why, first=job.num)
                raise
            self._tell(study, trial, returns[0])
        return len(jobs)

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

    def _write_results(self, study: optuna.Study, directions: list[str], earlier: int) -> None:
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
        results |= {"trials_in_study": len(trials), "trials_this_run": len(trials) - earlier}
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
    from sqlalchemy.exc import OperationalError

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


def _tell_unfinished(study: optuna.Study, trial: Trial, reason: str) -> None:
    try:
        trial.set_user_attr("status", "interrupted")
        trial.set_user_attr("reason", reason)
        study.tell(trial, state=TrialState.FAIL)
    except Exception as error:  # the storage itself may be what failed
        log.warning(f"Could not mark trial {trial.number} failed: {error}")
