"""One direction of dependencies: no import cycle among the library's
modules (dev/imports.py), and the tools that only read do not load the
deploy pipeline."""
import subprocess
import sys

from imports import ROOT, cycles, import_graph


def test_the_library_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_a_cycle_is_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_reading_tools_do_not_load_the_pipeline():
    for tool in ("deploy-logs", "deploy-config", "deploy-status", "deploy-cleanup", "deploy-venv"):
        code = ("import runpy, sys; sys.argv = [%r, '--help']\n"
                "try:\n    runpy.run_path(%r, run_name='__main__')\n"
                "except SystemExit:\n    pass\n"
                "print(sorted(m for m in sys.modules if m.startswith('uwsgi_deploy.')))") % (
                    tool, f"{ROOT}/bin/{tool}")
        loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert "uwsgi_deploy.pipeline" not in loaded and "uwsgi_deploy.emperor" not in loaded, (tool, loaded)
