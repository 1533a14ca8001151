"""aetrain's Hydra launchers, where Hydra looks for plugins (it takes only classes defined under
``hydra_plugins``). The code is in aetrain.sweeps.control, aetrain.sweeps.launchers and
aetrain.sweeps.slurm; the names are those conf/hydra/launcher/*.yaml give as ``_target_``."""

from aetrain.sweeps import control as sweep_control


class SequentialLauncher(sweep_control.SequentialLauncher):
    """``hydra/launcher=basic``, the default: one job after another in aetrain's own process."""


try:  # the joblib and submitit plugins: pip install 'aetrain[sweeps]'
    from aetrain.sweeps import launchers as sweep_launchers
    from aetrain.sweeps import slurm as sweep_slurm
except ImportError:
    pass
else:

    class ParallelLauncher(sweep_launchers.ParallelLauncher):
        """``hydra/launcher=parallel``: n_jobs jobs at once, each in a fresh process."""

    class SubmititLocalLauncher(sweep_launchers.SubmititLocalLauncher):
        """``hydra/launcher=submitit_local``: submitit's local executor."""

    class SlurmLauncher(sweep_slurm.SlurmLauncher):
        """``hydra/launcher=slurm``: one SLURM job per sweep job."""
