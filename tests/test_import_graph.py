"""aetrain's modules import one another in one direction: no cycle, and no layer reaching up.

Every ``import`` and ``from ... import`` of every module under aetrain/ counts, wherever it stands:
at the top or inside a function. One under ``if TYPE_CHECKING:`` counts for the layers (a lower layer
does not even name a higher one's types) but not for cycles: it never runs, and an option's schema
annotates its ``check(run: RunConfig)`` with the RunConfig that holds it. A dynamic import by a
string (``importlib.import_module(name)``: the registry's discovery of declaring modules, a logger's
``_target_``) is no import statement and is not counted: those name plug-ins, found at run time.

The graph has one node per module; a package's ``__init__`` is the node named by the package. An
import of ``aetrain.A.B`` from outside the package ``aetrain.A`` also imports ``aetrain.A``: Python
runs a package's ``__init__`` before any module in it. The top package ``aetrain`` itself (its
``__init__`` and ``__main__``) is the entry: Python runs it before any import of aetrain, so that
implicit edge is left out, and nothing imports it by name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "aetrain"

#: The layers, lowest first: a module may import modules of its own layer or of a lower one. The
#: layer of ``aetrain.X`` and of every module under it is X.
LAYERS = (
    "exit_codes",  # the table of exit codes (no aetrain import)
    "errors",  # the base of the errors that know their exit code, and the one mapping to (message, code)
    "quiet_imports",  # heavy libraries imported without their noise (no aetrain import)
    "config",  # the typed schema, its checks and the registry of options (no TensorFlow)
    "data",  # the data sets' specs, readers, splits, tf.data
    "models",  # one module per family, built from (config, data spec)
    "run_folder",  # every path in a run folder, its claim, lock, atomic writes, checkpoints, resume
    "analysis",  # evaluation, sampling, projections, pictures, serving export of a trained model
    "training",  # the loop, callbacks, loggers, runtime, stop requests
    "sweeps",  # a sweep's record, control, launchers, workers, Optuna
    "commands",  # the console scripts: the only layer that touches the process
    "__main__",  # python -m aetrain
)
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}


def module_files() -> dict[str, tuple[Path, bool]]:
    """Every module under aetrain/ by dotted name: (its file, whether it is a package's __init__)."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


MODULES = module_files()


def known_module(name: str) -> str | None:
    """The module of aetrain that importing ``name`` runs last (``a.b.func`` -> ``a.b``), or None."""
    if name != PACKAGE and not name.startswith(f"{PACKAGE}."):
        return None
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def type_only(tree: ast.AST) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``: read by type checkers, never run."""
    guarded = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        ):
            guarded |= {inner for statement in node.body for inner in ast.walk(statement)}
    return guarded


def imports_of(module: str) -> list[tuple[str, int, bool]]:
    """(module of aetrain, line, type only) for every import statement of ``module``, relative
    imports resolved; ``from PACKAGE import name`` imports the module PACKAGE.name when there is one."""
    path, is_package = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    guarded = type_only(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            names = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                for alias in node.names
            ]
        else:
            continue
        for name in names:
            if (target := known_module(name)) is not None:
                found.append((target, node.lineno, node in guarded))
    return found


def packages_run_first(target: str, importer: str) -> list[str]:
    """The packages Python runs before ``target`` that ``importer`` is not already inside."""
    parts = target.split(".")
    return [
        package
        for package in (".".join(parts[:end]) for end in range(2, len(parts)))
        if not importer.startswith(f"{package}.")
    ]


def import_graph(with_type_only: bool = True) -> dict[str, dict[str, int]]:
    """module -> {module it imports: the first line that does}; ``with_type_only``: also the imports
    under ``if TYPE_CHECKING:``."""
    graph: dict[str, dict[str, int]] = {module: {} for module in MODULES}
    for module in MODULES:
        for target, line, guarded in imports_of(module):
            if guarded and not with_type_only:
                continue
            for imported in (*packages_run_first(target, module), target):
                if imported not in (module, PACKAGE):
                    graph[module].setdefault(imported, line)
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__main__"  # the top package: the entry


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], found by a depth-first search, or None."""
    state: dict[str, str] = {}  # "open" while on the search's path, "done" after
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return [*path[path.index(imported) :], imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        path.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_every_module_belongs_to_a_layer():
    assert {layer(module) for module in MODULES} <= set(LAYERS)


def test_the_graph_sees_imports_inside_functions_and_relative_ones():
    graph = import_graph()
    # commands/train.py imports aetrain.training.loop inside a function, aetrain.config at the top
    assert "aetrain.training.loop" in graph["aetrain.commands.train"]
    assert "aetrain.config" in graph["aetrain.commands.train"]
    assert "aetrain.training" in graph["aetrain.commands.train"]  # the package runs first
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph(with_type_only=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_imports_a_higher_layer():
    upward = [
        f"{MODULES[module][0].relative_to(ROOT)}:{line}: {module} ({layer(module)}) imports "
        f"{imported} ({layer(imported)})"
        for module, imports in sorted(import_graph().items())
        for imported, line in sorted(imports.items(), key=lambda item: item[1])
        if RANK[layer(imported)] > RANK[layer(module)]
    ]
    assert not upward, "a lower layer imports a higher one:\n" + "\n".join(upward)
