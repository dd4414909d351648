"""The checkout into the content store, on a local repository (no Emperor):
crafted trees are refused without writing through them, the size limit
counts what the tree checks out to, progress is reported, and cleanup's
collection frees only what no version uses."""
import os
import subprocess

import pytest

from uwsgi_deploy import DeployError, checkout
from uwsgi_deploy.checkout import export_tree
from uwsgi_deploy.layout import App
from uwsgi_deploy.settings import load
from uwsgi_deploy.store import ContentStore, collect


def git(repo, *args, input=None):
    return subprocess.run(["git", "-C", repo, *args], input=input, capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    path = str(tmp_path / "repo.git")
    subprocess.run(["git", "init", "-q", "--bare", path], check=True)
    return path


@pytest.fixture
def app(tmp_path):
    home = tmp_path / "h"
    home.mkdir()
    return App(load({"HOME": str(home)}), "app")


def blob(repo, text):
    return git(repo, "hash-object", "-w", "--stdin", input=text)


def commit_of(repo, listing):
    tree = git(repo, "mktree", input=listing)
    return git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit-tree", tree, "-m", "x")


def hidden(app):
    return [n for n in os.listdir(app.settings.home) if n.startswith(".")]


@pytest.mark.parametrize("listing, why", [
    ("100644 blob {b}\t..\n", "not plain"),
    ("100644 blob {b}\ta\n100644 blob {b}\ta\n", "File exists"),
    ("120000 blob {b}\ta\n040000 tree {t}\ta\n", "File exists"),     # a link, then a directory of that name
    ("040000 tree {t}\ta\n120000 blob {b}\ta\n", "File exists"),
])
def test_a_crafted_tree_is_refused_and_nothing_is_left(repo, app, tmp_path, listing, why):
    b = blob(repo, str(tmp_path))      # as a link's target: the test's directory
    t = git(repo, "mktree", input=f"100644 blob {b}\tx\n")
    commit = commit_of(repo, listing.format(b=b, t=t))
    with pytest.raises(DeployError, match=why):
        export_tree(repo, commit, app.version(commit))
    assert hidden(app) == [] and not os.path.exists(app.version(commit).workdir)
    assert sorted(os.listdir(tmp_path)) == ["h", "repo.git"]     # nothing written through the link
    assert os.listdir(app.store_dir) in ([], [b[:2]])


def test_the_limit_counts_every_name_of_a_blob(repo, app):
    zero = git(repo, "hash-object", "-w", "--stdin", input="\0" * (1024 * 1024))
    commit = commit_of(repo, "".join(f"100644 blob {zero}\tz{n}\n" for n in range(5)))
    with pytest.raises(DeployError, match=r"checks out to 5 MiB in 5 files, over DEPLOY_CHECKOUT_MAX_MB \(4 MiB\)"):
        export_tree(repo, commit, app.version(commit), max_mb=4)
    assert not os.path.exists(app.store_dir) and hidden(app) == []
    export_tree(repo, commit, app.version(commit), max_mb=5)
    inodes = {os.stat(os.path.join(app.version(commit).workdir, f"z{n}")).st_ino for n in range(5)}
    assert len(inodes) == 1      # one content, stored once


def test_progress_lines_then_what_was_linked_and_written(repo, app, monkeypatch):
    monkeypatch.setattr(checkout, "PROGRESS_EVERY", 0)
    files = git(repo, "mktree", input="".join(f"100644 blob {blob(repo, f'file {n}')}\tf{n}\n" for n in range(3)))
    listing = f"040000 tree {files}\tdir\n"
    commit = commit_of(repo, listing)
    lines = []
    export_tree(repo, commit, app.version(commit), say=lines.append)
    assert lines[:2] == ["stored 1 of 3 new files, 0.0 of 0.0 MiB (0 s)", "stored 2 of 3 new files, 0.0 of 0.0 MiB (0 s)"]
    assert lines[2] == f"3 files: 0 already stored, 3 new (0.0 MiB written to {app.store_dir})"
    second = commit_of(repo, listing + f"100644 blob {blob(repo, 'new')}\tnew\n")
    lines.clear()
    export_tree(repo, second, app.version(second), say=lines.append)
    assert lines == [f"4 files: 3 already stored, 1 new (0.0 MiB written to {app.store_dir})"]


def test_collect_frees_only_what_no_version_uses(repo, app):
    shared, own = blob(repo, "shared" * 1000), blob(repo, "own" * 1000)
    first = commit_of(repo, f"100644 blob {shared}\ts\n100644 blob {own}\to\n")
    second = commit_of(repo, f"100644 blob {shared}\ts\n")
    for commit in (first, second):
        export_tree(repo, commit, app.version(commit))
    store = ContentStore(app.store_dir)
    assert collect(store, dry_run=True) == (0, 0)
    subprocess.run(["rm", "-rf", app.version(first).workdir], check=True)
    files, freed = collect(store)
    assert files == 1 and freed == 4096
    assert os.path.exists(os.path.join(app.store_dir, shared[:2], shared[2:]))
    assert not os.path.exists(os.path.join(app.store_dir, own[:2], own[2:]))
