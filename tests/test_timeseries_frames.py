"""Region time series as users take them further: a tidy pandas frame, hvplot as they are."""

from __future__ import annotations

import numpy as np
import pytest

from is2grid import tutorial, workflow


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    days = [tutorial.write_granule(root, n_segments=2000, rgt=r, start=f"2019-09-{10 + r}T06:00:00") for r in range(3)]
    grid = workflow.grid_granules(days, res=25000, progress=False)
    return grid, grid.is2grid.timeseries("southern_ocean")


def test_to_dataframe_gives_one_row_per_bin(series):
    grid, ross = series
    frame = ross.to_dataframe()
    assert len(frame) == ross.sizes["time"] == 3, "time_bounds(time, nv) doubled every row"
    assert int(frame.n_segments.sum()) == int(grid.n_segments.sum())
    assert list(frame.columns) == ["n_segments", "mean_fb", "std_fb", "mean_seg_length", "n_cells"]
    assert frame.index.name == "time"


def test_hvplot_draws_a_series_as_it_is(series):
    import holoviews as hv
    import hvplot.pandas
    import hvplot.xarray  # noqa: F401

    _, ross = series
    assert isinstance(ross.mean_fb.hvplot(), hv.Curve)
    assert isinstance(ross.hvplot(y=["mean_fb", "std_fb"]), hv.NdOverlay)
    curve = ross.to_dataframe().hvplot(y="n_segments")
    np.testing.assert_array_equal(curve.dimension_values("n_segments"), ross.n_segments.values)
