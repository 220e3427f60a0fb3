"""The command line never leaves a half-written or clobbered file, and stops cleanly on signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

import is2grid
from is2grid.cli import main

# The child grids a slowed-down copy of the work and says when it reached a stage, so that the
# test can send its signal there.
CHILD = textwrap.dedent(
    """
    import sys, time
    import xarray as xr
    from is2grid.grid import reduction
    from is2grid.cli import main

    stage = sys.argv[1]
    original_sums, original_write = reduction.cell_sums, xr.Dataset.to_netcdf

    def slow_sums(*args, **kwargs):
        if stage == "gridding":
            print("gridding", flush=True)
            time.sleep(30)
        return original_sums(*args, **kwargs)

    def slow_write(self, path, *args, **kwargs):
        out = original_write(self, path, *args, **kwargs)
        if stage == "writing":
            print("writing", flush=True)
            time.sleep(2)
        return out

    reduction.cell_sums = slow_sums
    xr.Dataset.to_netcdf = slow_write
    sys.exit(main(["grid", *sys.argv[3:], "--out", sys.argv[2], "--res", "25000"]))
    """
)


@pytest.mark.parametrize("stage", ["gridding", "writing"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly(tmp_path, south, stage, signum):
    out = tmp_path / "out.nc"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, stage, str(out), str(south)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while (line := child.stdout.readline().strip()) != stage:
            assert line, f"the child ended before {stage}"
        child.send_signal(signum)
        code = child.wait(timeout=60)
    finally:
        child.kill()
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    assert "stopped by" in child.stderr.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no output, no partial file"


def test_existing_output_needs_overwrite(tmp_path, south, capsys):
    out = tmp_path / "out.nc"
    out.write_text("precious")
    assert main(["grid", str(south), "--out", str(out), "--res", "25000"]) == 2
    assert "exists already" in capsys.readouterr().err and out.read_text() == "precious"
    assert main(["grid", str(south), "--out", str(out), "--res", "25000", "--overwrite"]) == 0
    assert out.read_bytes()[:4] == b"\x89HDF"


def test_output_is_never_an_input(tmp_path, south, capsys):
    import shutil

    copy = tmp_path / south.name
    shutil.copy(south, copy)
    before = copy.read_bytes()
    assert main(["grid", str(copy), "--out", str(copy), "--res", "25000", "--overwrite"]) == 2
    assert "input granules" in capsys.readouterr().err
    assert copy.read_bytes() == before


def test_output_folder_is_named_before_work(tmp_path, south, capsys, monkeypatch):
    import is2grid.grid.reduction
    import is2grid.workflow

    monkeypatch.setattr(is2grid.workflow, "grid_granules", lambda *a, **k: pytest.fail("worked before checking"))
    assert main(["grid", str(south), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--freq", "0D"], "longer than zero"),
        (["--freq", "fortnightly"], "not a pandas frequency"),
        (["--res", "7000"], "7000"),
        (["--bbox", "-78", "-180", "-74", "-160"], "bbox"),
        (["--bbox", "-180", "74", "-160", "78"], "other hemisphere"),
        (["--min-segments", "0"], "min_segments"),
        (["--fb-range", "2", "1"], "value_range"),
        (["--range", "2", "1"], "value_range"),
        (["--variable", "latitude"], "a coordinate"),
    ],
)
def test_bad_options_are_named_before_work(tmp_path, south, capsys, monkeypatch, flags, message):
    import is2grid.grid.reduction
    import is2grid.workflow

    monkeypatch.setattr(
        is2grid.grid.reduction, "cell_sums", lambda *a, **k: pytest.fail("read granules before checking")
    )
    assert main(["grid", str(south), "--out", str(tmp_path / "o.nc"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.nc").exists()


def test_all_fill_granules_give_a_described_empty_result(tmp_path, synthetic, capsys):
    out, png = tmp_path / "o.nc", tmp_path / "o.png"
    granule = synthetic["all-fill"]
    with pytest.warns(is2grid.Is2gridWarning, match="nothing was gridded"):
        code = main(["grid", str(granule), "--out", str(out), "--png", str(png), "--beams", "gt1r", "--res", "25000"])
    printed = capsys.readouterr().out
    assert code == 0 and out.exists() and not png.exists()
    assert "no valid segments" in printed


def test_errors_skip_on_the_command_line(tmp_path, south, capsys):
    missing = tmp_path / "ATL10-02_20190915101500_12340401_006_01.h5"
    out = tmp_path / "o.nc"
    with pytest.warns(is2grid.Is2gridWarning, match="1 of 2 granules skipped"):
        code = main(["grid", str(south), str(missing), "--out", str(out), "--res", "25000", "--errors", "skip"])
    printed = capsys.readouterr().out
    assert code == 0 and out.exists()
    assert "skipped 1 granules" in printed and missing.name in printed


def test_version_and_help_for_every_option(capsys):
    from is2grid import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"is2grid {__version__}"
    import argparse

    parser_actions = []
    original = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        parser_actions.extend((self.prog, a) for a in self._actions)
        for sub in (a for a in self._actions if isinstance(a, argparse._SubParsersAction)):
            for name, subparser in sub.choices.items():
                parser_actions.extend((f"{self.prog} {name}", a) for a in subparser._actions)
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            main(["info", "x.h5"])
    finally:
        argparse.ArgumentParser.parse_args = original
    undocumented = [
        f"{prog} {'/'.join(a.option_strings) or a.dest}"
        for prog, a in parser_actions
        if not a.help and not isinstance(a, argparse._SubParsersAction)
    ]
    assert not undocumented, undocumented


def test_an_output_folder_that_does_not_exist_is_named(tmp_path, south, capsys):
    """It was created silently."""
    for out in (tmp_path / "missing" / "a.nc", tmp_path / "missing" / "a.zarr"):
        assert main(["grid", str(south), "--out", str(out), "--res", "25000"]) == 2
        assert f"{out.parent}: no such folder" in capsys.readouterr().err and not out.parent.exists()


def test_warnings_are_printed_without_source_lines_and_a_resumed_run_says_what_was_in(tmp_path, synthetic):
    """As a user's terminal shows them: a child process, its stderr."""
    out = tmp_path / "s.zarr"
    granule = str(synthetic["south-backward"])
    run = "import sys; from is2grid.cli import main; sys.exit(main(sys.argv[1:]))"
    args = [sys.executable, "-c", run, "grid", granule, granule, "--out", str(out), "--res", "25000"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "is2grid: Is2gridWarning: 1 granule(s) appear twice" in first.stderr
    assert "warnings.warn(" not in first.stderr and ".py:" not in first.stderr, "no source lines"
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert "1 of 1 granules are in" in again.stderr and "0granule" not in again.stderr
