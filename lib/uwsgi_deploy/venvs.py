"""Dependency environments shared by versions: ~/venvs/<key> (DEPLOY_VENVS_DIR).

An environment is built once per key (venv_key.py) in a hidden temporary
directory, renamed into place, and never changed afterwards. A version points
at its environment with a `.venv` symlink in its deploy directory (where
uwsgi.ini is), so `virtualenv = %(chdir)/.venv` runs it and a rollback gets
exactly the packages the version was deployed with.

Locks (flock on ~/venvs/.<key>.lock): a deploy holds the key's lock shared
while it finds the environment and links it, exclusively while it builds it;
deploy-cleanup takes it exclusively, without waiting, before it removes an
environment. So two deploys needing a new key build it once, and cleanup
never removes an environment a deploy is about to link. A build killed
halfway leaves only a hidden .tmp-<key>-<pid> directory, which no version
uses and the next build of that key (or deploy-cleanup) removes."""
import contextlib
import os
import re
import shutil
import stat
import sys
import time

from . import DeployError
from .checkout import deploy_dir
from .files import read_text
from .installers import finish, make_installer
from .inventory import apps_on_disk, versions_on_disk
from .layout import (VENV_LOCK, VENV_NAME, App, venv_build_temporary, venv_lock, venv_removal_temporary,
                     venv_temporary_key)
from .links import remove_if_exists, switch_symlink
from .lock import DeployLock
from .settings import load
from .setup_script import run_streaming
from .venv_key import REQUIREMENTS_FILE, embedded_interpreter, environment_key, read_requirement_files

LINK_NAME = ".venv"
USES_VENV = re.compile(r"^\s*(virtualenv|venv|home|pyhome)\s*[=:]", re.M)


def _print(text):
    print(text, flush=True)


def deploy_venv(directory, requirements=None, constraints=(), print_key=False, environ=None):
    """deploy-venv: provide() for directory, or only print its key."""
    environ = os.environ if environ is None else environ
    if not os.path.isdir(directory):
        raise DeployError(f"{directory}: no such directory")
    settings = load(environ)
    if print_key:
        print(Request(settings, directory, requirements, constraints, environ).key)
        return
    provide(settings, directory, requirements, constraints or (), environ)


class Request:
    """The environment directory's requirement files call for: its key, and
    how to build it."""

    def __init__(self, settings, directory, requirements, constraints, environ):
        self.settings, self.directory = settings, directory
        if requirements is None:
            found = os.path.exists(os.path.join(directory, REQUIREMENTS_FILE))
            requirements = [REQUIREMENTS_FILE] if found else []
        self.files = read_requirement_files(requirements, constraints, directory)
        self.interpreter = embedded_interpreter(environ)
        self.installer = make_installer(settings.venv_installer, self.interpreter, environ)
        self.key = environment_key(self.interpreter, self.installer.identity, self.files)

    def build(self, temporary, final, output, say, warn, on_point):
        """Install into temporary, ready to be renamed to final; says where the
        time went. on_point("venv-install") is called between the installer's
        steps (see provide)."""
        installer, key = self.installer, self.key
        names = ", ".join(os.path.relpath(f.path, self.directory) for f in self.files if f.top)
        say(f"environment {key}: building with {installer.identity} for Python "
            f"{self.interpreter.version} ({names or 'no requirements'})")
        phases = []
        for number, (what, argv) in enumerate(installer.steps(temporary, self.files, prompt=key)):
            if number:
                on_point("venv-install")
            started = time.monotonic()
            run_streaming(argv, os.path.dirname(temporary), installer.environ, self.settings.setup_timeout,
                          output, what)
            phases.append((what, time.monotonic() - started))
        started = time.monotonic()
        finish(temporary, final, self.settings.setup_timeout, output, warn)
        phases.append(("compile", time.monotonic() - started))
        own, shared = disk_usage(temporary)
        say(f"environment {key}: built in {sum(s for _, s in phases):.1f} s "
            f"({', '.join(f'{what} {seconds:.2f} s' for what, seconds in phases)}; "
            f"{megabytes(own)} MB, {megabytes(shared)} MB more shared with {installer.name}'s cache)")


