"""The typed config of an aetrain run, and the one place where a composed config is checked.

Hydra composes YAML from ``conf/``; :func:`validate` turns that into a :class:`RunConfig` of plain
dataclasses or raises :class:`ConfigError` naming the key, the value and what is allowed. Everything
downstream trusts the ``RunConfig`` it is given. Each option's schema and checks come from its one
declaration (aetrain.config.registry: variants.py, regularizers.py, trainer.py here, data sets in
aetrain.data.specs). This module must not import TensorFlow: a typo is reported before the slow
import starts.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, InterpolationResolutionError, OmegaConfBaseException

from aetrain.config import registry
from aetrain.config.checks import MAX_SEED, MAX_UNITS, ConfigError, is_count, require
from aetrain.config.data_settings import Data
from aetrain.config.data_spec import check_declared_spec
from aetrain.config.logger_settings import LoggerSettings
from aetrain.config.regularizers import Noise, Sparsity
from aetrain.config.trainer import TrainerConfig
from aetrain.config.variants import Variant

# The base class every option's schema of a group derives from (its checks live there).
GROUP_BASES: dict[str, type] = {"variant": Variant, "noise": Noise, "sparsity": Sparsity, "data": Data}

TOP_LEVEL_KEYS = {"variant", "noise", "sparsity", "data", "trainer", "latent_size", "seed"}


@dataclass
class RunConfig:
    """Everything one training run needs, checked."""

    variant: Variant
    noise: Noise
    sparsity: Sparsity
    data: Data
    trainer: TrainerConfig
    latent_size: int = 30
    seed: int = 42
    logger: dict[str, LoggerSettings] = field(default_factory=dict)  # aetrain.training.loggers.Logger

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored in metrics.json and inside every checkpoint. An option declared
        outside aetrain keeps its ``_declared_in_``, so the stored config reads back on its own."""
        plain = dataclasses.asdict(self)
        for group in registry.GROUPS:
            found = registry.lookup(group, plain[group].get("name"))
            if found is not None and not found.built_in:
                plain[group] = {**plain[group], registry.DECLARED_IN: found.declared_in}
        return plain

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> RunConfig:
        """A checkpoint's config, checked like a command line (it never resolves an interpolation).
        Its loggers, which name no class there, are left out; a checkpoint from before loggers were a
        group has ``trainer.tensorboard``, dropped too; a KL sparsity stored before
        ``divide_by_batch_size`` existed trained with the undivided penalty."""
        if isinstance(raw, dict):
            raw = {key: value for key, value in raw.items() if key != "logger"}
            if isinstance(raw.get("trainer"), dict):
                raw["trainer"] = {k: v for k, v in raw["trainer"].items() if k != "tensorboard"}
            sparsity = raw.get("sparsity")
            if isinstance(sparsity, dict) and sparsity.get("name") == "kl":
                raw["sparsity"] = {"divide_by_batch_size": False, **sparsity}  # as trained before the key
        return validate(raw)


# --- checking ----------------------------------------------------------------------------------


def validate(cfg: DictConfig | dict[str, Any]) -> RunConfig:
    """Check a composed config and return it typed, or raise ConfigError naming the bad key.

    A plain dict (a config read from a file) may hold no interpolation (``${...}``): it is data, and
    resolving it could read the environment. In a composed DictConfig (the command line) an
    interpolation that fails to resolve is a ConfigError naming its key.
    """
    if not isinstance(cfg, DictConfig):
        if not isinstance(cfg, dict):
            raise ConfigError("config", type(cfg).__name__, "a mapping of settings")
        _refuse_interpolations(cfg)
        return _validate_resolving(OmegaConf.create(cfg), from_a_file=True)
    return _validate_resolving(cfg, from_a_file=False)


def _validate_resolving(cfg: DictConfig, from_a_file: bool) -> RunConfig:
    try:
        return _validate(cfg, from_a_file)
    except OmegaConfBaseException as err:
        key = str(getattr(err, "full_key", "") or getattr(err, "key", "") or "config")
        raise ConfigError(
            key, unresolved_value(cfg, key), "a value that resolves", _first_line(err)
        ) from None


