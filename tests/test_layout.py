"""The package's layout stays as README's development map says: imports run down the data path, and none loops.

Every import counts, wherever it stands (a module's top, inside a function, under TYPE_CHECKING):
a loop hidden in a function is still a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import kubectl_istio_remote

PACKAGE = "kubectl_istio_remote"
ROOT = Path(kubectl_istio_remote.__file__).parent
#: The data path, top to bottom: a module imports only its own folder's modules and those of lower floors.
FLOORS = {
    "entry": 7,  # launch.py, __main__.py: the console entry point starts the CLI
    "cli": 6,
    "session": 5,
    "aggregator": 4,
    "deploy": 4,
    "native": 3,
    "kube": 2,
    "ground": 1,  # the package top: console, errors, status, signals, ...
}
ENTRY_MODULES = {f"{PACKAGE}.launch", f"{PACKAGE}.__main__"}
MOST_TOP_MODULES = 12


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in ROOT.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports (a `from package import name` counts the module `name` when it is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith(PACKAGE)}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if f"{node.module}.{alias.name}" in known}
    return found & known


def floor_of(module: str) -> tuple[str, int]:
    if module in ENTRY_MODULES:
        return "entry", FLOORS["entry"]
    parts = module.split(".")
    folder = parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in FLOORS) else "ground"
    return folder, FLOORS[folder]


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def test_no_import_runs_up_the_data_path() -> None:
    upward = []
    for module, imported in graph().items():
        folder, floor = floor_of(module)
        for target in imported:
            target_folder, target_floor = floor_of(target)
            if target == PACKAGE or target_folder == folder:
                continue
            if target_floor >= floor:
                upward.append(f"{module} -> {target}")
    assert not upward, upward


def test_no_module_imports_itself_through_others() -> None:
    edges = graph()
    state: dict[str, str] = {}
    loops: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                loops.append([*path[path.index(target) :], target] if target in path else [module, target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not loops, loops


def test_the_package_top_keeps_only_the_ground_floor() -> None:
    top = [path.name for path in ROOT.glob("*.py") if path.name not in ("__init__.py", "__main__.py")]
    assert len(top) <= MOST_TOP_MODULES, sorted(top)
    folders = {path.name for path in ROOT.iterdir() if (path / "__init__.py").is_file()}
    assert folders == {"cli", "session", "aggregator", "deploy", "native", "kube"}


def test_no_module_shares_its_name_with_a_folder_or_a_module_of_another_folder() -> None:
    names: dict[str, list[str]] = {}
    for module in modules():
        names.setdefault(module.rsplit(".", 1)[-1], []).append(module)
    shared = {name: places for name, places in names.items() if len(places) > 1 and name != PACKAGE}
    assert not shared, shared
