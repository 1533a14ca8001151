"""The loggers through the real ``aetrain`` command on tiny data, read back through their own
libraries: history.csv with the csv module, TensorBoard's event files with its EventAccumulator,
MLflow's store with ``MlflowClient``."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from aetrain.config import ConfigError, validate
from aetrain.run_folder.resume import SavedRun, check_resumable
from aetrain.training.loggers import LoggedRun, Logger, LoggerSession, RunLoggers
from aetrain.training.loggers.csv_history import history_csv

from cli_runs import AETRAIN, aetrain, environment, smoke_args
from conftest import compose_config

ALL_LOGGERS = "logger=[csv,tensorboard,mlflow]"


def read_history_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def tensorboard_scalars(folder: Path, tag: str) -> dict[int, float]:
    """step -> value of a Keras TensorBoard scalar (stored as a tensor summary)."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {event.step: float(tf.make_ndarray(event.tensor_proto)) for event in events.Tensors(tag)}


def mlflow_client(cwd: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{cwd / 'mlflow.db'}")


def artifact_paths(client, run_id: str, folder: str | None = None) -> set[str]:
    paths = set()
    for entry in client.list_artifacts(run_id, folder):
        paths |= artifact_paths(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return paths


def test_history_csv_holds_every_epoch_in_order():
    history = {"val_loss": [0.5, 0.25], "loss": [0.75, 0.5], "learning_rate": [0.01, 0.005]}
    rows = list(csv.DictReader(history_csv(history).splitlines()))
    assert list(rows[0]) == ["epoch", "learning_rate", "loss", "val_loss"]
    assert [(r["epoch"], float(r["loss"]), float(r["val_loss"])) for r in rows] == [
        ("1", 0.75, 0.5),
        ("2", 0.5, 0.25),
    ]


def test_default_logger_is_csv_and_a_list_selects_several():
    assert set(validate(compose_config()).logger) == {"csv"}
    both = validate(compose_config("logger=[csv,mlflow]", "logger.mlflow.experiment_name=x"))
    assert set(both.logger) == {"csv", "mlflow"} and both.logger["mlflow"].experiment_name == "x"
    assert validate(compose_config("logger=[]")).logger == {}


def test_loggers_may_change_when_a_run_is_resumed_even_one_saved_before_they_were_a_group():
    saved = validate(compose_config("trainer.epochs=3")).to_dict()
    del saved["logger"]
    saved["trainer"]["tensorboard"] = True  # a checkpoint of the release before loggers
    old_run = SavedRun(folder=Path("run"), epoch=1, config=saved)
    check_resumable(validate(compose_config("trainer.epochs=3", "logger=[tensorboard,mlflow]")), old_run)
    with pytest.raises(ConfigError, match="latent_size"):  # the model's settings still may not
        check_resumable(validate(compose_config("trainer.epochs=3", "latent_size=8")), old_run)


@pytest.mark.parametrize("store", ["nosuchscheme://x", "folder"], ids=["unknown scheme", "a folder"])
def test_an_unknown_tracking_store_is_refused_naming_the_key(tmp_path, monkeypatch, store):
    """MLflow 3 refuses a folder store unless MLFLOW_ALLOW_FILE_STORE=true: the message says so and
    offers only stores it opens."""
    from aetrain.training.loggers.mlflow_tracking import MlflowTracking

    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    uri = store if "://" in store else (tmp_path / store).as_uri()
    tracking = MlflowTracking(tracking_uri=uri)
    with pytest.raises(ConfigError, match=r"`logger.mlflow.tracking_uri`") as refused:
        tracking.start(LoggedRun({}, tmp_path, {}, resumed=False))
    message = str(refused.value)
    assert uri in message and "sqlite:///FILE.db" in message
    assert "a folder only with MLFLOW_ALLOW_FILE_STORE=true" in message


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("csv.filename", "checkpoints/best.keras"),
        ("csv.filename", "metrics.json"),
        ("csv.filename", "../../x.csv"),
        ("csv.filename", "/tmp/x.csv"),
        ("csv.filename", "'~/x.csv'"),
        ("csv.filename", ".hydra/config.yaml"),
        ("csv.filename", "aetrain.log"),
        ("csv.filename", "."),
        ("csv.filename", "logs/../../x.csv"),
        ("tensorboard.log_dir", "checkpoints"),
        ("tensorboard.log_dir", "../elsewhere"),
        ("tensorboard.log_dir", "export/tb"),
    ],
)
def test_a_logger_path_outside_the_run_folder_or_on_aetrains_files_is_refused(setting, value):
    logger = setting.split(".")[0]
    with pytest.raises(ConfigError) as refused:
        validate(compose_config(f"logger=[{logger}]", f"logger.{setting}={value}"))
    assert refused.value.key == f"logger.{setting}"


