"""Run the real ``aetrain`` commands (tests/test_cli.py, tests/test_sweeps.py, tests/faults/), and read
what their output says.

:func:`command` calls an installed console script's entry function in this process, with its argv,
working folder and environment, so that a run costs its work and not another TensorFlow import. It
starts a real process where a test needs one: a run that must not import TensorFlow, one that needs
its own ``PYTHONPATH``, a sweep whose launcher starts processes; and for every run when
``AETRAIN_TEST_SUBPROCESS=1``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
import zipfile
from importlib.metadata import entry_points
from pathlib import Path

from aetrain.commands import process_exit

AETRAIN = shutil.which("aetrain", path=str(Path(sys.executable).parent)) or "aetrain"
# Importing this "tensorflow" fails: a run that reports its error with it on the path did so
# before importing TensorFlow.
NO_TENSORFLOW = Path(__file__).resolve().parent / "faults" / "no_tensorflow"
# Long enough (24 batches of 8 per epoch, 12 epochs) that a signal sent after epoch 1 lands mid-run;
# traced, since so many steps take longer eagerly.
SLOW_RUN = ["trainer.batch_size=8", "trainer.epochs=12", "trainer.run_eagerly=false"]


def environment(cwd: Path, without_tensorflow: bool = False, **extra: str) -> dict[str, str]:
    env = {**os.environ, "AETRAIN_CACHE_DIR": str(cwd / "cache"), "COLUMNS": "120", **extra}
    if without_tensorflow:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(NO_TENSORFLOW), env.get("PYTHONPATH")]))
    return env


IN_PROCESS = os.environ.get("AETRAIN_TEST_SUBPROCESS") != "1"


def aetrain(
    *args: str, cwd: Path, without_tensorflow: bool = False, own_process: bool = False
) -> subprocess.CompletedProcess:
    return command("aetrain", *args, cwd=cwd, without_tensorflow=without_tensorflow, own_process=own_process)


def command(
    name: str,
    *args: str,
    cwd: Path,
    without_tensorflow: bool = False,
    own_process: bool = False,
    **extra_env: str,
) -> subprocess.CompletedProcess:
    """The installed command ``name ARGS`` run in ``cwd``: its exit code, stdout and stderr.
    ``own_process``: a real process even when this one could do (what reaches file descriptor 2)."""
    env = environment(cwd, without_tensorflow, **extra_env)
    own_process = own_process or without_tensorflow or "PYTHONPATH" in extra_env or _starts_workers(args)
    if IN_PROCESS and not own_process:
        return _run_in_this_process(name, list(args), cwd, env)
    executable = shutil.which(name, path=str(Path(sys.executable).parent)) or name
    return subprocess.run([executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _starts_workers(args: tuple[str, ...]) -> bool:
    """A sweep whose launcher starts processes (its signals and process group are its own)."""
    sweep = bool({"-m", "--multirun"} & set(args))
    launchers = [arg.partition("=")[2] for arg in args if arg.startswith("hydra/launcher=")]
    return sweep and any(launcher not in ("sequential", "basic") for launcher in launchers)


def _entry_function(name: str):
    (script,) = entry_points(group="console_scripts", name=name)
    loaded = script.load()
    if hasattr(loaded, "target"):  # aetrain.commands.process_exit.console_script: ends its process when done
        return process_exit.command(loaded.target)
    return loaded


def _run_in_this_process(name: str, args: list[str], cwd: Path, env: dict[str, str]):
    """What ``name ARGS`` does as a process, done by its entry function here: a SystemExit gives the
    exit code, and so does a returned value (both read as the console script reads them:
    aetrain.commands.process_exit.exit_status); an uncaught exception prints its traceback and gives 1."""
    entry = _entry_function(name)
    _keep_test_streams_open()
    saved_argv, saved_cwd, saved_env = sys.argv, os.getcwd(), dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [name, *args]
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                # read as the console script reads it; a message goes into err
                code = process_exit.exit_status(entry())
            except SystemExit as exit_:
                code = process_exit.exit_status(exit_.code)
            except BaseException:
                traceback.print_exc(file=err)
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        _close_run_log_files()
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


def _keep_test_streams_open() -> None:
    """absl's log handler (TensorFlow loads it) holds the stderr of its day, pytest's capture, and
    closes it when Hydra re-configures logging during a run that writes elsewhere: let it hold the
    process's own stderr, which it never closes."""
    absl_logging = sys.modules.get("absl.logging")
    if absl_logging is not None:
        absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__


def _close_run_log_files() -> None:
    """Hydra's job logging leaves the run's log file open on the root logger: close it, as an ended
    process would, so that the next run's folder checks see a closed folder."""
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            root.removeHandler(handler)


