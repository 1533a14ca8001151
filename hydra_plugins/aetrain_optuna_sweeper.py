"""Hydra plugin entry for aetrain's Optuna sweeper (``hparams_search=optuna``).

Hydra instantiates sweepers only from the ``hydra_plugins`` namespace package, so this thin class
lives here; the work is in ``aetrain/sweeps/optuna_search.py``, imported only when a search starts (Hydra
imports every plugin module at each start of ``aetrain``).
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class AetrainOptunaSweeper(Sweeper):
    """Takes hydra-optuna-sweeper's settings (hydra.sweeper.*) unchanged."""

    def __init__(self, **settings: Any) -> None:
        from aetrain.sweeps.optuna_search import AetrainOptunaSearch

        self.sweeper = AetrainOptunaSearch(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
