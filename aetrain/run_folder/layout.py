"""Every path inside a run folder (and a sweep folder), named once.

Other modules join these names to a folder (``output_dir / layout.METRICS``) and never spell a file
name themselves, so what a run leaves is listed here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path, PurePath

# What training writes into its run folder.
METRICS = "metrics.json"  # status, history, test metrics: the run's record, rewritten every epoch
MANIFEST = "manifest.json"  # what made the run: versions, command line, git commit, data files
LOG = "aetrain.log"  # Hydra's job log
HYDRA = ".hydra"  # Hydra's composed config, hydra.yaml and overrides.yaml
OVERRIDES = Path(HYDRA) / "overrides.yaml"
CHECKPOINTS = "checkpoints"
BEST_CHECKPOINT = Path(CHECKPOINTS) / "best.keras"  # lowest validation loss so far
LAST_CHECKPOINT = Path(CHECKPOINTS) / "last.keras"  # end of the last whole epoch, what resume reads
RECONSTRUCTIONS_PNG = "reconstructions.png"
RECONSTRUCTIONS_NPZ = "reconstructions.npz"  # the same images as arrays, for aetrain-report
LOSS_PNG = "loss.png"
SAMPLES_PNG = "samples.png"  # VAEs: decoded prior samples
# Loggers' defaults.
HISTORY_CSV = "history.csv"  # logger=csv
TENSORBOARD = "tensorboard"  # logger=tensorboard
MLFLOW_RUN_RECORD = "mlflow_run.json"  # logger=mlflow: the MLflow run a resumed run continues
# Process bookkeeping.
LOCK = ".aetrain.lock"  # one process at a time in a run folder
LOCK_HOLDER = ".aetrain.lock.holder"  # who holds it: PID, host, command
# Any of these makes a folder a run folder (one that a new run must not take over).
RUN_MARKERS = (METRICS, CHECKPOINTS, HYDRA)

# What the companion commands write (into the run folder, or --out).
EVAL = "eval.json"  # aetrain-evaluate
DENOISING_CURVE_PNG = "denoising_curve.png"
SPARSITY_PNG = "sparsity.png"
INTERPOLATION_PNG = "interpolation.png"  # aetrain-generate (and SAMPLES_PNG)
MANIFOLD_PNG = "manifold.png"
CODINGS_PCA_PNG = "codings_pca.png"  # aetrain-look
CODINGS_TSNE_PNG = "codings_tsne.png"
DENOISING_PNG = "denoising.png"
EXPORT = "export"  # aetrain-export's default folder

# A sweep folder: its record, its stop request, the Optuna search's results, aetrain-report's outputs.
SWEEP_RECORD = "sweep.json"
STOP_REQUEST = ".aetrain-stop"
OPTIMIZATION_RESULTS = "optimization_results.yaml"
REPORT_CSV = "report.csv"
REPORT_PNG = "report.png"

#: What aetrain and Hydra write in a run folder under their own names: a setting that names a file
#: (a logger's filename or log_dir) may not take one of these (nor lie below one).
OWN_NAMES = (
    METRICS,
    MANIFEST,
    LOG,
    HYDRA,
    CHECKPOINTS,
    RECONSTRUCTIONS_PNG,
    RECONSTRUCTIONS_NPZ,
    LOSS_PNG,
    SAMPLES_PNG,
    MLFLOW_RUN_RECORD,
    LOCK,
    LOCK_HOLDER,
    EVAL,
    DENOISING_CURVE_PNG,
    SPARSITY_PNG,
    INTERPOLATION_PNG,
    MANIFOLD_PNG,
    CODINGS_PCA_PNG,
    CODINGS_TSNE_PNG,
    DENOISING_PNG,
    EXPORT,
)
#: Files written in place (opened for writing or appending, not renamed over), by Hydra and its log:
#: a symlink among them would make a run write through it into whatever it points at.
WRITTEN_IN_PLACE = (
    HYDRA,
    str(Path(HYDRA) / "config.yaml"),
    str(Path(HYDRA) / "hydra.yaml"),
    str(OVERRIDES),
    LOG,
)


def user_path_problem(value: str) -> str | None:
    """Why ``value`` may not name a file a run writes, or None: it must be a relative path that stays
    inside the run folder and is not (nor lies below) one of :data:`OWN_NAMES`."""
    path = PurePath(value)
    if not value or path.is_absolute() or value.startswith("~"):
        return "it must be a path relative to the run folder (the run's own files stay in it)"
    if ".." in path.parts:
        return "`..` would lead out of the run folder, where the run's own files stay"
    if not path.parts or path.parts[0] in (".",):
        return "it names the run folder itself, not a file in it"
    if path.parts[0] in OWN_NAMES:
        return f"{path.parts[0]} is one of aetrain's own files or folders in a run"
    return None
