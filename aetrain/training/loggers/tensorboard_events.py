"""``logger=tensorboard``: Keras's TensorBoard event files in the run folder."""

from __future__ import annotations

from dataclasses import dataclass

from aetrain.config import ConfigError
from aetrain.run_folder import layout
from aetrain.run_folder.atomic_files import probe_folder
from aetrain.training.loggers import LoggedRun, Logger, LoggerSession


@dataclass
class TensorBoardEvents(Logger):
    """``RUN/<log_dir>/train`` and ``validation``: loss per epoch and the learning rate (Keras's
    ``TensorBoard`` callback). View with ``tensorboard --logdir RUN/tensorboard``."""

    path_settings = ("log_dir",)

    log_dir: str = layout.TENSORBOARD

    def check(self, key: str) -> None:
        """Its event files are written by TensorFlow: refused where TensorFlow is not installed."""
        from aetrain.training.backend import installed

        super().check(key)
        if not installed("tensorflow"):
            raise ConfigError(
                "logger",
                "tensorboard",
                "csv or mlflow (or install TensorFlow: `pip install tensorflow`)",
                "TensorBoard's event files are written by TensorFlow, which is not installed here.",
            )

    def start(self, run: LoggedRun) -> LoggerSession:
        folder = run.output_dir / self.log_dir
        probe_folder(folder)  # before training: an unwritable log_dir is exit 5 naming it, not a traceback
        return _TensorBoardSession(str(folder))


class _TensorBoardSession(LoggerSession):
    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir

    def keras_callbacks(self) -> list:
        import keras

        class WholeEpochsTensorBoard(keras.callbacks.TensorBoard):
            """Keras's TensorBoard, less an epoch cut short (aetrain.training.callbacks), as every logger."""

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                if not self.model.stop_training:
                    super().on_epoch_end(epoch, logs)

        return [WholeEpochsTensorBoard(log_dir=self.log_dir)]
