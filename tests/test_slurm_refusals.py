"""Bad input for ``hydra/launcher=slurm``: a request the cluster refuses is exit 2 with SLURM's own
message and no sweep folder left; a cluster that cannot be reached, or no SLURM here at all, is
exit 5. Nothing trains: each command ends before any job is submitted."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from slurm.cluster import LAUNCHER, REQUIRED, require_cluster

from cli_runs import AETRAIN, environment, plain_text


def sweep_command(tmp_path: Path, *overrides: str, **env: str) -> subprocess.CompletedProcess:
    """``aetrain -m`` on the cluster, in ``tmp_path`` (its sweep folder: multirun/DATE/TIME there)."""
    return subprocess.run(
        [AETRAIN, "-m", *LAUNCHER, *overrides, "trainer=smoke", "seed=1,2"],
        cwd=tmp_path,
        env={**environment(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.slurm
@pytest.mark.parametrize(
    ("override", "said"),
    [
        ("hydra.launcher.partition=nosuch", "Invalid partition name specified"),
        ("hydra.launcher.cpus_per_task=4096", "Requested node configuration is not available"),
        ("hydra.launcher.mem_gb=100000", "Requested node configuration is not available"),
    ],
)
def test_a_request_the_cluster_refuses_is_exit_2_with_its_message_and_no_sweep_folder(
    tmp_path, override, said
):
    require_cluster()
    result = sweep_command(tmp_path, override)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    text = plain_text(result.stdout)
    assert "SLURM refuses the sweep's jobs: " in text and said in text  # the scheduler's own words
    assert override.removeprefix("hydra.launcher.") in text  # what was asked, by its hydra.launcher name
    assert "Nothing was submitted." in text and "Traceback" not in result.stderr
    if "partition" not in override:
        assert "the nodes of partition debug have" in text  # what the partition offers
    assert not (tmp_path / "multirun").exists()  # no half-made sweep folder, nothing submitted from it


@pytest.mark.slurm
def test_a_slurm_controller_that_cannot_be_reached_is_exit_5(tmp_path):
    """sbatch with a slurm.conf whose controller listens nowhere (as when slurmctld is down)."""
    if shutil.which("sbatch") is None:
        message = "no SLURM client commands (sbatch); `sudo tests/slurm/start-cluster.sh` installs them"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=nowhere\n"
        f"SlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={unused_port()}\nMessageTimeout=2\n"
        "AuthType=auth/none\nCredType=cred/none\n"
        "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=localhost Default=YES\n"
    )
    result = sweep_command(tmp_path, SLURM_CONF=str(conf))
    assert result.returncode == 5, result.stdout[-3000:] + result.stderr[-3000:]
    text = plain_text(result.stdout)
    assert "The SLURM cluster cannot be reached: " in text and "Unable to contact slurm controller" in text
    assert "scontrol ping" in text and "Nothing was submitted." in text
    assert not (tmp_path / "multirun").exists()


def test_no_sbatch_on_this_machine_is_exit_5_naming_it(tmp_path):
    venv_only = str(Path(sys.executable).parent)  # aetrain's scripts, and no SLURM command
    result = sweep_command(tmp_path, PATH=venv_only)
    assert result.returncode == 5, result.stdout[-3000:] + result.stderr[-3000:]
    text = plain_text(result.stdout)
    assert "SLURM's sbatch, which is not on this machine's PATH" in text
    assert "hydra/launcher=submitit_local" in text
    assert not (tmp_path / "multirun").exists()


def unused_port() -> int:
    """A TCP port nothing listens on (the kernel's pick of a free one)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