def _validate(cfg: DictConfig, from_a_file: bool) -> RunConfig:
    unknown = sorted(set(cfg.keys()) - TOP_LEVEL_KEYS - {"hydra", "logger", "resume_sweep"})  # sweep_control
    if unknown:
        raise ConfigError(
            unknown[0],
            cfg[unknown[0]],
            f"the top-level keys {sorted(TOP_LEVEL_KEYS)}",
            "aetrain has no such setting.",
        )
    for key in TOP_LEVEL_KEYS:
        if key not in cfg:
            raise ConfigError(key, None, "a value", "The setting is missing from the config.")
    _refuse_retired_keys(cfg)

    run = RunConfig(
        variant=_typed_group(cfg, "variant", from_a_file),
        noise=_typed_group(cfg, "noise", from_a_file),
        sparsity=_typed_group(cfg, "sparsity", from_a_file),
        data=_typed_group(cfg, "data", from_a_file),
        trainer=_typed(cfg.trainer, TrainerConfig, "trainer"),
        latent_size=_integer(cfg, "latent_size"),
        seed=_integer(cfg, "seed"),
        logger=_loggers(cfg.get("logger")),
    )
    _check_ranges(run)
    return run


def _refuse_retired_keys(cfg: DictConfig) -> None:
    if isinstance(cfg.trainer, DictConfig) and "tensorboard" in cfg.trainer:
        raise ConfigError(
            "trainer.tensorboard",
            cfg.trainer.tensorboard,
            "`logger=tensorboard` instead (`logger=[csv,tensorboard]` keeps history.csv too)",
            "TensorBoard is a logger now: the key is gone.",
        )


def _loggers(node: Any) -> dict[str, LoggerSettings]:
    """The ``logger`` node as typed, checked loggers by name, each class found by its ``_target_``."""
    if node is None:  # logger=[]
        return {}
    if not isinstance(node, DictConfig):
        raise ConfigError("logger", node, "a list of loggers from conf/logger/, e.g. `logger=[csv,mlflow]`")
    loggers = {}
    for name, settings in node.items():
        key = f"logger.{name}"
        target = settings.get("_target_") if isinstance(settings, DictConfig) else None
        if not isinstance(target, str):
            raise ConfigError(key, settings, "a logger's settings with the `_target_` of its class")
        logger_class = _logger_class(f"{key}._target_", target)
        _check_installed(str(name), logger_class)
        plain = OmegaConf.masked_copy(settings, [k for k in settings if k != "_target_"])
        loggers[str(name)] = _typed(plain, logger_class, key)
        loggers[str(name)].check(key)
    return loggers


def _logger_class(key: str, target: str) -> type[LoggerSettings]:
    module_name, _, class_name = target.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        found = None
    if not (
        isinstance(found, type) and issubclass(found, LoggerSettings) and dataclasses.is_dataclass(found)
    ):
        raise ConfigError(
            key, target, "the import path of a dataclass derived from aetrain.training.loggers.Logger"
        )
    return found


def _check_installed(name: str, logger_class: type[LoggerSettings]) -> None:
    if logger_class.requires is None:
        return
    module, extra = logger_class.requires
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            "logger",
            name,
            f"a logger whose package is installed: `pip install 'aetrain[{extra}]'` installs {module}",
            f"The {name} logger needs the package {module}, which is not installed here.",
        ) from None


