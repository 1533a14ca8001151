"""The ``aetrain`` command: compose the Hydra config, check it, train. Process concerns live here only.

Exit codes: 0 done, 2 a config value aetrain refuses, 3 a data problem, 4 training diverged
(Hydra's own composition errors keep Hydra's exit code 1).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything imports TensorFlow

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax

from aetrain.config import ConfigError, TrainerConfig, validate
from aetrain.runtime import available_cores, threads_per_job

log = logging.getLogger("aetrain")

EXIT_CONFIG, EXIT_DATA, EXIT_DIVERGED = 2, 3, 4


def config_dir() -> Path:
    """The configs: packaged as aetrain/conf in a wheel, the repo's top-level conf/ in a checkout."""
    packaged = Path(__file__).resolve().parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf"


# What a sweep records in a failed job's metrics.json, by exit code.
FAILURE_STATUS = {EXIT_CONFIG: "refused", EXIT_DATA: "failed", EXIT_DIVERGED: "diverged"}


class RunFailed(Exception):
    """A run that cannot go on, with the exit code it should end the process with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    console = Console(stderr=False)
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir)
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    try:
        return _train(cfg, output_dir, console, in_sweep)
    except RunFailed as failure:
        console.print(Panel(str(failure), title="aetrain: run failed", border_style="red"))
        log.error(str(failure))
        if not in_sweep:
            sys.exit(failure.exit_code)
        _record_failed_job(output_dir, FAILURE_STATUS[failure.exit_code], str(failure))
    except Exception as error:
        if not in_sweep:
            raise
        # Hydra's launchers re-raise a job's exception and end the sweep: record it, go on.
        log.exception(f"job {hydra_cfg.job.num} failed")
        _record_failed_job(output_dir, "failed", f"{type(error).__name__}: {error}")
    return None  # the sweep goes on; an Optuna sweeper counts the trial as failed


def _record_failed_job(output_dir: Path, status: str, message: str) -> None:
    from aetrain.train import record_failure

    record_failure(output_dir, status, message)


def _train(cfg: DictConfig, output_dir: Path, console: Console, in_sweep: bool) -> float:
    try:
        run_cfg = validate(cfg)
    except ConfigError as error:
        raise RunFailed(str(error), EXIT_CONFIG) from None
    if in_sweep:
        run_cfg.trainer = _share_cores(run_cfg.trainer, HydraConfig.get().launcher)
    console.print(
        Panel(
            Syntax(OmegaConf.to_yaml(run_cfg.to_dict()), "yaml", background_color="default"),
            title="aetrain: resolved config",
            subtitle=str(output_dir),
        )
    )

    from aetrain.data import DataError
    from aetrain.train import TrainingDiverged, run

    try:
        return run(run_cfg, output_dir, console)
    except DataError as error:
        raise RunFailed(str(error), EXIT_DATA) from None
    except TrainingDiverged as error:
        raise RunFailed(str(error), EXIT_DIVERGED) from None


def _share_cores(trainer: TrainerConfig, launcher: DictConfig) -> TrainerConfig:
    """Cap TF's thread pools when the launcher runs jobs side by side (unless set explicitly)."""
    cap = threads_per_job(launcher, available_cores())
    if cap is None:
        return trainer
    return dataclasses.replace(
        trainer,
        intra_op_threads=trainer.intra_op_threads or cap,
        inter_op_threads=trainer.inter_op_threads or cap,
    )


if __name__ == "__main__":
    main()