_MANY_COMMANDS = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import cli_runs
name, jobs, without_tensorflow = json.loads(Path(sys.argv[2]).read_text())
done = []
for args, cwd in jobs:
    env = cli_runs.environment(Path(cwd), without_tensorflow)
    result = cli_runs._run_in_this_process(name, args, Path(cwd), env)
    done.append([result.returncode, result.stdout, result.stderr])
Path(sys.argv[3]).write_text(json.dumps(done))
"""


def commands_in_one_process(
    name: str, jobs: list[tuple[list[str], Path]], without_tensorflow: bool = False
) -> list[subprocess.CompletedProcess]:
    """``name ARGS`` in ``cwd`` for each ``(ARGS, cwd)``, one after another in one new process: each
    command as :func:`command` runs it in this one, for command lines that need a process of their own
    (``without_tensorflow``) but not one each."""
    if not jobs:
        return []
    work = Path(jobs[0][1]).parent
    plan, answers = work / f".{name}-jobs.json", work / f".{name}-answers.json"
    plan.write_text(json.dumps([name, [[list(args), str(cwd)] for args, cwd in jobs], without_tensorflow]))
    runner = subprocess.run(
        [sys.executable, "-c", _MANY_COMMANDS, str(Path(__file__).resolve().parent), str(plan), str(answers)],
        cwd=work,
        env=environment(work, without_tensorflow),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert runner.returncode == 0, runner.stdout[-3000:] + runner.stderr[-3000:]
    return [
        subprocess.CompletedProcess([name, *args], code, out, err)
        for (args, _), (code, out, err) in zip(jobs, json.loads(answers.read_text()), strict=True)
    ]


def start_aetrain(*args: str, cwd: Path, without_tensorflow: bool = False) -> subprocess.Popen:
    return subprocess.Popen(
        [AETRAIN, *args],
        cwd=cwd,
        env=environment(cwd, without_tensorflow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def smoke_args(data_dir: Path, *overrides: str) -> list[str]:
    """A tiny, quiet run: 192 training and 64 validation images, eagerly (a few batches train in less
    time than tracing them would take; ``trainer.run_eagerly=false`` among ``overrides`` traces)."""
    return [
        "trainer=smoke",
        f"data.dir={data_dir}",
        "data.limit=256",
        "data.val_size=64",
        "trainer.progress=false",
        "trainer.run_eagerly=true",
        *overrides,
    ]


def plain_text(output: str) -> str:
    """Console output without rich's panel borders and line wrapping: one line of words."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def unwrapped(output: str) -> str:
    """Console output without whitespace and panel borders: a long path rich folded over lines, whole
    again (to look for a path, not for words)."""
    return re.sub(r"[\s│╭╮╰╯─]", "", output)


def is_whole_checkpoint(path: Path) -> bool:
    """A complete .keras zip (the central directory is written last) with aetrain's metadata."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None and "aetrain.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def partial_files(folder: Path) -> list[Path]:
    """Temp files of interrupted atomic writes (dot-prefixed ``*-partial-*``)."""
    return sorted(folder.rglob(".*-partial-*"))


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    """Poll until ``path`` exists (e.g. the first checkpoint), failing if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def start_aetrain_merged(*args: str, cwd: Path, script: str | None = None) -> subprocess.Popen:
    """``aetrain ARGS`` (or ``python -c SCRIPT ARGS``) with stdout and stderr in one text pipe, to read
    line by line with :func:`read_until`."""
    command = [sys.executable, "-c", script] if script else [AETRAIN]
    return subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=environment(cwd),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class OutputReader:
    """Reads a process's merged output line by line in a thread, so a test can wait for a line (a
    phase marker) with a timeout, then act (send a signal) at that moment."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process, self.read = process, []
        self._lines: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")  # the end

    def until(self, text: str, timeout: float = 180) -> None:
        """Wait for the first line that holds ``text``; fail if the process ends first."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            self.read.append(line)
            assert line, f"the process ended before printing {text!r}:\n{self.text}"
            if text in line:
                return

    def rest(self, timeout: float = 120) -> str:
        """Wait for the process to end; everything it printed."""
        self.process.wait(timeout=timeout)
        self._thread.join(timeout=timeout)
        while not self._lines.empty():
            self.read.append(self._lines.get())
        return self.text

    @property
    def text(self) -> str:
        return "".join(self.read)


def run_in_shell(command_line: str, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess:
    """A command line as a user pastes it: through ``bash -c``, with this venv's scripts on PATH."""
    env = environment(cwd, **extra_env)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-c", command_line], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def printed_resume_command(output: str) -> str:
    """The line after "Resume with:" in a stopped run's output (printed unwrapped, to copy)."""
    return output.split("Resume with:")[-1].strip().splitlines()[0]
