"""A console script ends its process when its command is done: with the command's exit status, after
the exit handlers libraries registered and with every log line written, but without the interpreter's
teardown; where work is still running (a thread) or the command raised, the interpreter ends it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = '''
import atexit, logging, sys, threading, time
from pathlib import Path

OUT = Path(sys.argv[1])
logging.basicConfig(filename=OUT / "command.log", level=logging.INFO)


class Teardown:
    """Written when the interpreter frees this module's objects, at its teardown."""

    def __del__(self):
        (OUT / "teardown").write_text("freed")


left_for_teardown = Teardown()


def returns_three():
    atexit.register(lambda: (OUT / "atexit").write_text("ran"))
    logging.getLogger("command").info("done")
    print("printed, not yet flushed", end="")
    return 3


def exits_with_a_message():
    sys.exit("no such run folder")


def exits_with_none():
    sys.exit(None)


def raises():
    raise RuntimeError("a bug")


def leaves_a_thread_writing():
    def write_later():
        time.sleep(0.5)
        (OUT / "thread").write_text("written")

    threading.Thread(target=write_later).start()
'''


def _run_script(function: str, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "commands.py").write_text(COMMANDS)
    code = (
        f"from aetrain.commands.process_exit import console_script; console_script('commands:{function}')()"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_finished_command_ends_its_process_at_once_with_its_status_and_its_output_written(tmp_path):
    done = _run_script("returns_three", tmp_path)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "printed, not yet flushed"
    assert "INFO:command:done" in (tmp_path / "command.log").read_text()  # logging's handler flushed
    assert (tmp_path / "atexit").read_text() == "ran"
    assert not (tmp_path / "teardown").exists()  # the interpreter's teardown was skipped


@pytest.mark.parametrize(
    ("function", "status", "stderr"),
    [("exits_with_a_message", 1, "no such run folder\n"), ("exits_with_none", 0, "")],
)
def test_sys_exit_in_a_command_gives_the_status_a_process_would(function, status, stderr, tmp_path):
    done = _run_script(function, tmp_path)
    assert (done.returncode, done.stderr) == (status, stderr)
    assert not (tmp_path / "teardown").exists()


def test_a_thread_still_running_is_waited_for_as_the_interpreter_does(tmp_path):
    done = _run_script("leaves_a_thread_writing", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "thread").read_text() == "written"
    assert (tmp_path / "teardown").read_text() == "freed"  # the interpreter's own exit


def test_a_command_that_raises_ends_as_python_does_with_its_traceback(tmp_path):
    done = _run_script("raises", tmp_path)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError: a bug" in done.stderr
