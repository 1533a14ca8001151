"""Several workers, one Optuna study: how ``aetrain hparams_search=optuna`` processes sharing a stored
study split its trials, and find and retry a trial whose worker died.

A *search* is ``n_trials`` trials of a study. Its state is one study user attribute
(:data:`SEARCH_ATTR`), changed only by compare-and-swap: an ``UPDATE ... WHERE value = <the value
read>``, which every SQL database applies for one writer at a time. Optuna (2.10 and 5.x alike) has
no such step: workers that count a study's trials and then ask for one all ask for the last one.
So a worker

- **joins** the study's search while it has trials left to start, else **opens** a new one of its own
  ``n_trials``: workers started together split ``n_trials``, and a command run after a finished
  search adds ``n_trials`` new trials, as a single worker always did;
- **claims** a trial (a retry first, else a new one) before it asks Optuna for it, and tags the
  trial with the search (:data:`TRIAL_SEARCH_ATTR`);
- records a **heartbeat** for each trial it runs (:func:`heartbeats`). A ``RUNNING`` trial without one
  for the grace period lost its worker (``kill -9``, the out-of-memory killer, a node gone): the
  first worker to see it marks it ``FAIL`` (``lost_worker``) and queues its parameters, which the
  next claim runs again as a new trial;
- when nothing is left to claim, **waits** until every claimed trial has finished, so that every
  worker of the search reports the same best trial.

The heartbeat and stale-trial calls are Optuna's own (``RDBStorage(heartbeat_interval=...)``,
``record_heartbeat``); Optuna runs them only inside ``study.optimize``, and a Hydra sweeper asks and
tells, so they are driven here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

SEARCH_ATTR = "aetrain.search"  # the study's search: a SearchState as JSON
TRIAL_SEARCH_ATTR = "aetrain.search"  # on each trial: the id of the search that claimed it
RETRY_OF_ATTR = "aetrain.retry_of"  # on a retry: the number of the lost trial whose parameters it runs
LOST_REASON = (
    "its worker sent no heartbeat for over {grace} s (the process was killed, ran out of memory, or "
    "lost its node or the database); its parameters run again as a new trial"
)
T = TypeVar("T")


@dataclass(frozen=True)
class SearchState:
    """What the workers of one search agree on; every change is one compare-and-swap."""

    search: str  # the search's id
    n_trials: int  # new trials it runs (the n_trials of the worker that opened it)
    started: int = 0  # new trials claimed so far, at most n_trials
    claims: int = 0  # every claim, retries included: each becomes one trial tagged with the search
    retry: tuple[int, ...] = ()  # lost trials whose parameters wait to run again
    lost: tuple[int, ...] = ()  # every trial of the study ever found lost, so none is retried twice
    previous: dict[str, Any] = field(default_factory=dict)  # the search before: {"search", "claims"}

    @property
    def is_open(self) -> bool:
        return self.started < self.n_trials or bool(self.retry)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "retry": list(self.retry), "lost": list(self.lost)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SearchState:
        return cls(**{**value, "retry": tuple(value["retry"]), "lost": tuple(value["lost"])})


class SharedSearch:
    """This worker's part in the study's search: join or open it, claim trials, find lost ones."""

    def __init__(self, study: optuna.Study, database: RDBStorage | None, grace_s: float) -> None:
        self.study, self.database, self.grace_s = study, database, grace_s
        self.search_id: str | None = None
        self._short_since: float | None = None  # when claims outnumbered trials with none running
        if database is not None:
            self._attribute: _Attribute = _DatabaseAttribute(database, study.study_name)
        else:
            self._attribute = _MemoryAttribute(study)

    def join_or_open(self, n_trials: int, rejoin: str | None = None) -> tuple[SearchState, bool]:
        """The search this worker works on, and whether it joined one another worker opened: the
        study's search while it is open (or is ``rejoin``, the search of the trials a resumed sweep
        just finished), else a new one of ``n_trials``."""
        new_id = uuid.uuid4().hex

        def change(state: SearchState | None) -> tuple[SearchState, SearchState]:
            if state is not None and (state.is_open or state.search == rejoin):
                return state, state
            previous = {"search": state.search, "claims": state.claims} if state else {}
            new = SearchState(new_id, n_trials, lost=state.lost if state else (), previous=previous)
            return new, new

        state = self._attribute.update(change)
        self.search_id = state.search
        return state, state.search != new_id

    def claim(self, count: int) -> list[int | None]:
        """Up to ``count`` trials to run: the number of a lost trial to run again, or None for a new
        one. Empty when the search has nothing left to start."""

        def change(state: SearchState | None) -> tuple[SearchState | None, list[int | None]]:
            if state is None or state.search != self.search_id:
                return state, []
            retries = list(state.retry[:count])
            new = min(count - len(retries), state.n_trials - state.started)
            claimed: list[int | None] = [*retries, *[None] * new]
            return replace(
                state,
                retry=state.retry[len(retries) :],
                started=state.started + new,
                claims=state.claims + len(claimed),
            ), claimed

        return self._attribute.update(change)

    def fail_lost_trials(self) -> list[FrozenTrial]:
        """Mark each trial whose worker stopped sending heartbeats FAIL, with the reason, and queue its
        parameters for a retry in the study's current search: its workers wait until the search has
        nothing left to run, so one of them runs it (if they have all gone, the next worker to start
        on the study joins that search for it)."""
        database = self.database
        if database is None or not database.is_heartbeat_enabled():
            return []
        study_id = database.get_study_id_from_name(self.study.study_name)
        lost = []
        for trial_id in database._get_stale_trial_ids(study_id):
            trial = database.get_trial(trial_id)
            if not self._queue_retry(trial.number):
                continue  # another worker found it first
            try:
                database.set_trial_user_attr(trial_id, "status", "failed")
                database.set_trial_user_attr(
                    trial_id, "reason", LOST_REASON.format(grace=f"{self.grace_s:g}")
                )
                database.set_trial_user_attr(trial_id, "lost_worker", True)
                database.set_trial_state(trial_id, TrialState.FAIL)
            except RuntimeError:  # it finished meanwhile: its worker was alive after all
                self._unqueue(trial.number)
                continue
            lost.append(trial)
        return lost

    def is_finished(self, trials: list[FrozenTrial]) -> bool:
        """Whether every trial of this worker's search has finished (``trials``: the study's)."""
        state = self._attribute.read()
        if state is not None and state.search == self.search_id:
            if state.is_open:
                return False
            claims = state.claims
        elif state is not None and state.previous.get("search") == self.search_id:
            claims = state.previous["claims"]
        else:
            claims = None  # two searches opened since: the trials alone tell
        ours = [t for t in trials if t.user_attrs.get(TRIAL_SEARCH_ATTR) == self.search_id]
        if any(t.state == TrialState.RUNNING for t in ours):
            self._short_since = None
            return False
        finished = sum(t.state.is_finished() for t in ours)
        if claims is None or finished >= claims:
            return True
        # A claim with no trial: its worker died between claiming and asking, or is asking now.
        now = time.monotonic()
        self._short_since = self._short_since or now
        if now - self._short_since < self.grace_s:
            return False
        log.warning(
            f"{claims - finished} claimed trial(s) of the search never started (their worker died "
            "before asking Optuna for them); the search ends without them."
        )
        return True

    def _queue_retry(self, number: int) -> bool:
        def change(state: SearchState | None) -> tuple[SearchState | None, bool]:
            if state is None or number in state.lost:
                return state, False
            return replace(state, lost=(*state.lost, number), retry=(*state.retry, number)), True

        return self._attribute.update(change)

    def _unqueue(self, number: int) -> None:
        def change(state: SearchState | None) -> tuple[SearchState | None, None]:
            if state is None or number not in state.retry:
                return state, None
            return replace(state, retry=tuple(n for n in state.retry if n != number)), None

        self._attribute.update(change)


def retry_sampler(lost: FrozenTrial, base: Any) -> optuna.samplers.BaseSampler:
    """A sampler that proposes the lost trial's parameters (and ``base``'s for any other)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.PartialFixedSampler(dict(lost.params), base)


