"""`make demo` as README tells it: the example app goes live, and in the demo's
clone "edit, commit, git push" redeploys with no more setup."""
import os
import subprocess
import urllib.request

import pytest

from conftest import ROOT

pytestmark = pytest.mark.emperor


def test_make_demo_then_edit_commit_push_redeploys(world):
    demo = os.path.join(world, "demo")
    user = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "GIT_"))}
    user["HOME"] = world    # a user with no git configuration of their own
    try:
        started = subprocess.run(["make", "-s", "-C", ROOT, "demo", f"DEMO_DIR={demo}"],
                                 capture_output=True, text=True, timeout=300, env=user)
        assert started.returncode == 0, started.stdout + started.stderr
        url = [line.split(" is live at ")[1].split()[0] for line in started.stdout.splitlines()
               if " is live at " in line][0]
        assert "Hello from uwsgi-deploy's example app" in urllib.request.urlopen(url, timeout=10).read().decode()

        source = os.path.join(demo, "example-src")
        hello = os.path.join(source, "hello.py")
        with open(hello) as stream:
            text = stream.read()
        with open(hello, "w") as stream:
            stream.write(text.replace("from uwsgi-deploy's example app", "from an edited example"))
        git = ["git", "-c", "user.name=me", "-c", "user.email=me@localhost"]
        subprocess.run(git + ["commit", "-q", "-am", "edit"], cwd=source, check=True, env=user)
        push = subprocess.run(["git", "push"], cwd=source, capture_output=True, text=True, timeout=300, env=user)
        assert push.returncode == 0, push.stderr
        assert " is live: serving " in push.stderr
        assert "Hello from an edited example" in urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        subprocess.run(["make", "-s", "-C", ROOT, "demo-stop", f"DEMO_DIR={demo}"], capture_output=True,
                       timeout=120, env=user)
