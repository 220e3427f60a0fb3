"""Damaged granules are never read silently wrong: seeded mutations judged in worker processes.

Each mutated copy must give the original values, what h5py reads from it, or a named is2grid error
(tests/fuzzing.py says how cases are made and judged; ``python tests/fuzzing.py GRANULE N`` runs more).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from . import fuzzing
from .conftest import REAL_VALID

CASES = 150


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mutated_granules_read_right_or_fail_by_name(south):
    sources = {str(REAL_VALID): 20261128, str(south): 7}
    cases = [(src, *m) for src, seed in sources.items() for m in fuzzing.mutations(Path(src), CASES, seed)]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter per worker, as a user's would be
    findings = []
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        futures = [(case, pool.submit(fuzzing.judge, *case)) for case in cases]
        for case, future in futures:
            verdict = future.result(timeout=120)  # a hang is a finding too: the test fails here
            if not verdict.startswith("ok"):
                findings.append((case[1:], verdict))
    assert not findings, f"{len(findings)} of {len(cases)} mutations read wrong or failed unnamed: {findings[:5]}"
