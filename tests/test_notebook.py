"""The quickstart notebook's code cells run in order (on a small synthetic month)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import matplotlib

from is2grid import tutorial


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setattr(tutorial, "sample_month", partial(tutorial.sample_month, tmp_path, n_segments=300))
    notebook = json.loads((Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), "quickstart.ipynb", "exec"), namespace)
    assert int(namespace["month"].n_segments.sum()) > 0