@contextlib.contextmanager
def heartbeats(database: RDBStorage | None, trial_ids: list[int], interval_s: float) -> Iterator[None]:
    """Record a heartbeat for each of ``trial_ids`` now and every ``interval_s`` until the block ends."""
    if database is None or not database.is_heartbeat_enabled() or not trial_ids:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        for trial_id in trial_ids:
            try:
                database.record_heartbeat(trial_id)
            except Exception as error:  # a database busy for a moment: the next beat tries again
                log.debug(f"heartbeat of trial id {trial_id}: {error}")

    def beat_until_stopped() -> None:
        while not stop.wait(interval_s):
            beat()

    beat()
    thread = threading.Thread(target=beat_until_stopped, name="aetrain-optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval_s + 5)


# --- compare-and-swap of one study user attribute ---------------------------------------------------


class _Attribute:
    """The study's search state, read and swapped whole."""

    def read(self) -> SearchState | None:
        return self._read()[1]

    def update(self, change: Callable[[SearchState | None], tuple[SearchState | None, T]]) -> T:
        """Apply ``change`` (state -> (new state, result)) until no other worker swapped in between."""
        while True:
            token, state = self._read()
            new, result = change(state)
            if new is None or new == state or self._swap(token, new):
                return result

    def _read(self) -> tuple[Any, SearchState | None]:
        raise NotImplementedError

    def _swap(self, token: Any, new: SearchState) -> bool:
        raise NotImplementedError


class _DatabaseAttribute(_Attribute):
    """In the database: the row's JSON text is the token; the UPDATE applies only while it holds."""

    def __init__(self, database: RDBStorage, study_name: str) -> None:
        from optuna.storages._rdb.models import StudyUserAttributeModel

        self.engine = database.engine
        self.study_id = database.get_study_id_from_name(study_name)
        self.table = StudyUserAttributeModel.__table__

    def _read(self) -> tuple[str | None, SearchState | None]:
        from sqlalchemy import select

        table = self.table
        query = select(table.c.value_json).where(
            table.c.study_id == self.study_id, table.c.key == SEARCH_ATTR
        )
        with self.engine.connect() as connection:
            text = connection.execute(query).scalar_one_or_none()
        return text, SearchState.from_json(json.loads(text)) if text is not None else None

    def _swap(self, token: str | None, new: SearchState) -> bool:
        from sqlalchemy import insert, update
        from sqlalchemy.exc import IntegrityError

        table, text = self.table, json.dumps(new.to_json())
        try:
            with self.engine.begin() as connection:
                if token is None:  # the (study, key) pair is unique: a second insert fails
                    connection.execute(
                        insert(table).values(study_id=self.study_id, key=SEARCH_ATTR, value_json=text)
                    )
                    return True
                where = (
                    table.c.study_id == self.study_id,
                    table.c.key == SEARCH_ATTR,
                    table.c.value_json == token,
                )
                return connection.execute(update(table).where(*where).values(value_json=text)).rowcount == 1
        except IntegrityError:
            return False


class _MemoryAttribute(_Attribute):
    """A study held in memory has one worker, this process: a plain read and write."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    def _read(self) -> tuple[Any, SearchState | None]:
        value = self.study.user_attrs.get(SEARCH_ATTR)
        return value, SearchState.from_json(value) if value is not None else None

    def _swap(self, token: Any, new: SearchState) -> bool:
        self.study.set_user_attr(SEARCH_ATTR, new.to_json())
        return True
