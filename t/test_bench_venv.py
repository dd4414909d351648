"""bench/venv runs end to end against the real registry (PyPI): uv and pip
build the Flask + SQLAlchemy example, and it is pushed, served and measured.
Its figures are not judged here, only that it measured them, that unchanged
requirements ran no installer, and that each push served the app."""
import json
import os
import subprocess

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.emperor, pytest.mark.network]


def test_quick_venv_benchmark_runs_and_reports(world):
    out = os.path.join(world, "bench.json")
    result = subprocess.run([os.path.join(ROOT, "bench", "venv"), "--quick", "--json", out],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for heading in ("installers:", "pushes of share/example-flask", "unchanged requirements (5 pushes)",
                    "changed requirements, warm cache, uv", "disk (", "after 5 more pushes"):
        assert heading in result.stdout, result.stdout
    figures = json.load(open(out))
    for installer in ("uv", "pip"):
        for state in ("cold", "warm"):
            parts = figures["installers"][installer][state]
            assert parts["total"]["median"] >= parts["install"]["median"] > 0 and parts["compile"]["median"] > 0
    [pushes] = figures["pushes"].values()
    assert len(pushes["unchanged"]["setups"]) == 5 and len(pushes["changed_uv"]["walls"]) == 1
    assert "changed_pip" not in pushes      # a quick run pushes with uv only
    assert pushes["disk_after_5"]["home"] >= pushes["disk_first"]["home"] > pushes["disk_first"]["venvs_own"] > 0
