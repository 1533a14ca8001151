"""Process-level figures: the age of the process, which the start-up time in metrics.json relies on."""

from __future__ import annotations

import subprocess
import sys


def test_seconds_since_process_start_counts_from_the_process_start():
    code = (
        "import time; time.sleep(0.6); from aetrain.runtime import seconds_since_process_start as age; "
        "print(age())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0.6 <= float(done.stdout) < 30
