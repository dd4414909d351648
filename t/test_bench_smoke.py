"""bench/deploy still runs end to end (tiny counts; its figures are not judged
here, only that it measured them and that no deploy lost a request, the
example app's nor share/example-flask's, whose environment it builds from PyPI)."""
import json
import os
import subprocess

import pytest

from conftest import ROOT

pytestmark = [pytest.mark.emperor, pytest.mark.load, pytest.mark.network]


def test_quick_benchmark_runs_and_reports(world):
    out = os.path.join(world, "bench.json")
    result = subprocess.run([os.path.join(ROOT, "bench", "deploy"), "--quick", "--json", out],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for heading in ("push wall time over 2 pushes", "reconfigure", "outside the stages", "floor:",
                    "after the push began", "pushes, default settings", "switch-backs, default settings",
                    "pushes, DEPLOY_WATCH=0", "in-place reloads", "share/example-flask", "scaling:"):
        assert heading in result.stdout
    figures = json.load(open(out))
    assert figures["speed"]["wall"]["median"] > 0
    assert set(figures["speed"]["stages"]) >= {"checkout", "probe", "switch", "retire"}
    assert "reconfigure" in figures["speed_http"]["stages"]
    assert 0 < figures["speed_default_watch"]["live_at"]["median"] < figures["speed_default_watch"]["wall"]["median"]
    for row, deploys in (("deploys", figures["deploys"]), ("switch_backs", figures["switch_backs"]),
                         ("deploys_watch_off", figures["deploys_watch_off"]), ("flask", figures["flask"]["deploys"])):
        assert deploys["requests"] > 0 and deploys["deploys"] == (1 if row == "switch_backs" else 2)
        assert (deploys["non_2xx"], deploys["socket_errors"], deploys["slow_failures"]) == (0, 0, 0), row
    assert figures["baseline"]["requests"] > 0
