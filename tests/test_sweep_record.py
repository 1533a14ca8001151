"""sweep.json and the sweep's stop request, without running a sweep."""

from __future__ import annotations

import json
import shlex
import signal
import sys

from hydra.core.override_parser.overrides_parser import OverridesParser

from aetrain.run_folder.claim import holds_run
from aetrain.sweeps.control import RESUME_SWITCH, continue_command
from aetrain.sweeps.record import SweepJob, SweepRecord
from aetrain.training.stop_request import StopRequest, read_stop_request, request_stop


def test_sweep_json_keeps_the_schema_aetrain_report_reads(tmp_path):
    record = SweepRecord(tmp_path, "interrupted", "SIGTERM")
    record.jobs[1] = SweepJob(1, ["seed=2"], "1", "never_started")
    record.jobs[0] = SweepJob(0, ["seed=1"], "0", "interrupted", "SIGTERM during epoch 3")
    record.write()
    raw = json.loads((tmp_path / "sweep.json").read_text())
    assert raw["status"] == "interrupted" and raw["signal"] == "SIGTERM"
    assert [job["num"] for job in raw["jobs"]] == [0, 1]
    assert raw["jobs"][0] == {
        "num": 0,
        "overrides": ["seed=1"],
        "dir": "0",
        "status": "interrupted",
        "reason": "SIGTERM during epoch 3",
        "lost_worker": False,
    }
    assert SweepRecord.read(tmp_path) == record
    (tmp_path / "sweep.json").write_text("{not json")
    assert SweepRecord.read(tmp_path) is None


def test_a_job_obeys_the_sweeps_stop_request_and_keeps_the_first_signal(tmp_path):
    stop = StopRequest(tmp_path)
    assert not stop.requested
    request_stop(tmp_path, signal.SIGTERM)
    request_stop(tmp_path, signal.SIGINT, abort=True)  # a second signal: abort, same name
    assert read_stop_request(tmp_path) == {"signal": "SIGTERM", "abort": True}
    assert stop.requested and stop.signal_name == "SIGTERM" and stop.exit_code == 143


def test_a_folder_holds_a_run_when_it_has_metrics_checkpoints_or_hydra(tmp_path):
    assert not holds_run(tmp_path)
    (tmp_path / ".hydra").mkdir()
    assert holds_run(tmp_path)


def test_the_continue_line_pastes_as_the_same_folder_through_shell_and_hydra(tmp_path, monkeypatch):
    """A folder with a space, a comma and a quote: the shell gives Hydra one word, Hydra one path."""
    folder = tmp_path / "my sweep, v2 'best'"
    monkeypatch.setattr(sys, "argv", ["aetrain", "-m", "latent_size=8,16", f"hydra.sweep.dir={folder}"])
    words = shlex.split(continue_command(folder))
    assert words[:3] == ["aetrain", "-m", "latent_size=8,16"] and words[-1] == RESUME_SWITCH
    parsed = OverridesParser.create().parse_overrides(words[3:])
    assert [(o.key_or_group, o.value()) for o in parsed[:1]] == [("hydra.sweep.dir", str(folder))]