@pytest.mark.parametrize(
    ("setting", "value"), [("csv.filename", "logs/history.csv"), ("tensorboard.log_dir", "tb")]
)
def test_a_logger_path_inside_the_run_folder_is_taken(setting, value):
    logger = setting.split(".")[0]
    run = validate(compose_config(f"logger=[{logger}]", f"logger.{setting}={value}"))
    assert getattr(run.logger[logger], setting.split(".")[1]) == value


@pytest.mark.slow
def test_a_diverged_run_is_failed_in_mlflow_and_no_logger_has_the_cut_epoch(make_config, tmp_path):
    from mlflow import MlflowClient
    from rich.console import Console

    from aetrain.training import loop as train

    cfg = make_config(
        "variant.output_activation=linear",
        "trainer.learning_rate=1e12",
        "trainer.schedule=constant",
        "trainer.optimizer=sgd",
        "trainer.epochs=3",
        "logger=[csv,mlflow]",
        f"logger.mlflow.tracking_uri=sqlite:///{tmp_path}/m.db",
    )
    with pytest.raises(train.TrainingDiverged):
        train.run(cfg, tmp_path / "run", Console(file=io.StringIO()))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    done = metrics["epochs_completed"]
    assert done < 3
    csv_rows = read_history_csv(tmp_path / "run" / "history.csv") if done else []
    assert len(csv_rows) == done
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/m.db")
    run = client.get_run(json.loads((tmp_path / "run" / "mlflow_run.json").read_text())["run_id"])
    assert run.info.status == "FAILED"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == done
    assert "metrics.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_a_logger_failing_at_the_run_end_is_reported_not_fatal(caplog, tmp_path):
    class ServerGone(LoggerSession):
        def finish(self, metrics):
            raise ConnectionError("server gone")

    @dataclasses.dataclass
    class Flaky(Logger):
        def start(self, run):
            return ServerGone()

    loggers = RunLoggers({"flaky": Flaky()}, LoggedRun({}, tmp_path, {}, resumed=False))
    metrics = {"status": "completed"}
    with caplog.at_level("WARNING", logger="aetrain"):
        loggers.finish(metrics)
    assert "logger flaky failed at the run's end: ConnectionError: server gone" in caplog.text
    loggers.record(metrics)
    assert metrics["loggers"] == {
        "flaky": {"status": "failed", "reason": "at the run's end: ConnectionError: server gone"}
    }
    assert metrics["warnings"] == [
        "logger flaky failed and was turned off (at the run's end: ConnectionError: server gone); its "
        "record of this run is incomplete"
    ]


@dataclasses.dataclass
class Saboteur(Logger):
    """A logger that, at the end of epoch 1, wrecks the SQLite file of the MLflow store in place (the
    MLflow client keeps it open), as a disk or an admin would: the MLflow logger fails from then on."""

    store: str = ""

    def start(self, run):
        store = Path(self.store)

        class Wreck(LoggerSession):
            def log_epoch(self, epoch, figures):
                if epoch == 1:
                    with open(store, "r+b") as handle:
                        handle.write(b"not a database any more" * 4096)

        return Wreck()


