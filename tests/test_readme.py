"""The README's first example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_example_runs(tmp_path, monkeypatch):
    text = (Path(__file__).parents[1] / "README.md").read_text()
    first = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    code = first.replace('"/tmp', f'"{tmp_path}')
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["grid"].mean_fb.attrs["units"] == "m"
    assert (tmp_path / "freeboard.nc").exists()
