"""The command line's NetCDF checked by tools nobody here wrote: the IOOS compliance-checker and cfchecker."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from is2grid import cli, tutorial

AREA_TYPES = """<?xml version="1.0"?>
<area_type_table><version_number>1</version_number><date>2026-01-01</date>
<entry id="sea_ice"><description/></entry></area_type_table>
"""
REGIONS = """<?xml version="1.0"?>
<standardized_region_list><version_number>1</version_number><date>2026-01-01</date>
<entry id="arctic_ocean"/></standardized_region_list>
"""


@pytest.fixture(scope="module")
def cli_netcdf(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cf")
    granules = [tutorial.write_granule(root, n_segments=3000, rgt=r, seed=r) for r in (11, 12)]
    out = root / "freeboard.nc"
    assert cli.main(["grid", *map(str, granules), "--res", "25000", "--out", str(out)]) == 0
    return out


def test_the_ioos_compliance_checker_finds_no_high_or_medium_failure(cli_netcdf, tmp_path):
    report = tmp_path / "report.json"
    runner = shutil.which("compliance-checker") or str(Path(sys.executable).with_name("compliance-checker"))
    done = subprocess.run(
        [runner, "--test=cf:1.8", "--format=json", "-o", str(report), str(cli_netcdf)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(report.read_text())["cf:1.8"]
    failures = [
        (check["name"], check["msgs"])
        for level in ("high_priorities", "medium_priorities")
        for check in result[level]
        if check["value"][0] < check["value"][1]
    ]
    assert not failures, failures
    assert done.returncode == 0, done.stdout[-2000:]


def _udunits_found() -> bool:
    try:
        import cfunits  # noqa: F401  (needs the UDUNITS-2 C library)
    except (ImportError, FileNotFoundError, OSError):
        return False
    return True


@pytest.mark.skipif(not _udunits_found(), reason="cfchecker needs the UDUNITS-2 library (Debian: libudunits2-0)")
def test_cfchecker_finds_no_error(cli_netcdf, tmp_path):
    """The CF standard names from the compliance-checker's copy of the table; area types and regions unused."""
    import compliance_checker

    names = Path(compliance_checker.__file__).parent / "data" / "cf-standard-name-table.xml"
    (tmp_path / "area.xml").write_text(AREA_TYPES)
    (tmp_path / "regions.xml").write_text(REGIONS)
    runner = shutil.which("cfchecks") or str(Path(sys.executable).with_name("cfchecks"))
    done = subprocess.run(
        [runner, "-s", str(names), "-a", str(tmp_path / "area.xml"), "-r", str(tmp_path / "regions.xml"),
         str(cli_netcdf)],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert "ERRORS detected: 0" in done.stdout, done.stdout[-3000:]
    warnings = [line for line in done.stdout.splitlines() if line.startswith("WARN:")]
    assert warnings == ["WARN: (3.1): units attribute should be present"], warnings  # on crs, which needs none


def test_what_the_checkers_wanted_keeps_the_values_and_the_crs(cli_netcdf):
    import rioxarray  # noqa: F401

    ds = xr.open_dataset(cli_netcdf)
    assert ds.mean_fb.rio.crs.to_epsg() == 6932, "the CRS still travels with every variable"
    assert ds.time.encoding["dtype"] == np.float64 and "_FillValue" not in ds.time.encoding
    assert ds.attrs["history"].endswith("(is2grid.output.netcdf.write_netcdf)")
    assert ds.granule.dims == ("n_granules",) and ds.granule.values[0].startswith("ATL10-02_")
    assert ds.time_bounds.values[0, 1] - ds.time_bounds.values[0, 0] == np.timedelta64(1, "D")
