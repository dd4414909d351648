"""A checkout beside the live version sizes only what changed since its
commit (tree.py), and still writes the pushed tree exactly: for renames,
deletions, mode changes, symlinks, a file turned directory and back, a
submodule, a push of an unrelated history. On a local repository, no
Emperor: each case checks the tree on disk against git's own listing and
the size against every file sized."""
import os
import stat
import subprocess

import pytest

from uwsgi_deploy import DeployError, tree
from uwsgi_deploy.checkout import export_tree
import test_checkout_store

MIB = 1024 * 1024
app = test_checkout_store.app     # the fixture: an App in a fresh home


def git(repo, *args, input=None):
    return subprocess.run(["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t", *args], input=input,
                          capture_output=True, check=True).stdout.decode().strip()


def write(repo, path, content, mode=0o644):
    full = os.path.join(repo, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as stream:
        stream.write(content)
    os.chmod(full, mode)


def commit(repo, message="x"):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def base(repo):
    """The first version: files in directories, an executable, a symlink."""
    write(repo, "app.py", b"print('v1')\n")
    write(repo, "setup", b"#!/bin/sh\n:\n", 0o755)
    for n in range(30):
        write(repo, f"static/d{n % 3}/f{n}.txt", f"file {n}\n".encode() * (n + 1))
    write(repo, "lib/mod.py", b"X = 1\n")
    os.symlink("static/d0/f0.txt", os.path.join(repo, "link"))
    return commit(repo, "base")


def rename(repo):
    os.renames(os.path.join(repo, "static/d1/f1.txt"), os.path.join(repo, "moved/f1.txt"))


def delete(repo):
    git(repo, "rm", "-q", "-r", "static/d2")


def make_executable(repo):
    os.chmod(os.path.join(repo, "app.py"), 0o755)
    os.chmod(os.path.join(repo, "setup"), 0o644)


def retarget_link(repo):
    os.unlink(os.path.join(repo, "link"))
    os.symlink("lib", os.path.join(repo, "link"))
    os.symlink("app.py", os.path.join(repo, "link2"))


def file_to_link(repo):
    os.unlink(os.path.join(repo, "app.py"))
    os.symlink("lib/mod.py", os.path.join(repo, "app.py"))


def file_to_directory(repo):
    git(repo, "rm", "-q", "lib/mod.py")
    write(repo, "lib/mod.py/__init__.py", b"X = 2\n")


def directory_to_file(repo):
    git(repo, "rm", "-q", "-r", "static/d0")
    write(repo, "static/d0", b"now a file\n")


def add_submodule(repo):
    """A gitlink, as a submodule leaves in the tree (its commit need not exist here)."""
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{'5' * 40},vendor/sub")


def one_line(repo):
    write(repo, "static/d0/f3.txt", b"one line changed\n")


def same_content_twice(repo):
    write(repo, "copy-of-f0.txt", open(os.path.join(repo, "static/d0/f0.txt"), "rb").read())


CHANGES = [one_line, rename, delete, make_executable, retarget_link, file_to_link, file_to_directory,
           directory_to_file, add_submodule, same_content_twice]


def in_git(repo, rev):
    """{path: (kind, executable, content)} of rev's tree, and its directories, from git."""
    found, dirs = {}, set()
    for record in subprocess.run(["git", "-C", repo, "ls-tree", "-r", "-z", rev], capture_output=True,
                                 check=True).stdout.split(b"\0"):
        if not record:
            continue
        meta, path = record.split(b"\t", 1)
        mode, kind, blob = meta.split()
        path = path.decode()
        parts = path.split("/")
        dirs.update("/".join(parts[:n]) for n in range(1, len(parts)))
        if kind == b"commit":
            dirs.add(path)
            continue
        content = subprocess.run(["git", "-C", repo, "cat-file", "blob", blob.decode()], capture_output=True,
                                 check=True).stdout
        found[path] = ("link" if mode == b"120000" else "file", mode == b"100755", content)
    return found, dirs


def on_disk(root):
    found, dirs = {}, set()
    for top, subdirs, files in os.walk(root):
        for name in subdirs + files:
            full = os.path.join(top, name)
            path = os.path.relpath(full, root)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                found[path] = ("link", False, os.fsencode(os.readlink(full)))
            elif stat.S_ISDIR(info.st_mode):
                dirs.add(path)
            else:
                with open(full, "rb") as stream:
                    found[path] = ("file", bool(info.st_mode & 0o100), stream.read())
    return found, dirs


@pytest.fixture
def repo(tmp_path):
    path = str(tmp_path / "src")
    os.makedirs(path)
    git(path, "init", "-q", "-b", "main")
    return path


@pytest.fixture
def live(repo, app):
    """The base version checked out: (git directory, its commit, its workdir)."""
    git_dir = os.path.join(repo, ".git")
    old = base(repo)
    export_tree(git_dir, old, app.version(old))
    return git_dir, old, app.version(old).workdir


@pytest.mark.parametrize("change", CHANGES, ids=[c.__name__ for c in CHANGES])
def test_a_checkout_beside_the_live_one_is_the_pushed_tree_sized_from_the_diff(repo, app, live, change):
    git_dir, old, live = live
    change(repo)
    new = commit(repo, change.__name__)
    listing = tree.list_tree(git_dir, new, previous=live)
    assert listing.how.endswith(f"changed since {old[:12]}"), listing.how     # not every file sized
    assert listing.total == tree.list_tree(git_dir, new).total                  # what sizing every file gives
    export_tree(git_dir, new, app.version(new), previous=live)
    assert on_disk(app.version(new).workdir) == in_git(repo, new)
    assert on_disk(live) == in_git(repo, old)        # the live version untouched
    assert tree.read_record(app.version(new).workdir) == (new, listing.total, listing.entries)


def test_a_push_of_an_unrelated_history(repo, app, live):
    git_dir, old, live = live
    git(repo, "checkout", "-q", "--orphan", "other")
    git(repo, "rm", "-q", "-r", "--cached", ".")
    for name in os.listdir(repo):
        if name != ".git":
            subprocess.run(["rm", "-rf", os.path.join(repo, name)], check=True)
    write(repo, "app.py", b"print('another history')\n")
    write(repo, "static/d0/f0.txt", b"file 0\n")          # one blob in common
    new = commit(repo, "unrelated")
    listing = tree.list_tree(git_dir, new, previous=live)
    assert listing.how.endswith(f"changed since {old[:12]}") and listing.total == len(b"print('another history')\n") + 7
    export_tree(git_dir, new, app.version(new), previous=live)
    assert on_disk(app.version(new).workdir) == in_git(repo, new)


def test_the_limit_holds_on_a_checkout_sized_from_the_diff(repo, app, live):
    git_dir, old, live = live
    for n in range(5):
        write(repo, f"big/z{n}", bytes(MIB))
    new = commit(repo, "five MiB more")
    old_total = tree.read_record(live)[1]
    entries = tree.read_record(live)[2] + 5
    with pytest.raises(DeployError, match=rf"checks out to 5 MiB in {entries} files, over DEPLOY_CHECKOUT_MAX_MB \(5 MiB\)"):
        export_tree(git_dir, new, app.version(new), max_mb=5, previous=live)
    assert not os.path.exists(app.version(new).workdir)
    assert tree.list_tree(git_dir, new, previous=live).total == old_total + 5 * MIB


@pytest.mark.parametrize("record", [None, "garbage", "{old} 10 1"])
def test_without_a_record_that_adds_up_every_file_is_sized(repo, app, live, record):
    """No record (a directory from before, a file system without user
    attributes), one that does not parse, one whose count of entries does not
    add up to the tree's: the whole tree is sized, the limit still holds."""
    git_dir, old, live = live
    if record is None:
        os.removexattr(live, tree.RECORD_ATTRIBUTE)
    else:
        os.setxattr(live, tree.RECORD_ATTRIBUTE, record.format(old=old).encode())
    one_line(repo)
    new = commit(repo)
    listing = tree.list_tree(git_dir, new, previous=live)
    assert listing.how == "every file sized" and listing.total == tree.list_tree(git_dir, new).total
    export_tree(git_dir, new, app.version(new), previous=live)
    assert on_disk(app.version(new).workdir) == in_git(repo, new)


def test_a_record_of_a_commit_git_no_longer_has(repo, live):
    git_dir, _old, live = live
    gone = "1" * 40
    total, entries = tree.read_record(live)[1:]
    os.setxattr(live, tree.RECORD_ATTRIBUTE, f"{gone} {total} {entries}".encode())
    one_line(repo)
    new = commit(repo)
    listing = tree.list_tree(git_dir, new, previous=live)
    assert listing.how == "every file sized" and listing.total == tree.list_tree(git_dir, new).total
