"""Checks of the ``aetrain`` command line before Hydra composes it, for mistakes Hydra would report
without saying how to fix them: an option whose plugin package is not installed (Hydra: "Could not
find 'hydra/sweeper/optuna'") and a key that has a new spelling (Hydra: "Key ... is not in struct").
"""

from __future__ import annotations

import importlib

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

SWEEPS = "sweeps"
OPTUNA = ("Hydra's Optuna sweeper", ("hydra_plugins.hydra_optuna_sweeper", "optuna"), SWEEPS)
JOBLIB = ("Hydra's joblib launcher", ("hydra_plugins.hydra_joblib_launcher", "joblib"), SWEEPS)
SUBMITIT = ("Hydra's submitit launcher", ("hydra_plugins.hydra_submitit_launcher", "submitit"), SWEEPS)

# (config group, option) -> (what it is, the modules it imports, the aetrain extra that installs them)
PLUGIN_OPTIONS = {
    ("hparams_search", "optuna"): OPTUNA,
    ("hydra/sweeper", "optuna"): OPTUNA,
    ("hydra/launcher", "parallel"): JOBLIB,
    ("hydra/launcher", "joblib"): JOBLIB,
    ("hydra/launcher", "slurm"): SUBMITIT,
    ("hydra/launcher", "submitit_slurm"): SUBMITIT,
    ("hydra/launcher", "submitit_local"): SUBMITIT,
}

# key -> its new spelling
RETIRED_KEYS = {
    "trainer.tensorboard": "`logger=tensorboard` (`logger=[csv,tensorboard]` keeps history.csv too)",
}


def command_line_refusal(arguments: list[str]) -> str | None:
    """Why ``aetrain ARGUMENTS`` cannot run, as one paragraph, or None (Hydra checks the rest)."""
    parser = OverridesParser.create()
    for argument in arguments:
        if argument.startswith("-") or "=" not in argument:
            continue  # flags (-m, --cfg job) and their values
        try:
            (override,) = parser.parse_overrides([argument])
        except HydraException:
            continue  # Hydra reports the syntax error
        key = override.key_or_group
        if key in RETIRED_KEYS:
            return f"`{key}` is gone: use {RETIRED_KEYS[key]} instead. (The command line had `{argument}`.)"
        for option in _chosen_options(override):
            if (key, option) in PLUGIN_OPTIONS:
                refusal = _missing_plugin(f"{key}={option}", *PLUGIN_OPTIONS[key, option])
                if refusal:
                    return refusal
    return None


def _chosen_options(override) -> list[str]:
    if override.is_sweep_override():
        return [str(value) for value in override.sweep_string_iterator()]
    value = override.value()
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _missing_plugin(choice: str, what: str, modules: tuple[str, ...], extra: str) -> str | None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError:
            return (
                f"`{choice}` needs {what} ({module}), which is not installed here. Install it with "
                f"`pip install 'aetrain[{extra}]'` (in a checkout: `pip install -e '.[{extra}]'`), "
                "then run the command again."
            )
    return None
