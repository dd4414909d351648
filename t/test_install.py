"""make install / uninstall: installed tools run on their own; uninstall
removes exactly what install wrote."""
import os
import subprocess

from conftest import ROOT


def tree(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, dirs, files in os.walk(path) for f in files + dirs)


def test_installed_tools_run_without_the_checkout_and_uninstall_is_exact(world):
    prefix = os.path.join(world, "home")
    os.makedirs(os.path.join(prefix, "bin"))
    mine = os.path.join(prefix, "bin", "my-own-tool")
    open(mine, "w").close()
    before = tree(prefix)
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"PREFIX={prefix}"], check=True,
                   capture_output=True)
    bare = {"PATH": "/usr/bin:/bin", "HOME": prefix}   # no venv, no PYTHONPATH
    for tool in sorted(os.listdir(os.path.join(ROOT, "bin"))):
        installed = os.path.join(prefix, "bin", tool)
        with open(installed) as stream:
            head = stream.read(200)
        assert head.startswith("#!/usr/bin/python3\n"), head
        assert "/lib/uwsgi-deploy" in open(installed).read()
        result = subprocess.run([installed, "--help"], capture_output=True, text=True, env=bare)
        assert result.returncode == 0 and "usage:" in result.stdout, (tool, result.stderr)
    result = subprocess.run([os.path.join(prefix, "bin", "probe-ping"), "--timeout", "0.2",
                             "http://127.0.0.1:9"], capture_output=True, text=True, env=bare)
    assert result.returncode == 1 and "refused" in result.stderr   # requests, vendored, works
    subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"PREFIX={prefix}"], check=True,
                   capture_output=True)
    assert tree(prefix) == before


def test_destdir_stages_under_destdir_only(world):
    stage = os.path.join(world, "stage")
    subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={stage}", "PREFIX=/srv/deploy"],
                   check=True, capture_output=True)
    assert os.path.exists(os.path.join(stage, "srv/deploy/bin/pre-receive"))
    with open(os.path.join(stage, "srv/deploy/bin/pre-receive")) as stream:
        assert '"/srv/deploy/lib/uwsgi-deploy"' in stream.read()   # paths of the final place