def provide(settings, directory, requirements=None, constraints=(), environ=None, output=None,
            say=_print, warn=_print, holder="deploy-venv", check_ini=False, on_point=None):
    """Give the version in directory its environment: reuse the one its key
    names, or build it; then point directory/.venv at it. Returns the key.
    requirements: files relative to directory (default: requirements.txt if
    there is one; none means an environment with no packages). on_point, the
    pipeline's on_stage, is called within a build: "venv-install" once the
    venv exists and before packages are installed, "venv-rename" once all is
    built and before the rename into place."""
    on_point = on_point or (lambda point: None)
    environ = dict(os.environ if environ is None else environ)
    output = output or (lambda: sys.stdout.buffer)
    request = Request(settings, directory, requirements, constraints, environ)
    link = os.path.join(directory, LINK_NAME)
    if os.path.isdir(link) and not os.path.islink(link):
        raise DeployError(f"{link} is a directory: take .venv out of the repository "
                          "(the version's environment is linked there)")

    def build(temporary, final):
        request.build(temporary, final, output, say, warn, on_point)
        on_point("venv-rename")

    with Store(settings).environment(request.key, build, say, holder) as path:
        switch_symlink(link, path)
    say(f"{os.path.relpath(link, directory)} -> {path}")
    if check_ini:
        hint_ini(directory, warn)
    return request.key


def hint_ini(directory, warn):
    """A uwsgi.ini that never mentions a virtualenv will not see the packages."""
    try:
        text = read_text(os.path.join(directory, "uwsgi.ini"))
    except DeployError:
        return   # the expand stage says what is wrong with it
    if not USES_VENV.search(text):
        warn(f"uwsgi.ini sets no virtualenv: add `virtualenv = %(chdir)/{LINK_NAME}` "
             "so the app imports the environment's packages")


class Store:
    """The environments directory and its per-key locks."""

    def __init__(self, settings):
        self.settings = settings
        self.root = settings.venvs_dir

    def path(self, key):
        return os.path.join(self.root, key)

    def lock_path(self, key):
        return venv_lock(self.root, key)

    def lock(self, key, holder, say=None, shared=False, timeout=None):
        return DeployLock(self.lock_path(key), self.settings.setup_timeout if timeout is None else timeout,
                          holder, say, shared=shared,
                          waiting=f"waiting for another deploy building environment {key}")

    @contextlib.contextmanager
    def environment(self, key, build, say, holder):
        """`with store.environment(...) as path:` the environment key names
        exists at path (built by build(temporary, final) if it did not), and
        stays until the block ends: a cleanup waits for the lock."""
        final = self.path(key)
        os.makedirs(self.root, exist_ok=True)
        with self.lock(key, holder, say, shared=True):
            if os.path.isdir(final):
                say(f"environment {key}: reused, no installer run")
                yield final
                return
        with self.lock(key, holder, say):
            if os.path.isdir(final):
                say(f"environment {key}: built by another deploy meanwhile; reused, no installer run")
                yield final
                return
            self.remove_temporaries(key, say)
            temporary = venv_build_temporary(self.root, key)
            try:
                build(temporary, final)
                self.rename_into_place(temporary, final, say)
            finally:
                if os.path.lexists(temporary):
                    shutil.rmtree(temporary, ignore_errors=True)
            yield final

    @staticmethod
    def rename_into_place(temporary, final, say):
        try:
            os.rename(temporary, final)
        except OSError:
            # only if a lock file was replaced under us (cleanup): same key, same contents
            if not os.path.isdir(final):
                raise
            say(f"environment {os.path.basename(final)}: built by another deploy meanwhile; using it")

    def remove_temporaries(self, key, say):
        """Hidden build directories of key; the caller holds key's lock."""
        for name in sorted(os.listdir(self.root)):
            if venv_temporary_key(name) == key:
                say(f"removing {name}, left by an interrupted build")
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)


# -- what versions use, and what cleanup may remove ---------------------------

def version_environment(settings, workdir):
    """The key of the environment the version in workdir links, or None."""
    directories = [workdir]
    try:
        directories.insert(0, deploy_dir(workdir))
    except DeployError:
        pass
    for directory in directories:
        try:
            target = os.readlink(os.path.join(directory, LINK_NAME))
        except OSError:
            continue
        target = os.path.normpath(os.path.join(directory, target))
        if os.path.dirname(target) == os.path.normpath(settings.venvs_dir):
            return os.path.basename(target)
    return None


