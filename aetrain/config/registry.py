"""The one registry of options: each variant, noise, sparsity, data set, optimizer, schedule and strategy
is declared once, by :func:`declare`, its name, its schema and its builder side by side.

``validate`` reads a declaration's schema; building reads the same declaration's builder. A builder is
given lazily, as ``"module:function"`` (or as a function that imports Keras inside), so declaring
and validating never import TensorFlow. An option from outside aetrain is declared the same way in a
module on PYTHONPATH, named by the option's YAML file under ``_declared_in_``; that module is imported
before the config is checked::

    # conf/variant/tiny.yaml               # tiny_variant.py
    name: tiny                             @dataclass
    _declared_in_: tiny_variant            class TinyVariant(Variant): ...
    units: 8                               declare("variant", "tiny", TinyVariant, build=build_tiny)

Loggers follow the same idea through Hydra's ``_target_`` (aetrain.training.loggers).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aetrain.config.checks import ConfigError

#: Kinds of option whose YAML node (a config group) is checked against the option's schema.
GROUPS = ("variant", "noise", "sparsity", "data")
#: Kinds chosen by a bare name in the trainer's settings (``trainer.optimizer=adamw``).
NAMED = ("optimizer", "schedule", "strategy")
KINDS = GROUPS + NAMED

DECLARED_IN = "_declared_in_"  # the YAML key naming the module that declares an outside option
#: aetrain's own top-level packages: installed whatever the install mode (editable, wheel, a checkout).
OWN_PACKAGES = ("aetrain", "hydra_plugins", "bench")

# aetrain's own declarations, imported on the first look-up (aetrain.data.specs imports aetrain.config,
# so it cannot be imported while aetrain.config is).
BUILT_IN_DECLARATIONS = (
    "aetrain.config.variants",
    "aetrain.config.regularizers",
    "aetrain.config.trainer",
    "aetrain.data.specs",
)
#: The package whose every module is one model family, declared by itself (schema, builder, family):
#: adding a family there is one module and its YAML, with no list to extend.
FAMILY_MODULES = "aetrain.models.families"


@dataclass(frozen=True)
class Option:
    """One option as declared: the YAML's ``name``, the dataclass its settings are checked against
    (None for a bare name) and what builds it.

    ``build`` is ``"module:function"`` or a callable: for a variant ``(RunConfig) -> keras.Model``; a
    noise ``(Noise, seed) -> Layer | None``; a sparsity ``(Sparsity) -> list[Layer]``; an optimizer
    ``(**kwargs) -> Optimizer``; a schedule ``(TrainerConfig, total_steps, warmup_steps) -> rate``; a
    strategy ``() -> tf.distribute.Strategy``. For a data set it is the ``DataSpec`` (shape, classes,
    reader) of aetrain.config.data_spec.

    ``family`` (variants only): the aetrain.models.family.Family that says how the variant trains,
    evaluates, samples and exports, or a ``"module:attribute"`` reference to it; None: a plain
    autoencoder.
    """

    kind: str
    name: str
    schema: type | None
    build: Any
    declared_in: str  # the module that declared it
    family: Any = None

    @property
    def built_in(self) -> bool:
        return self.declared_in.split(".")[0] == "aetrain"

    def builder(self) -> Any:
        """The builder itself (a ``"module:function"`` reference is imported now)."""
        return resolve(self.build) if isinstance(self.build, str) else self.build


_DECLARED: dict[str, dict[str, Option]] = {kind: {} for kind in KINDS}
_built_ins_loaded = False


def declare(
    kind: str, name: str, schema: type | None = None, *, build: Any = None, family: Any = None
) -> Option:
    """Declare the option ``name`` of ``kind``: call it at the top level of the module that defines it.

    A name that another module already declared is refused (ValueError), so an outside module cannot
    replace one of aetrain's options by accident.
    """
    if kind not in KINDS:
        raise ValueError(f"no kind of option called {kind!r}; the kinds are {list(KINDS)}")
    if kind in GROUPS and not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        raise ValueError(f"the {kind} {name!r} needs a dataclass as its schema, not {schema!r}")
    if family is not None and kind != "variant":
        raise ValueError(f"only a variant has a family; the {kind} {name!r} was given {family!r}")
    declared_in = sys._getframe(1).f_globals.get("__name__", "?")  # the caller's module
    earlier = _DECLARED[kind].get(name)
    if earlier is not None and earlier.declared_in != declared_in:
        raise ValueError(f"the {kind} {name!r} is already declared in {earlier.declared_in}")
    option = Option(kind, name, schema, build, declared_in, family)
    _DECLARED[kind][name] = option
    return option


def names(kind: str) -> list[str]:
    """The names of every declared option of ``kind``, in declaration order."""
    _load_built_ins()
    return list(_DECLARED[kind])


def lookup(kind: str, name: str) -> Option | None:
    """The declaration of ``name``, or None."""
    _load_built_ins()
    return _DECLARED[kind].get(name)


def option(kind: str, name: str) -> Option:
    """The declaration of ``name`` (which validation has checked exists)."""
    found = lookup(kind, name)
    if found is None:
        raise KeyError(f"no {kind} called {name!r} is declared; declared: {names(kind)}")
    return found


def build(kind: str, name: str) -> Any:
    """The builder of the option ``name`` of ``kind``."""
    return option(kind, name).builder()


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names (ImportError or AttributeError if none)."""
    module_name, _, attribute = reference.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def import_declaring_module(module_name: Any, key: str, from_a_file: bool = False) -> None:
    """Import the module an outside option's YAML names under ``_declared_in_``, or ConfigError.

    Modules of Python's standard library are refused: none declares an option, and importing some of
    them has effects. A config read from a file (a checkpoint's) may name only a module from a folder
    the user put on the path (PYTHONPATH), never one installed with Python or its packages: a crafted
    file must not choose code to run.
    """
    allowed = "the dotted name of a module on PYTHONPATH that declares the option (e.g. `mypackage.tiny`)"
    if not isinstance(module_name, str) or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigError(key, module_name, allowed)
    if module_name.split(".")[0] in sys.stdlib_module_names:
        raise ConfigError(
            key, module_name, allowed, "A module of Python's standard library declares no option."
        )
    if any(part.startswith("__") and part.endswith("__") for part in module_name.split(".")):
        raise ConfigError(
            key, module_name, allowed, "A module whose name is a dunder (`__main__`) declares no option."
        )
    if from_a_file and not _from_a_users_folder(module_name):
        raise ConfigError(
            key,
            module_name,
            "a module from a folder on PYTHONPATH",
            "A stored config (a checkpoint's) may name only a module the user put on the path, outside "
            "every installed distribution (aetrain's own included): put the folder that holds the "
            "option's module on PYTHONPATH.",
        )
    if module_name in sys.modules:
        return
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            raise ConfigError(
                key,
                module_name,
                allowed,
                f"There is no module {module_name!r} on the path: put its folder on PYTHONPATH "
                "(or install its package).",
            ) from None
        raise _import_failed(key, module_name, allowed, error) from None
    except Exception as error:  # the module's own code failed: a SyntaxError, a bad declare(...)
        raise _import_failed(key, module_name, allowed, error) from None


