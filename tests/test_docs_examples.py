"""Every Python example in the README and the docs runs, as written, with the network blocked.

Each file's blocks run in order in one namespace, in a folder holding the files the examples name. The
names an example takes from the text around it (``path``, ``paths``, ``ds``, ``grid``, ``segments``,
``found``, ``years``...) are made from the bundled synthetic granules. A block whose first line is
``# not run in the tests: ...`` needs Earthdata Login and NASA's servers and is left out (the opt-in
``nasa`` tests cover those paths).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import xarray as xr

import is2grid
from is2grid import tutorial, workflow

ROOT = Path(__file__).parents[1]
FILES = ["README.md", "docs/index.md", "docs/usage.md", "docs/hvplot.md", "docs/thickness.md"]
NOT_RUN = "# not run in the tests:"
ATL07 = ROOT / "tests/data/atl07/processed_ATL07-01_20190226002919_09100201_003_02.h5"


def blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, sample_month):
    folder = tmp_path_factory.mktemp("docs")
    paths = sample_month[:6]
    grid = workflow.grid_granules(paths, res=25000, progress=False)
    workflow.write_netcdf(grid, folder / "month.nc")
    north = []
    for day in (15, 16):
        start = f"2019-03-{day}T00:53:29"
        options = {"hemisphere": "north", "start": start, "rgt": 1189 + day, "n_segments": 3000}
        north.append(tutorial.write_granule(folder / f"north{day}", **options))
    shutil.copy(north[0], folder / "ATL10-01_20190315005329_11890201_006_01.h5")
    shutil.copy(ATL07, folder / "ATL07-01_20190226002919_09100201_006_01.h5")
    path = tutorial.write_granule(folder, n_segments=3000, lan=180.0)  # crosses the Ross Sea box of the examples
    return {
        "folder": folder,
        "path": path,
        "path_or_url": path,
        "paths": paths,
        "found": paths,
        "auth": None,
        "client": None,
        "grid": grid,
        "segments": is2grid.open_granules(paths),
        "years": workflow.grid_granules(paths, res=25000, progress=False, store=folder / "years.zarr"),
        "north": north,
    }


@pytest.mark.parametrize("name", FILES)
def test_every_example_runs(name, inputs, no_network, monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    for entry in inputs["folder"].iterdir():
        if entry.is_file():
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)
    namespace = {k: v for k, v in inputs.items() if k not in ("folder", "north")}
    namespace["ds"] = xr.open_dataset(inputs["path"], engine="atl10")
    if name == "docs/thickness.md":
        namespace["paths"] = inputs["north"]
    ran = 0
    for number, code in enumerate(blocks(ROOT / name), 1):
        if code.startswith(NOT_RUN):
            continue
        code = code.replace('"/tmp"', repr(str(tmp_path))).replace('"/tmp/', f'"{tmp_path}/')
        try:
            exec(compile(code, f"{name}, example {number}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{name}, example {number} fails: {error!r}\n{code}") from error
        ran += 1
    assert ran, f"{name} has no example that runs"
    client = namespace.get("client")
    if client is not None:
        client.close()
