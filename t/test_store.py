"""Versions share what did not change (store.py): their files are hard links
into ~/APP.store, read-only, the directories their own; a rollback runs the
exact files; cleanup frees the bytes it reports; a kill -9 while content is
written leaves nothing linkable; a checkout bomb is refused before anything
is written; and the deploy account cannot write into a shared file."""
import hashlib
import json
import os
import re
import signal
import stat
import subprocess

import pytest

from accounts import create_deploy_account, install_toolkit, remove_account, run_checked
from conftest import must_fail, wait_until
from load import BUSY_INI, BusyLoad
from sandbox import Sandbox, process_ended

pytestmark = [pytest.mark.emperor, pytest.mark.xdist_group(__name__)]   # its module world, built once

ASSETS = 40     # unchanged files every version shares
MIB = 1024 * 1024


def blob_id(content):
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def tree_of(server, commit, repo=None):
    """{path: (mode, blob id)} of a commit's files, as git lists them."""
    out = server.git(repo or server.source_repo(), "ls-tree", "-r", "-z", "--full-tree", commit).stdout
    entries = {}
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        mode, _kind, blob = meta.split()
        entries[path] = (mode, blob)
    return entries


def files_of(workdir):
    """{path: (mode as git names it, blob id of the content)} of a version's files."""
    found = {}
    for top, dirs, files in os.walk(workdir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            path = os.path.join(top, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                mode, content = "120000", os.fsencode(os.readlink(path))
            else:
                mode = "100755" if info.st_mode & stat.S_IXUSR else "100644"
                with open(path, "rb") as stream:
                    content = stream.read()
            found[os.path.relpath(path, workdir)] = (mode, blob_id(content))
    return found


def store_files(server, app="app"):
    """{path in the store: content's blob id} of every stored file."""
    root = server.app(app).store_dir
    found = {}
    for top, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(top, name)
            with open(path, "rb") as stream:
                found[os.path.relpath(path, root)] = blob_id(stream.read())
    return found


def assert_store_sound(server, app="app"):
    """Every stored file holds the blob its name says: nothing half written
    under a blob's name (a temporary directory .tmp-PID is not a name)."""
    for name, content in store_files(server, app).items():
        if name.startswith(".tmp-"):
            continue
        fanout, rest = name.split("/")
        assert fanout + rest.removesuffix(".x") == content, f"{name} holds {content}"


def du(*paths):
    """Bytes on disk under paths, each inode once (coreutils du)."""
    paths = [p for p in paths if os.path.lexists(p)]
    out = subprocess.run(["du", "-s", "-c", "--block-size=1", *paths], capture_output=True, text=True, check=True)
    return int(out.stdout.splitlines()[-1].split()[0])


def assets(version):
    files = {f"static/img/{n:02d}.bin": f"image {n}\n" * 200 for n in range(ASSETS)}
    files.update({"static/changing.txt": f"changes with {version}\n", "bin/tool.sh": "#!/bin/sh\necho tool\n"})
    return files


@pytest.fixture(scope="module")
def six(stop_later):
    """One world: six pushed versions of an app with shared assets, an
    executable and a symlink (v1 oldest); built once for this file."""
    box = Sandbox()
    box.start_emperor()
    box.deploy_init("app")
    box.start_nginx(["app"])
    commits = []
    for number in range(1, 7):
        version = f"v{number}"
        files = assets(version)
        repo = box.source_repo()
        commits.append(box.commit_app(version, extra=dict(files, **{"uwsgi.ini": BUSY_INI})))
        if number == 1:
            os.chmod(os.path.join(repo, "bin/tool.sh"), 0o755)
            os.symlink("img/00.bin", os.path.join(repo, "static/latest"))
            commits[-1] = box.commit({})
        result = box.push()
        assert result.returncode == 0, result.stderr
    box.commits = commits
    yield box
    stop_later(box)


def workdir(server, commit):
    return server.app("app").version(commit).workdir


def test_versions_share_inodes_for_unchanged_files(six):
    dirs = [workdir(six, c) for c in six.commits]
    shared = [os.stat(os.path.join(d, "static/img/07.bin")) for d in dirs]
    assert len({(s.st_dev, s.st_ino) for s in shared}) == 1
    assert shared[0].st_nlink == len(dirs) + 1      # six versions and the store
    changed = {os.stat(os.path.join(d, "static/changing.txt")).st_ino for d in dirs}
    assert len(changed) == len(dirs)
    # read-only files; executables keep their x bit; links stay links
    assert stat.S_IMODE(shared[0].st_mode) & 0o222 == 0
    tool = os.stat(os.path.join(dirs[0], "bin/tool.sh"))
    assert tool.st_mode & stat.S_IXUSR and stat.S_IMODE(tool.st_mode) & 0o222 == 0
    assert os.readlink(os.path.join(dirs[0], "static/latest")) == "img/00.bin"
    # the directories are each version's own, and writable by it
    tops = [os.stat(os.path.join(d, "static")) for d in dirs]
    assert len({s.st_ino for s in tops}) == len(dirs)
    assert all(s.st_mode & stat.S_IWUSR for s in tops)
    # a one-file change wrote one file (and app.py) into the store, no more
    stored = store_files(six)
    assert len(stored) == ASSETS + 2 + 6 * 2     # assets, tool.sh, uwsgi.ini; each version's app.py, changing.txt
    assert_store_sound(six)


@pytest.mark.load
def test_a_rollback_to_five_pushes_ago_runs_its_exact_files(six):
    six.environ.pop("DEPLOY_WATCH", None)      # the default settings, under load
    first = six.commits[0]
    with BusyLoad(six, ["v6", "v1"]) as load:
        result = six.tool("deploy-version", "app", first[:8])
        assert result.returncode == 0, result.stderr
        load.settle()
    load.assert_nothing_lost()
    assert six.get("/").text == "v1"
    live = six.app("app").live_version()
    assert live.workdir == workdir(six, first)
    with open(live.vassal_ini) as stream:
        assert f"chdir = {live.workdir}\n" in stream.read()
    expected = tree_of(six, first)
    assert files_of(live.workdir) == expected


def test_status_shows_disk_and_cleanup_frees_the_bytes_it_reports(six):
    app = six.app("app")
    status = six.tool("deploy-status", "--json", "app")
    assert status.returncode == 0, status.stderr
    [facts] = json.loads(status.stdout)["apps"]
    dirs = [workdir(six, c) for c in six.commits]
    assert facts["disk"]["total"] == du(*dirs, app.store_dir)
    # what a version uses alone is what removing it alone would free
    middle = app.version(six.commits[2])
    assert facts["disk"]["alone"][middle.name] < 64 * 1024
    text = six.tool("deploy-status", "app").stdout
    assert re.search(r"^  disk      [\d.]+ [kM]B in all", text, re.M), text

    # keep 1: the live version and the previous one stay; four go, with
    # what only they used (their app.py and changing.txt)
    live = app.live_version()
    logs = [path for c in six.commits for path in (app.version(c).log, app.version(c).log_backup)
            if app.version(c) != live]    # the live one's log may still grow
    before = du(*dirs, app.store_dir, *logs)
    result = six.tool("deploy-cleanup", "1")
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("freed ")]
    reported = int(re.match(r"freed ([\d,]+) bytes on disk: ", line).group(1).replace(",", ""))
    after = du(*dirs, app.store_dir, *logs)
    assert before - after == reported, result.stdout
    # four changing.txt and app.py contents only v2..v5 used are gone from the store
    parts = re.fullmatch(r"freed [\d,]+ bytes on disk: ([\d,]+) in the removed app-<rev> directories and their "
                         r"logs, ([\d,]+) in 8 files of app.store no version left uses", line)
    assert parts and sum(int(p.replace(",", "")) for p in parts.groups()) == reported, line
    assert sum(os.path.isdir(d) for d in dirs) == 2
    assert_store_sound(six)
    assert files_of(workdir(six, six.commits[-1])) == tree_of(six, six.commits[-1])


def test_kill_9_while_content_is_stored_leaves_nothing_linkable(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    big = os.urandom(3 * MIB)
    with open(os.path.join(server.source_repo(), "a-big.bin"), "wb") as stream:
        stream.write(big)
    server.commit_app("v2")
    push = server.paused_push("store-write")
    pid = push.reached()
    temporaries = [n for n in os.listdir(server.app("app").store_dir) if n.startswith(".tmp-")]
    assert temporaries == [f".tmp-{pid}"]
    [half] = os.listdir(os.path.join(server.app("app").store_dir, temporaries[0]))
    assert 0 < os.path.getsize(os.path.join(server.app("app").store_dir, temporaries[0], half)) < len(big)
    os.kill(pid, signal.SIGKILL)
    status, output = push.finish()
    assert status != 0
    wait_until(lambda: process_ended(pid), 10, "the killed deploy to end")
    assert server.get("/").text == "v1"
    stored = {name for name in store_files(server) if not name.startswith(".tmp-")}
    assert not any(name.replace("/", "") == blob_id(big) for name in stored)   # nothing under its name
    assert_store_sound(server)
    # the next deploy removes what the dead one left, and stores it whole
    result = server.push()
    assert result.returncode == 0, result.stderr
    assert server.get("/").text == "v2"
    assert not [n for n in os.listdir(server.app("app").store_dir) if n.startswith(".tmp-")]
    live = server.app("app").live_version().workdir
    with open(os.path.join(live, "a-big.bin"), "rb") as stream:
        assert stream.read() == big
    assert_store_sound(server)


def test_a_checkout_bomb_is_refused_before_anything_is_written(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    repo = server.source_repo()
    # one 3 MiB zero blob named 1,000 times: a small pack, 2.9 GiB checked out
    zero = subprocess.run(["git", "-C", repo, "hash-object", "-w", "--stdin"], input=bytes(3 * MIB),
                          capture_output=True, check=True).stdout.decode().strip()
    listing = "".join(f"100644 blob {zero}\tz{n:04d}\n" for n in range(1000))
    bomb = subprocess.run(["git", "-C", repo, "mktree"], input=listing, capture_output=True, text=True,
                          check=True).stdout.strip()
    base = server.git(repo, "rev-parse", "HEAD^{tree}").stdout.strip()
    top = "".join(line + "\n" for line in server.git(repo, "ls-tree", base).stdout.splitlines())
    top += f"040000 tree {bomb}\tbomb\n"
    tree = subprocess.run(["git", "-C", repo, "mktree"], input=top, capture_output=True, text=True,
                          check=True).stdout.strip()
    commit = server.git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit-tree", tree, "-p", "HEAD",
                        "-m", "bomb").stdout.strip()
    server.git(repo, "update-ref", "refs/heads/main", commit)
    stored = store_files(server)
    result = server.push()
    must_fail(result, 1, f"remote:  !     checkout: {commit[:12]} checks out to 3,000 MiB in 1,002 files, "
              "over DEPLOY_CHECKOUT_MAX_MB (2,048 MiB); nothing was written")
    assert server.get("/").text == "v1"
    assert store_files(server) == stored
    assert not [n for n in os.listdir(server.home) if n.startswith(".app")]
    assert sorted(n for n in os.listdir(server.home) if n.startswith("app-")) == [f"app-{v1}"]


# -- as the deploy account, which file modes bind (root's are not) ----------

WRITER_APP = '''import errno, os

HERE = os.path.dirname(os.path.abspath(__file__))


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"pong"]
    answers = []
    try:
        with open(os.path.join(HERE, "shared.txt"), "r+b") as stream:
            stream.write(b"overwritten by " + VERSION.encode())
        answers.append("wrote shared.txt")
    except OSError as error:
        answers.append("shared.txt: " + errno.errorcode[error.errno])
    os.makedirs(os.path.join(HERE, "uploads"), exist_ok=True)
    with open(os.path.join(HERE, "uploads", "mine"), "w") as stream:
        stream.write(VERSION)
    answers.append("uploads/mine written")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(VERSION + ": " + ", ".join(answers)).encode()]

VERSION = "{version}"
'''
# What a setup may do: write new files, replace a checked-out file by rename
# (sed -i); not open a checked-out file for writing in place.
GOOD_SETUP = "#!/bin/sh\nset -e\necho generated > generated.txt\nsed -i s/plain/edited/ config.txt\n"
BAD_SETUP = "#!/bin/sh\nset -e\necho appended >> shared.txt\n"
ACCOUNT_INI = "[uwsgi]\nmaster = true\nprocesses = 1\nwsgi-file = app.py\n"


@pytest.mark.ssh
def test_the_deploy_account_cannot_write_into_a_shared_file(sandbox):
    account = create_deploy_account(sandbox)
    user = account.pw_name
    try:
        installed = install_toolkit(sandbox, account)
        sandbox.start_emperor(bin_dir=installed, user=user)
        run_checked("runuser", "-u", user, "--", os.path.join(installed, "deploy-init"), "app", env=sandbox.environ)
        sandbox.start_nginx(["app"])
        repo = sandbox.source_repo()
        os.chmod(sandbox.root, 0o755)

        def push(version, setup):
            commit = sandbox.commit({"app.py": WRITER_APP.replace("{version}", version), "uwsgi.ini": ACCOUNT_INI,
                                     "shared.txt": "the same in every version\n", "config.txt": "plain\n",
                                     "setup": setup})
            result = subprocess.run(["runuser", "-u", user, "--", "git", "-c", "safe.directory=*", "-C", repo,
                                     "push", "--force", os.path.join(sandbox.home, "app.git"), "main"],
                                    capture_output=True, text=True, env=sandbox.environ, timeout=300)
            return commit, result

        v1, result = push("v1", GOOD_SETUP)
        assert result.returncode == 0, result.stderr
        v2, result = push("v2", GOOD_SETUP)
        assert result.returncode == 0, result.stderr
        app = sandbox.app("app")
        one, two = (app.version(c).workdir for c in (v1, v2))
        shared = [os.stat(os.path.join(d, "shared.txt")) for d in (one, two)]
        assert shared[0].st_ino == shared[1].st_ino and shared[0].st_uid == account.pw_uid
        # the app, running as the account, cannot write into it; its own directory it can
        assert sandbox.get("/").text == "v2: shared.txt: EACCES, uploads/mine written"
        # nor can a shell of the account
        shell = subprocess.run(["runuser", "-u", user, "--", "sh", "-c", f"echo x >> {one}/shared.txt"],
                               capture_output=True, text=True)
        assert shell.returncode != 0 and "Permission denied" in shell.stderr
        for directory in (one, two):
            with open(os.path.join(directory, "shared.txt")) as stream:
                assert stream.read() == "the same in every version\n"
            # setup's writes stayed the version's own
            with open(os.path.join(directory, "config.txt")) as stream:
                assert stream.read() == "edited\n"
            assert os.path.exists(os.path.join(directory, "generated.txt"))
        plain = blob_id(b"plain\n")
        with open(os.path.join(app.store_dir, plain[:2], plain[2:])) as stream:
            assert stream.read() == "plain\n"
        # a setup that writes into a checked-out file in place is refused, and changed nothing
        _v3, result = push("v3", BAD_SETUP)
        assert result.returncode != 0
        assert "Permission denied" in result.stderr and "setup: " in result.stderr
        assert sandbox.get("/").text.startswith("v2: ")
        with open(os.path.join(two, "shared.txt")) as stream:
            assert stream.read() == "the same in every version\n"
    finally:
        sandbox.stop(remove=False)
        remove_account(account)


PY_APP = '''import helper, other


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("{version} " + helper.answer() + " " + str(other.X)).encode()]
'''


def test_unchanged_modules_reuse_the_compiled_python_of_the_version_before(sandbox):
    sandbox.environ.pop("PYTHONDONTWRITEBYTECODE", None)   # as on a server: imports compile
    sandbox.start_emperor()
    sandbox.deploy_init("app")
    sandbox.start_nginx(["app"])
    helper = "def answer():\n    return 'from helper'\n"
    dirs = []
    for version, x in (("v1", 1), ("v2", 2)):
        commit = sandbox.commit({"app.py": PY_APP.replace("{version}", version), "lib/helper.py": helper,
                                 "lib/other.py": f"X = {x}\n",
                                 "uwsgi.ini": "[uwsgi]\nmaster = true\nprocesses = 1\nwsgi-file = app.py\n"
                                              "pythonpath = %(chdir)/lib\n"})
        result = sandbox.push()
        assert result.returncode == 0, result.stderr
        dirs.append(sandbox.app("app").version(commit).workdir)
    assert sandbox.get("/").text == "v2 from helper 2"
    assert "2 compiled modules reused" not in result.stderr and "1 compiled modules reused" in result.stderr

    def compiled(directory, module):
        [name] = [n for n in os.listdir(os.path.join(directory, "lib/__pycache__")) if n.startswith(module + ".")]
        return os.stat(os.path.join(directory, "lib/__pycache__", name))
    # v1's helper.pyc serves v2 (Python found it current: it did not write another), read-only now;
    # other.py changed: v2 compiled its own
    assert compiled(dirs[0], "helper").st_ino == compiled(dirs[1], "helper").st_ino
    assert stat.S_IMODE(compiled(dirs[1], "helper").st_mode) & 0o222 == 0
    assert compiled(dirs[0], "other").st_ino != compiled(dirs[1], "other").st_ino