def environment_users(settings, leaving=()):
    """{key: [version names]} for every version of every app on disk, except
    the versions in leaving (those a cleanup removes)."""
    users = {}
    for name in apps_on_disk(settings):
        for version in versions_on_disk(App(settings, name)):
            if version in leaving:
                continue
            key = version_environment(settings, version.workdir)
            if key:
                users.setdefault(key, []).append(version.name)
    return users


def disk_usage(path):
    """(bytes removing path frees, bytes that stay because its files are also
    hard-linked elsewhere, e.g. in uv's cache, which uv links from)."""
    seen, blocks, links = {}, {}, {}

    def count(full):
        try:
            info = os.lstat(full)
        except OSError:
            return
        ident = (info.st_dev, info.st_ino)
        seen[ident] = seen.get(ident, 0) + 1
        blocks[ident] = info.st_blocks * 512
        links[ident] = 1 if stat.S_ISDIR(info.st_mode) else info.st_nlink

    count(path)
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            count(os.path.join(top, name))
    own = sum(size for ident, size in blocks.items() if seen[ident] >= links[ident])
    return own, sum(blocks.values()) - own


def megabytes(size):
    return f"{size / 1e6:.1f}"


def clean_environments(settings, leaving=(), dry_run=False, say=_print):
    """Remove environments no version on disk uses (apart from those in
    leaving), half builds of interrupted deploys, and their locks; never one a
    deploy holds the lock of. Returns the bytes freed."""
    store = Store(settings)
    if not os.path.isdir(store.root):
        return 0
    users = environment_users(settings, leaving)
    verb = "would remove" if dry_run else "removed"
    freed, removed = 0, 0
    for name in sorted(os.listdir(store.root)):
        path = os.path.join(store.root, name)
        temporary = venv_temporary_key(name)
        if not (VENV_NAME.match(name) or temporary) or not os.path.isdir(path) or os.path.islink(path):
            continue
        key = temporary or name
        if not temporary and key in users:
            say(f"kept venv {key}: used by {', '.join(sorted(users[key]))}")
            continue
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(store.lock(key, "deploy-cleanup", timeout=0))
            except DeployError:
                say(f"kept {'venvs/' + name if temporary else 'venv ' + key}: a deploy is "
                    f"{'building' if temporary else 'using'} it right now")
                continue
            if not temporary and key in environment_users(settings, leaving):
                say(f"kept venv {key}: a deploy has just linked it")   # between our two looks
                continue
            own, shared = disk_usage(path)
            what = (f"venvs/{name}: half-built by an interrupted deploy" if temporary
                    else f"venv {key}: no version on disk uses it")
            kept = f"; {megabytes(shared)} MB stay in the installer's cache" if shared >= 1e5 else ""
            say(f"{verb} {what} ({megabytes(own)} MB{'' if dry_run else ' freed'}{kept})")
            freed, removed = freed + own, removed + 1
            if not dry_run:
                _remove_tree(store, name, key)
                if not temporary:
                    remove_if_exists(store.lock_path(key))
    if not dry_run:
        _remove_idle_locks(store)
    if removed:
        say(f"venvs: {'would free' if dry_run else 'freed'} {megabytes(freed)} MB "
            f"({removed} director{'y' if removed == 1 else 'ies'})")
    return freed


def _remove_idle_locks(store):
    """Lock files of keys with neither an environment nor a build left."""
    names = os.listdir(store.root)
    building = set(filter(None, map(venv_temporary_key, names)))
    for match in filter(None, map(VENV_LOCK.match, names)):
        key = match.group("key")
        if key in building or os.path.exists(store.path(key)):
            continue
        try:
            with store.lock(key, "deploy-cleanup", timeout=0):
                remove_if_exists(store.lock_path(key))
        except DeployError:
            pass   # a deploy is about to build it


def _remove_tree(store, name, key):
    """Renamed first, so the key disappears at once; a crash halfway leaves a
    hidden directory the next cleanup removes."""
    path = os.path.join(store.root, name)
    hidden = path if name.startswith(".") else venv_removal_temporary(store.root, key)
    try:
        if hidden != path:
            os.rename(path, hidden)
        shutil.rmtree(hidden)
    except OSError as err:
        raise DeployError(f"cannot remove {path}: {err.filename}: {err.strerror}") from None