def _refuse_interpolations(tree: Any, prefix: str = "") -> None:
    """ConfigError naming the first string of ``tree`` that OmegaConf would treat as an interpolation."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, str) and "${" in value:
            raise ConfigError(
                path,
                value,
                "a plain value",
                "A stored config holds values, not interpolations (`${...}`): aetrain does not resolve "
                "them, so this file was not written by aetrain or was edited.",
            )
        _refuse_interpolations(value, path)


def dotted_keys(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as one level: ``{"trainer": {"epochs": 3}}`` -> ``{"trainer.epochs": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(dotted_keys(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def unresolved_value(cfg: DictConfig, key: str) -> Any:
    """The value at dotted ``key`` as written (an interpolation unresolved), for an error message."""
    value: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _integer(cfg: DictConfig, key: str) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, value, "an integer")
    return value


def _typed_group(cfg: DictConfig, group: str, from_a_file: bool) -> Any:
    """The group's node typed by the schema of the option it names (declared in aetrain, or in the
    module its ``_declared_in_`` names, imported first: for a config read from a file, only a module
    from a folder the user put on the path)."""
    node = cfg[group]
    declared = registry.names(group)
    if not isinstance(node, DictConfig) or "name" not in node:
        raise ConfigError(group, node, f"one of {sorted(declared)} (e.g. `{group}={declared[0]}`)")
    outside = registry.DECLARED_IN in node
    if outside:
        key = f"{group}.{registry.DECLARED_IN}"
        registry.import_declaring_module(node[registry.DECLARED_IN], key, from_a_file)
        node = OmegaConf.masked_copy(node, [k for k in node if k != registry.DECLARED_IN])
    name = node.name
    found = registry.lookup(group, name) if isinstance(name, str) else None
    if found is None:
        if outside:
            why = f"{cfg[group][registry.DECLARED_IN]} declares no {group} called {name!r}."
        else:
            why = (
                f"There is no {group} called {name!r}. A {group} from outside aetrain names the module "
                f"that declares it in `{group}.{registry.DECLARED_IN}`."
            )
        raise ConfigError(f"{group}.name", name, f"one of {sorted(registry.names(group))}", why)
    if not found.built_in:
        _check_outside_declaration(found, group)
    return _typed(node, found.schema, group)


def _check_outside_declaration(found: registry.Option, group: str) -> None:
    key = f"{group}.{registry.DECLARED_IN}"
    base = GROUP_BASES[group]
    if not issubclass(found.schema, base):
        raise ConfigError(
            key,
            found.declared_in,
            f"a module whose {group} schema derives from {base.__module__}.{base.__qualname__}",
            f"The schema {found.schema.__qualname__} of the {group} {found.name!r} does not, so aetrain "
            "cannot check it.",
        )
    registry.check_outside_builder(found, key)
    if group == "data":
        check_declared_spec(found, key)


def _typed(node: Any, schema: type, group: str) -> Any:
    """Merge a YAML node onto its dataclass schema: unknown keys and wrong types fail here."""
    if not isinstance(node, DictConfig):
        raise ConfigError(group, node, "a mapping of settings")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as err:
        bad = str(err.key) if err.key is not None else "?"
        allowed = sorted(f.name for f in schema.__dataclass_fields__.values())
        raise ConfigError(
            f"{group}.{bad}",
            unresolved_value(node, bad),
            f"the keys {allowed}",
            f"`{schema.__name__}` has no setting called {bad!r}.",
        ) from None
    except InterpolationResolutionError as err:
        bad = str(err.key) if getattr(err, "key", None) is not None else "?"
        raise ConfigError(
            f"{group}.{bad}", unresolved_value(node, bad), "a value that resolves", _first_line(err)
        ) from None
    except OmegaConfBaseException as err:
        bad = str(err.key) if getattr(err, "key", None) is not None else "?"
        expected = schema.__dataclass_fields__.get(bad)
        kind = getattr(expected, "type", "the documented type")
        raise ConfigError(
            f"{group}.{bad}",
            unresolved_value(node, bad),
            f"a value of type {kind}",
            "The value has the wrong type.",
        ) from None


def _check_ranges(run: RunConfig) -> None:
    """Value ranges and combinations that make no sense, named by key: each option's schema checks its
    own values (and how they combine with the rest of the run); the data set first, since a variant
    checks that it fits the data set's images."""
    require(
        is_count(run.latent_size, 1, MAX_UNITS),
        "latent_size",
        run.latent_size,
        f"an integer from 1 to {MAX_UNITS}",
        "The coding layer needs at least one unit.",
    )
    require(is_count(run.seed, 0, MAX_SEED), "seed", run.seed, f"an integer from 0 to {MAX_SEED} (2**32 - 1)")
    run.data.check(run)
    run.variant.check(run)
    run.noise.check(run)
    run.sparsity.check(run)
    run.trainer.check()
