"""Many granules at once, the command line, quicklook maps and hvplot."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import xarray as xr

import is2grid
from is2grid import cli, tutorial, workflow
from is2grid.viz import plot


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    root = tmp_path_factory.mktemp("week")
    return [
        tutorial.write_granule(
            root, n_segments=800, rgt=100 + d, start=f"2019-09-{10 + d:02d}T03:00:00", sc_orient=d % 2, seed=d
        )
        for d in range(4)
    ]


def test_grid_granules_equals_gridding_the_concatenation(week):
    whole = xr.concat([xr.open_dataset(p, engine="atl10").load() for p in week], dim="segment", data_vars="minimal",
                      coords="minimal", compat="override", join="override")  # fmt: skip
    expected = whole.drop_dims("trajectory").is2grid.to_ease2(res=25000)
    got = workflow.grid_granules(week, res=25000, progress=False)
    xr.testing.assert_allclose(got.drop_vars("granule").drop_attrs(), expected.drop_attrs(), rtol=1e-9, atol=1e-7)
    names = [p.name for p in week]
    assert list(got.granule.values) == names and got.attrs["granule_count"] == len(week)
    assert (got.attrs["granule_first"], got.attrs["granule_last"]) == (names[0], names[-1])
    assert got.attrs["granule_list_sha256"] == hashlib.sha256("\n".join(names).encode()).hexdigest()
    assert got.time_bounds.shape == (got.sizes["time"], 2) and got.time.attrs["bounds"] == "time_bounds"
    assert (got.time_bounds[:, 1] - got.time_bounds[:, 0] == np.timedelta64(1, "D")).all()


def test_grid_granules_on_a_local_cluster(week):
    import distributed

    local = workflow.grid_granules(week, res=25000, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster, set_as_default=False) as client:
            remote = workflow.grid_granules(week, res=25000, progress=False, client=client)
    xr.testing.assert_allclose(remote, local, rtol=1e-9, atol=1e-7)


def test_grid_granules_errors(week, tmp_path):
    with pytest.raises(is2grid.GridError, match="no granules"):
        workflow.grid_granules([], progress=False)
    north = tutorial.write_granule(tmp_path, hemisphere="north", n_segments=200)
    with pytest.raises(is2grid.GridError, match="mix ATL10-01"):
        workflow.grid_granules([*week, north], progress=False)
    with pytest.raises(is2grid.GranuleNotFoundError):
        workflow.grid_granules([tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5"], progress=False)


def test_errors_skip_leaves_bad_granules_out_and_lists_them(week, tmp_path):
    missing = tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5"
    truncated = tmp_path / "ATL10-02_20190920101500_12990401_006_01.h5"
    truncated.write_bytes(week[1].read_bytes()[:200_000])
    with pytest.raises(is2grid.GranuleError, match=truncated.name):
        workflow.grid_granules([*week, truncated], res=25000, progress=False)
    with pytest.warns(is2grid.Is2gridWarning, match=rf"2 of {len(week) + 2} granules skipped") as caught:
        got = workflow.grid_granules([*week, missing, truncated], res=25000, progress=False, errors="skip")
    assert missing.name in str(caught[0].message) and truncated.name in str(caught[0].message)
    expected = workflow.grid_granules(week, res=25000, progress=False)
    xr.testing.assert_identical(got.drop_attrs(), expected.drop_attrs())  # skipped granules are not inputs
    assert got.attrs["granules_gridded"] == len(week)
    reasons = dict(line.split(": ", 1) for line in got.attrs["granules_skipped"].splitlines())
    assert set(reasons) == {missing.name, truncated.name}
    assert reasons[missing.name].startswith("GranuleNotFoundError")
    assert reasons[truncated.name].startswith(("CorruptGranuleError", "NotHDF5Error"))
    with pytest.raises(is2grid.GridError, match="errors='ignore'"):
        workflow.grid_granules(week, errors="ignore", progress=False)


def test_hemisphere_of_a_renamed_granule_comes_from_its_metadata(week, tmp_path):
    renamed = tmp_path / "my_granule.h5"
    renamed.write_bytes(week[0].read_bytes())
    assert xr.open_dataset(renamed, engine="atl10").attrs["hemisphere"] == "south"
    got = workflow.grid_granules([renamed], res=25000, progress=False)
    expected = workflow.grid_granules([week[0]], res=25000, progress=False)
    assert got.attrs["hemisphere"] == "south"
    xr.testing.assert_identical(got.drop_vars("granule").drop_attrs(), expected.drop_vars("granule").drop_attrs())
    assert cli.main(["grid", str(renamed), "--out", str(tmp_path / "r.nc"), "--res", "25000"]) == 0
    north = tutorial.write_granule(tmp_path, hemisphere="north", n_segments=200)
    (tmp_path / "renamed_north.h5").write_bytes(north.read_bytes())
    assert xr.open_dataset(tmp_path / "renamed_north.h5", engine="atl10").attrs["hemisphere"] == "north"


def test_transition_granules_contribute_nothing_quietly(week, synthetic):
    got = workflow.grid_granules([*week, synthetic["transition"]], res=25000, progress=False)
    assert int(got.n_segments.sum()) == int(workflow.grid_granules(week, res=25000, progress=False).n_segments.sum())


def test_netcdf_writer_compresses_and_round_trips(week, tmp_path):
    grid = workflow.grid_granules(week, res=12500, progress=False)
    path = workflow.write_netcdf(grid, tmp_path / "g.nc")
    back = xr.open_dataset(path)
    stored = grid.copy()
    for name in ("mean_seg_length", "mean_fb", "std_fb"):  # statistics are stored as float32
        stored[name] = grid[name].astype(np.float32)
    # the granule list as characters on n_granules (CF has no string coordinates), and a history line
    assert back.granule.dims == ("n_granules",) and back.granule.values.tolist() == grid.granule.values.tolist()
    assert back.attrs.pop("history").endswith("(is2grid.output.netcdf.write_netcdf)")
    xr.testing.assert_identical(back.drop_vars("granule").load(), stored.drop_vars("granule"))
    assert back.mean_fb.encoding["zlib"] is True


def test_cli_grid_and_info(week, tmp_path, capsys):
    out = tmp_path / "out.nc"
    assert (
        cli.main(["grid", *map(str, week), "--out", str(out), "--res", "25000", "--png", str(tmp_path / "m.png")]) == 0
    )
    printed = capsys.readouterr().out
    assert "NetCDF:" in printed and out.exists() and (tmp_path / "m.png").stat().st_size > 10_000
    assert cli.main(["info", str(week[0])]) == 0
    assert "valid beam_fb_height" in capsys.readouterr().out


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert (
        cli.main(
            ["grid", str(tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5"), "--out", str(tmp_path / "x.nc")]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["grid", "ATL10-02_20190915101500_12340401_006_01.h5", "--out", "x.nc", "--res", "7"]) == 2


def test_cli_demo_on_a_small_sample(tmp_path, capsys):
    code = cli.main(
        ["demo", "--out", str(tmp_path / "demo"), "--cache", str(tmp_path / "cache"), "--n-segments", "300"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    nc = next((tmp_path / "demo").glob("*EASE2_S*.nc"))
    png = next((tmp_path / "demo").glob("*EASE2_S*.png"))
    assert str(nc.resolve()) in printed and str(png.resolve()) in printed
    grid = xr.open_dataset(nc)
    assert grid.sizes["time"] == 30 and int(grid.n_segments.sum()) > 0
    grid.close()
    heights = xr.open_dataset(next((tmp_path / "demo").glob("*ATL07*.nc")))  # the ATL07 step
    assert heights.attrs["product"] == "ATL07" and int(heights.n_segments.sum()) > 0 and "mean_height" in heights
    heights.close()
    assert next((tmp_path / "demo").glob("*ATL07*_mean_height.png")).stat().st_size > 10_000
    with xr.open_dataset(next((tmp_path / "demo").glob("*thickness*.nc"))) as thick:  # the thickness step
        assert thick.mean_ice_thickness.attrs["units"] == "m" and float(thick.mean_ice_thickness.max()) > 0
    assert next((tmp_path / "demo").glob("*thickness*_mean_ice_thickness.png")).stat().st_size > 10_000
    again = ["demo", "--out", str(tmp_path / "demo"), "--cache", str(tmp_path / "cache"), "--n-segments", "300"]
    assert cli.main(again) == 0, "a second demo run replaces its own results"


def test_quicklook_draws_a_titled_map_with_units(week, tmp_path):
    grid = workflow.grid_granules(week, res=25000, progress=False)
    fig = plot.quicklook(grid, "mean_fb", path=tmp_path / "map.png")
    ax = fig.axes[0]
    assert "2019-09-10" in ax.get_title() and "freeboard" in ax.get_title()
    assert "(m)" in fig.axes[1].get_ylabel()
    assert len(ax.lines) > 50  # coastlines
    fig2 = plot.quicklook(grid, "n_segments", time_index=0)
    assert "bin starting 2019-09-10" in fig2.axes[0].get_title()


def test_hvplot_explores_a_result(week):
    import holoviews as hv
    import hvplot.xarray  # noqa: F401

    grid = workflow.grid_granules(week, res=25000, progress=False)
    image = grid.mean_fb.hvplot.image(x="x", y="y", groupby="time", cmap="viridis", data_aspect=1)
    rendered = hv.render(image, backend="bokeh")
    assert rendered is not None
    assert np.isfinite(grid.mean_fb).any()
