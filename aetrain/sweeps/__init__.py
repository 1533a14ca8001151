"""Multirun sweeps: the sweep folder's record and control, the launchers and their workers, Optuna."""
