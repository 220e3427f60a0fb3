"""The code's shape: layers import only downwards, h5coro stays in its adapter, no module reaches into
another's private names, and importing is2grid stays cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "is2grid"
MODULES = sorted(SRC.rglob("*.py"))

#: each part of the package and the parts it may import (docs/design.md draws them)
LAYERS = {
    "base": set(),
    "products": {"base"},
    "io": {"base"},
    "backend": {"base", "products", "io"},
    "grid": {"base", "products"},
    "output": {"base", "products", "grid"},
    "viz": {"base", "products", "grid"},
    "thickness": {"base", "products", "grid"},
    "top": {"base", "products", "io", "backend", "grid", "output", "viz", "thickness", "top"},
    "entry": {"base", "products", "io", "backend", "grid", "output", "viz", "thickness", "top", "entry"},
}
BASE = {"errors", "memory", "_threads", "_turns", "_version", "_extras"}
ENTRY = {"cli", "__init__"}


def dotted(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """The layer of ``is2grid.x.y``."""
    rest = module.split(".")[1:]
    if not rest:
        return "entry"
    if rest[0] in LAYERS and rest[0] not in ("base", "top", "entry"):
        return rest[0]
    if rest[0] in BASE:
        return "base"
    if rest[0] in ENTRY:
        return "entry"
    return "top"


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every is2grid module a file imports (also inside functions), with its line."""
    tree = ast.parse(path.read_text())
    found = []
    package = dotted(path) if path.name == "__init__.py" else dotted(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "is2grid"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*kept, module]).strip(".")
            if module.split(".")[0] != "is2grid":
                continue
            for alias in node.names:  # "from is2grid.grid import gridding" imports is2grid.grid.gridding
                candidate = f"{module}.{alias.name}"
                found.append((node.lineno, candidate if _is_module(candidate) else module))
    return found


def _is_module(name: str) -> bool:
    path = SRC.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def layer_violations(path: Path) -> list[str]:
    own = part_of(dotted(path))
    return [
        f"{path.relative_to(SRC)}:{line} ({own}) imports {module} ({part_of(module)})"
        for line, module in imports_of(path)
        if part_of(module) not in LAYERS[own] | {own}
    ]


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(SRC)) for p in MODULES])
def test_layers_import_only_downwards(path):
    assert layer_violations(path) == []


def test_every_module_has_a_layer_and_the_layout_is_the_one_drawn():
    folders = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"io", "backend", "products", "grid", "output", "viz", "thickness"}
    top = {p.stem for p in SRC.glob("*.py")}
    assert top == BASE | ENTRY | {"accessor", "workflow", "in_flight", "earthdata", "tutorial", "_malloc", "_workers"}


def test_the_layer_check_finds_an_upward_import(tmp_path, monkeypatch):
    sample = SRC / "grid" / "gridding.py"
    text = "from is2grid.backend import store\nfrom is2grid.products import ATL10\n"
    fake = tmp_path / "gridding.py"
    fake.write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "dotted", lambda p: "is2grid.grid.gridding" if p == fake else dotted(p))
    assert sample.exists()
    found = [line for line, module in imports_of(fake)]
    assert found == [1, 2]
    assert part_of("is2grid.backend.store") not in LAYERS["grid"]


def test_h5coro_is_imported_by_its_adapter_alone():
    users = []
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "h5coro" for n in names):
                users.append(str(path.relative_to(SRC)))
    assert set(users) == {"io/h5coro_adapter.py"}


def private_uses(path: Path) -> list[str]:
    """``module._name`` and ``from module import _name`` where the module is another is2grid module."""
    tree = ast.parse(path.read_text())
    own = {p.stem for p in MODULES} - {path.stem}
    imported: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("is2grid"):
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and not (node.module == "is2grid" and alias.name in own):  # private modules are fine
                    found.append(f"from {node.module} import {alias.name}")
                if alias.name in own:
                    imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("is2grid."):
                    imported.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            base = ast.unparse(node.value)
            if base in imported:
                found.append(f"{base}.{node.attr}")
    return found


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(SRC)) for p in MODULES])
def test_no_module_uses_another_modules_private_names(path):
    assert private_uses(path) == []


def test_the_checker_finds_private_uses(tmp_path):
    sample = tmp_path / "workflow.py"
    sample.write_text("from is2grid.grid import gridding\nfrom is2grid.viz.plot import _rings\ngridding._tree()\n")
    assert private_uses(sample) == ["from is2grid.viz.plot import _rings", "gridding._tree"]


def test_importing_is2grid_and_the_plugin_stays_cheap():
    """xarray imports the plugin on every open_dataset: no dask, pyproj, flox, obstore or plotting then."""
    heavy = [
        "dask",
        "distributed",
        "pyproj",
        "flox",
        "obstore",
        "h5coro",
        "matplotlib",
        "cartopy",
        "hvplot",
        "earthaccess",
        "zarr",
        "netCDF4",
    ]
    code = (
        "import sys, is2grid, is2grid.backend.entrypoints, is2grid.accessor\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
