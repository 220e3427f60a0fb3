"""The code's shape: no module reaches into another's private names, and importing is2grid stays cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "is2grid"
MODULES = sorted(SRC.glob("*.py"))


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


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_no_module_uses_another_modules_private_names(path):
    assert private_uses(path) == []


def test_the_checker_finds_private_uses(tmp_path):
    sample = tmp_path / "workflow.py"
    sample.write_text("from is2grid import gridding\nfrom is2grid.plot import _rings\ngridding._tree()\n")
    assert private_uses(sample) == ["from is2grid.plot import _rings", "gridding._tree"]


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
    ]
    code = (
        "import sys, is2grid, is2grid.xarray_plugin, is2grid.accessor\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