def test_a_logger_that_fails_mid_run_is_turned_off_and_recorded_and_the_run_completes(make_config, tmp_path):
    from rich.console import Console

    from aetrain.training import loop as train

    store = tmp_path / "m.db"
    cfg = make_config(
        "trainer.epochs=2", "logger=[csv,mlflow]", f"logger.mlflow.tracking_uri=sqlite:///{store}"
    )
    cfg.logger = {"saboteur": Saboteur(str(store)), **cfg.logger}
    run = tmp_path / "run"
    train.run(cfg, run, Console(file=io.StringIO()))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["history"]["loss"]) == 2
    assert metrics["loggers"]["csv"] == {"status": "ok"} and metrics["loggers"]["saboteur"] == {
        "status": "ok"
    }
    assert metrics["loggers"]["mlflow"]["status"] == "failed"
    assert metrics["loggers"]["mlflow"]["reason"].startswith("at epoch 1: ")
    assert any(line.startswith("logger mlflow failed") for line in metrics["warnings"])
    assert len(read_history_csv(run / "history.csv")) == 2  # the other loggers went on
    assert (run / "checkpoints" / "best.keras").is_file() and (run / "checkpoints" / "last.keras").is_file()


@pytest.fixture(scope="module")
def logged_run(tiny_data_dir, tmp_path_factory):
    """One epoch with every logger, then resumed for a second: (cwd, run folder, metrics.json)."""
    cwd = tmp_path_factory.mktemp("logged")
    run = cwd / "run"
    args = smoke_args(tiny_data_dir, ALL_LOGGERS, "trainer.batch_size=32")
    first = aetrain(*args, f"hydra.run.dir={run}", cwd=cwd)
    assert first.returncode == 0, first.stdout + first.stderr
    assert len(read_history_csv(run / "history.csv")) == 1
    resumed = aetrain(*args, "trainer.epochs=2", f"trainer.resume={run}", cwd=cwd)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    return cwd, run, json.loads((run / "metrics.json").read_text())


@pytest.mark.slow
def test_csv_logger_writes_every_epoch_and_resume_continues_it(logged_run):
    _, run, metrics = logged_run
    rows = read_history_csv(run / "history.csv")
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert set(rows[0]) == {"epoch", *metrics["history"]}
    for key in ("loss", "val_loss"):
        assert [float(row[key]) for row in rows] == metrics["history"][key]


@pytest.mark.slow
def test_tensorboard_logger_writes_loss_per_epoch(logged_run):
    _, run, metrics = logged_run
    train = tensorboard_scalars(run / "tensorboard" / "train", "epoch_loss")
    validation = tensorboard_scalars(run / "tensorboard" / "validation", "epoch_loss")
    assert sorted(train) == sorted(validation) == [0, 1]  # Keras counts epochs from 0
    assert [train[0], train[1]] == pytest.approx(metrics["history"]["loss"], rel=1e-6)
    assert [validation[0], validation[1]] == pytest.approx(metrics["history"]["val_loss"], rel=1e-6)


@pytest.mark.slow
def test_mlflow_logger_records_params_metrics_and_artifacts_in_one_run(logged_run):
    cwd, run, metrics = logged_run
    client = mlflow_client(cwd)
    experiment = client.get_experiment_by_name("aetrain")
    (found,) = client.search_runs([experiment.experiment_id])  # the resumed run continued it
    run_id = found.info.run_id
    assert json.loads((run / "mlflow_run.json").read_text())["run_id"] == run_id
    assert found.info.status == "FINISHED"
    params = found.data.params
    assert params["variant.name"] == "dense" and params["trainer.batch_size"] == "32"
    assert params["data.limit"] == "256" and params["logger.csv.filename"] == "history.csv"
    for key in ("loss", "val_loss"):
        history = client.get_metric_history(run_id, key)
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == pytest.approx(metrics["history"][key], rel=1e-9)
    assert found.data.metrics["test/mse"] == pytest.approx(metrics["test"]["mse"])
    assert artifact_paths(client, run_id) == {
        "reconstructions.png",
        "loss.png",
        "metrics.json",
        "history.csv",
        "checkpoints/best.keras",
    }


