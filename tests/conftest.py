"""Shared fixtures: the two real sample granules and synthetic granules of every kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from is2grid import tutorial

DATA = Path(__file__).parent / "data"
REAL_VALID = DATA / "processed_ATL10-01_20220107195849_02531401_006_01.h5"
REAL_SPARSE = DATA / "processed_ATL10-01_20220106202428_02381401_006_01.h5"
REAL_GRANULES = [REAL_VALID, REAL_SPARSE]

SYNTHETIC_KINDS = {
    "south-backward": {"hemisphere": "south", "sc_orient": 0},
    "south-forward": {"hemisphere": "south", "sc_orient": 1, "rgt": 77},
    "north-backward": {"hemisphere": "north", "sc_orient": 0, "rgt": 300},
    "north-forward": {"hemisphere": "north", "sc_orient": 1, "rgt": 301},
    "transition": {"hemisphere": "south", "sc_orient": 2, "rgt": 500},
    "missing-beams": {"hemisphere": "south", "sc_orient": 0, "rgt": 600, "missing_beams": ("gt2l", "gt1r")},
    "all-fill": {"hemisphere": "north", "sc_orient": 1, "rgt": 700, "all_fill_beams": ("gt1r", "gt2r", "gt3r")},
}
SMALL = 2500


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synthetic")
    return {
        kind: tutorial.write_granule(_mkdir(root / kind), n_segments=SMALL, seed=3, **options)
        for kind, options in SYNTHETIC_KINDS.items()
    }


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.fixture
def no_network(monkeypatch):
    """No connection leaves the machine: sockets reach loopback only, as on a cluster node offline."""
    import socket

    connect = socket.socket.connect

    def local_only(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1"):
            raise OSError(f"network blocked in this test: {address}")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


@pytest.fixture(scope="session")
def sample_month(tmp_path_factory) -> list[Path]:
    """A synthetic month of 30 Antarctic granules, one a day (shared: written once per test run)."""
    return tutorial.sample_month(tmp_path_factory.mktemp("sample-month"), n_segments=1500)


@pytest.fixture(scope="session")
def south(synthetic) -> Path:
    return synthetic["south-backward"]


@pytest.fixture(params=[*REAL_GRANULES, *SYNTHETIC_KINDS], ids=lambda p: getattr(p, "name", p))
def any_granule(request, synthetic) -> Path:
    """Every real and synthetic sample granule, one at a time."""
    return synthetic[request.param] if isinstance(request.param, str) else request.param
