"""How many TensorFlow threads one job of a sweep gets, from the launcher that runs it."""

from __future__ import annotations

import os

import pytest

from aetrain.runtime import available_cores, threads_per_job


@pytest.mark.parametrize(
    ("launcher", "cores", "expected"),
    [
        ({"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}, 16, None),
        ({"n_jobs": 4}, 16, 4),
        ({"n_jobs": 3}, 16, 5),  # 3 jobs x 5 threads <= 16 cores
        ({"n_jobs": 4}, 2, 1),  # more jobs than cores: one thread each, never zero
        ({"n_jobs": -1}, 16, 1),  # joblib's -1: one job per core
        ({"n_jobs": -2}, 16, 1),  # all cores but one: 15 jobs
        ({"n_jobs": -9}, 16, 2),  # 8 jobs
        ({"cpus_per_task": 8, "tasks_per_node": 1}, 64, 8),  # submitit: what SLURM grants
        ({"cpus_per_task": None, "tasks_per_node": 1}, 64, None),
    ],
)
def test_threads_per_job_shares_the_cores_between_jobs_at_once(launcher, cores, expected):
    assert threads_per_job(launcher, cores) == expected


def test_available_cores_counts_the_cores_this_process_may_use():
    assert 1 <= available_cores() <= os.cpu_count()
