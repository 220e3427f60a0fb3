"""Sphinx configuration of the is2grid documentation (``make docs`` builds it with warnings as errors)."""

from __future__ import annotations

import shutil
from importlib.metadata import version as _version
from pathlib import Path

import sphinx_autosummary_accessors

import is2grid  # noqa: F401  (registers the accessor, so its methods can be documented)

HERE = Path(__file__).parent

project = "is2grid"
author = "the is2grid developers"
copyright = "2026, the is2grid developers"
release = _version("is2grid")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_autosummary_accessors",
    "sphinx_design",
    "myst_nb",
]
templates_path = ["_templates", sphinx_autosummary_accessors.templates_path]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "generated/*.md"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc Parameters sections say it, in words
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# the quickstart runs on the bundled synthetic granules at build time, so the rendered outputs are real
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
# hvplot's interactive output renders in the browser; its loader MIME types are not Sphinx's business
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "pydata_sphinx_theme"
html_title = "is2grid"
html_theme_options = {
    "github_url": "https://github.com/is2grid/is2grid",
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = ["_static"]
html_css_files = ["is2grid.css"]


def _copy_notebooks(app) -> None:
    """The notebooks live in notebooks/ (where users find them); the docs render a copy."""
    target = HERE / "notebooks"
    target.mkdir(exist_ok=True)
    for notebook in (HERE.parent / "notebooks").glob("*.ipynb"):
        shutil.copy2(notebook, target / notebook.name)


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
