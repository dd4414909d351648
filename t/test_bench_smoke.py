"""bench/deploy still runs end to end (tiny counts; its figures are not judged
here, only that it measured them and that no deploy lost a request)."""
import json
import os
import subprocess

from conftest import ROOT


def test_quick_benchmark_runs_and_reports(world):
    out = os.path.join(world, "bench.json")
    result = subprocess.run([os.path.join(ROOT, "bench", "deploy"), "--quick", "--json", out],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    for heading in ("push wall time over 2 pushes", "reconfigure", "floor:", "uwsgi-deploy pushes",
                    "in-place reload", "scaling:"):
        assert heading in result.stdout
    figures = json.load(open(out))
    assert figures["speed"]["wall"]["median"] > 0
    assert set(figures["speed"]["stages"]) >= {"checkout", "probe", "reconfigure", "switch", "retire"}
    deploys = figures["deploys"]
    assert deploys["requests"] > 0 and deploys["deploys"] == 2
    assert (deploys["non_2xx"], deploys["socket_errors"], deploys["slow_failures"]) == (0, 0, 0)
    assert figures["baseline"]["requests"] > 0
