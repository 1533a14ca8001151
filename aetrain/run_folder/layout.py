"""Every path inside a run folder (and a sweep folder), named once.

Other modules join these names to a folder (``output_dir / layout.METRICS``) and never spell a file
name themselves, so what a run leaves is listed here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

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
