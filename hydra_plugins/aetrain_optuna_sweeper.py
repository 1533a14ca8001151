"""Hydra plugin entry for aetrain's Optuna sweeper (``hparams_search=optuna``).

Hydra instantiates sweepers only from the ``hydra_plugins`` namespace package, so this thin class
lives here; the work is in ``aetrain/sweeps/optuna_search.py``, imported only when a search starts (Hydra
imports every plugin module at each start of ``aetrain``). Its config, ``hydra/sweeper:
aetrain_optuna``, is hydra-optuna-sweeper's with the settings of workers that share a study.
"""

# No `from __future__ import annotations`: Hydra runs this module without entering it in sys.modules,
# where a dataclass with annotations as strings would look them up.
from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

try:
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
except ImportError:  # no sweeps extra: `hparams_search=optuna` says which extra to install
    OptunaSweeperConf = None

if OptunaSweeperConf is not None:

    @dataclass
    class AetrainOptunaSweeperConf(OptunaSweeperConf):
        """hydra.sweeper.*: hydra-optuna-sweeper's settings, and the heartbeat of a shared study."""

        _target_: str = "hydra_plugins.aetrain_optuna_sweeper.AetrainOptunaSweeper"
        # Seconds between the heartbeats each worker records for its running trials (stored studies).
        heartbeat_interval: int = 30
        # Seconds without a heartbeat after which a trial counts as lost and runs again (null: twice
        # the interval).
        grace_period: Optional[int] = None  # noqa: UP045 (OmegaConf reads Optional)

    ConfigStore.instance().store(
        group="hydra/sweeper", name="aetrain_optuna", node=AetrainOptunaSweeperConf, provider="aetrain"
    )


class AetrainOptunaSweeper(Sweeper):
    """Takes hydra-optuna-sweeper's settings (hydra.sweeper.*) unchanged, and the heartbeat's."""

    def __init__(self, **settings: Any) -> None:
        from aetrain.sweeps.optuna_search import AetrainOptunaSearch

        self.sweeper = AetrainOptunaSearch(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        return self.sweeper.sweep(arguments)