@pytest.mark.slow
def test_a_sweep_logs_each_job_as_a_run_of_one_experiment(tiny_data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    args = smoke_args(tiny_data_dir, "logger=mlflow", "logger.mlflow.experiment_name=s", "latent_size=4,8")
    result = aetrain("-m", *args, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    client = mlflow_client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("s").experiment_id])
    assert sorted(r.data.params["latent_size"] for r in runs) == ["4", "8"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["aetrain.run_folder"] for r in runs} == {str(sweep / "0"), str(sweep / "1")}


EPOCH_FILE_LOGGER = """
import json
from dataclasses import dataclass

from aetrain.training.loggers import Logger, LoggerSession


@dataclass
class EpochLines(Logger):
    filename: str = "epochs.jsonl"

    def start(self, run):
        return Session(run.output_dir / self.filename)


class Session(LoggerSession):
    def __init__(self, path):
        self.path = path

    def log_epoch(self, epoch, figures):
        with self.path.open("a") as file:
            file.write(json.dumps({"epoch": epoch, **figures}) + "\\n")

    def finish(self, metrics):
        with self.path.open("a") as file:
            file.write(json.dumps({"status": metrics["status"], "test_mse": metrics["test"]["mse"]}) + "\\n")
"""


@pytest.mark.slow
def test_a_new_logger_is_one_yaml_file_and_one_module(tiny_data_dir, tmp_path):
    """Declared here, outside aetrain: conf/logger/epoch_lines.yaml on Hydra's search path and its
    module on PYTHONPATH; nothing in aetrain lists it."""
    (tmp_path / "conf" / "logger").mkdir(parents=True)
    (tmp_path / "conf" / "logger" / "epoch_lines.yaml").write_text(
        "epoch_lines:\n  _target_: epoch_lines_logger.EpochLines\n  filename: lines.jsonl\n"
    )
    (tmp_path / "epoch_lines_logger.py").write_text(EPOCH_FILE_LOGGER)
    cwd = tmp_path / "work"
    cwd.mkdir()
    result = subprocess.run(
        [
            AETRAIN,
            *smoke_args(tiny_data_dir, "logger=[csv,epoch_lines]", "trainer.epochs=2"),
            f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
            f"hydra.run.dir={cwd / 'run'}",
        ],
        cwd=cwd,
        env=environment(cwd, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in (cwd / "run" / "lines.jsonl").read_text().splitlines()]
    metrics = json.loads((cwd / "run" / "metrics.json").read_text())
    assert [line["loss"] for line in lines[:2]] == metrics["history"]["loss"]
    assert lines[2] == {"status": "completed", "test_mse": metrics["test"]["mse"]}
    assert len(read_history_csv(cwd / "run" / "history.csv")) == 2


def test_a_relative_sqlite_store_is_made_absolute_from_the_folder_the_run_started_in(tmp_path, monkeypatch):
    from aetrain.training.loggers.mlflow_tracking import absolute_store

    monkeypatch.chdir(tmp_path)
    assert absolute_store("sqlite:///mlflow.db") == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert absolute_store("sqlite:///runs/m.db") == f"sqlite:///{tmp_path / 'runs' / 'm.db'}"
    for kept in ("sqlite:////srv/m.db", "http://localhost:5000", "file:///srv/mlruns", "sqlite:///:memory:"):
        assert absolute_store(kept) == kept


def test_a_loggers_own_keras_callback_that_fails_is_turned_off_not_fatal():
    import keras

    from aetrain.training.callbacks import ContainedCallback

    class Broken(keras.callbacks.Callback):
        calls = 0

        def on_epoch_end(self, epoch, logs=None):
            Broken.calls += 1
            raise OSError("No space left on device")

    failures = []
    contained = ContainedCallback(Broken(), lambda when, error: failures.append((when, str(error))))
    for epoch in range(3):
        contained.on_epoch_begin(epoch)
        contained.on_epoch_end(epoch, {"loss": 1.0})
    assert failures == [("on_epoch_end of epoch 1", "No space left on device")] and Broken.calls == 1
