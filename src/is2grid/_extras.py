"""The optional parts of is2grid and what they need: a missing one is a named error, before any work."""

from __future__ import annotations

import importlib.util

from is2grid.errors import MissingExtraError

#: extra -> the modules it installs that is2grid imports
EXTRAS = {
    "viz": ("matplotlib", "cartopy", "holoviews", "panel", "bokeh", "datashader"),
    "dask": ("dask", "distributed"),
    "earthdata": ("earthaccess",),
}


def need(extra: str, purpose: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise :class:`~is2grid.MissingExtraError` if the modules of ``extra`` (or ``modules``) are missing.

    Examples
    --------
    >>> need("viz", "a map", ("no_such_module_anywhere",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    is2grid.errors.MissingExtraError: a map needs no_such_module_anywhere, installed by is2grid's [viz] extra: ...
    """
    missing = [m for m in (modules or EXTRAS[extra]) if not _installed(m)]
    if missing:
        raise MissingExtraError(
            f"{purpose} needs {', '.join(missing)}, installed by is2grid's [{extra}] extra: "
            f"pip install 'is2grid[{extra}]' (or 'is2grid[all]')."
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
        return False