def _from_a_users_folder(module_name: str) -> bool:
    """Whether the top-level package of ``module_name`` lives outside Python's own and installed
    libraries and belongs to no installed distribution, aetrain included (an editable install lies
    outside site-packages). Found without running it. A module that is nowhere passes: importing it
    fails."""
    top_level = module_name.split(".")[0]
    if top_level in _installed_top_level_names():
        return False
    try:
        spec = importlib.util.find_spec(top_level)
    except (ImportError, ValueError):  # a module whose spec cannot be read is no user's plain module
        return False
    if spec is None:
        return True
    locations = list(spec.submodule_search_locations or []) or [spec.origin]
    if any(location in (None, "built-in", "frozen") for location in locations):
        return False
    libraries = {sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    libraries |= {*site.getsitepackages(), site.getusersitepackages()}
    roots = [Path(folder).resolve() for folder in libraries if folder]
    return not any(Path(location).resolve().is_relative_to(root) for location in locations for root in roots)


@functools.cache
def _installed_top_level_names() -> frozenset[str]:
    """Every top-level module an installed distribution provides, and aetrain's own packages."""
    return frozenset({*importlib.metadata.packages_distributions(), *OWN_PACKAGES})


def _import_failed(key: str, module_name: str, allowed: str, error: Exception) -> ConfigError:
    first_line = (str(error).strip().splitlines() or [""])[0]
    return ConfigError(
        key,
        module_name,
        allowed,
        f"Importing it failed: {type(error).__name__}: {first_line}".rstrip(": ") + ".",
    )


def check_outside_builder(found: Option, key: str) -> None:
    """An option declared outside aetrain must name a builder that exists (imported now: it is the
    user's module, already loaded)."""
    allowed = f"a module that declares the {found.kind} with `declare(..., build=...)`"
    if found.build is None:
        raise ConfigError(
            key,
            found.declared_in,
            allowed,
            f"{found.declared_in} declares the {found.kind} {found.name!r} without a builder.",
        )
    if found.kind == "data":  # its builder is its DataSpec (aetrain.config.data_spec checks it)
        return
    try:
        builder = found.builder()
    except Exception as error:
        raise ConfigError(
            key,
            found.declared_in,
            allowed,
            f"The builder {found.build!r} of the {found.kind} {found.name!r} cannot be found "
            f"({type(error).__name__}: {error}).",
        ) from None
    if not callable(builder):
        raise ConfigError(key, found.declared_in, allowed, f"Its builder {found.build!r} is not callable.")


def _load_built_ins() -> None:
    global _built_ins_loaded
    if not _built_ins_loaded:
        _built_ins_loaded = True
        for module in (*BUILT_IN_DECLARATIONS, *_family_modules()):
            importlib.import_module(module)


def _family_modules() -> list[str]:
    """The modules of FAMILY_MODULES, found by listing its folder (without importing any of them)."""
    package = importlib.util.find_spec(FAMILY_MODULES)
    if package is None or not package.submodule_search_locations:
        return []
    import pkgutil

    return sorted(
        f"{FAMILY_MODULES}.{found.name}"
        for found in pkgutil.iter_modules(package.submodule_search_locations)
        if not found.name.startswith("_")
    )
