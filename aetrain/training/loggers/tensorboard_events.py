"""``logger=tensorboard``: Keras's TensorBoard event files in the run folder."""

from __future__ import annotations

from dataclasses import dataclass

from aetrain.run_folder import layout
from aetrain.training.loggers import LoggedRun, Logger, LoggerSession


@dataclass
class TensorBoardEvents(Logger):
    """``RUN/<log_dir>/train`` and ``validation``: loss per epoch and the learning rate (Keras's
    ``TensorBoard`` callback). View with ``tensorboard --logdir RUN/tensorboard``."""

    log_dir: str = layout.TENSORBOARD

    def start(self, run: LoggedRun) -> LoggerSession:
        return _TensorBoardSession(str(run.output_dir / self.log_dir))


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
