"""Names and paths of an app's versions on the server (see README, "What is
on the server"). Every file the pipeline touches is named here,
temporary ones included, so recovery and cleanup match exactly what a deploy
of one app wrote and never another app's files."""
import glob
import os
import re
from dataclasses import dataclass, field

from . import DeployError
from .settings import SETTINGS

REV_LENGTH = 12
VERSION_NAME = re.compile(r"(?P<app>.+)-(?P<rev>[0-9a-f]{%d})\Z" % REV_LENGTH)
# What a version's vassal, sockets and log are named: APP-<rev>, or APP-<rev>.N
# for its N-th restart while live (a configuration change restarts it beside
# the running one, so the two need different names).
RUN_NAME = re.compile(r"(?P<version>.+-[0-9a-f]{%d})(?:\.(?P<run>[1-9][0-9]*))?\Z" % REV_LENGTH)
# No dots: every path of an app is its name, or its name followed by '-<rev>'
# or by '.', so no app's paths can equal or start another app's.
APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
MAX_APP_NAME = 64
# uWSGI refuses a unix socket name longer than 102 bytes ("invalid socket
# name"), below the kernel's 107 (t/test_hostile.py measures it on the binary).
MAX_SOCKET_PATH = 102
LOG_BACKUP_SUFFIX = ".1"   # the one older copy of a run's log (uwsgi_ini.log_cap_options)
# What follows a run's name (APP-<rev>[.N]) in ~/run and ~/log (see Version).
SOCKET_SUFFIXES = (".socket", ".stats")
LOG_SUFFIXES = (".log", ".log" + LOG_BACKUP_SUFFIX)
MAINTENANCE_SUFFIX = ".maintenance"   # APP.maintenance: the built-in vassal of maintenance.py
PREPARED_SUFFIX = ".prepared"   # ~/run/APP-<rev>.prepared: a candidate waiting for its commit
# Where a fleet deploy pushes the commit on every host: a ref that is not a
# branch, so the host's hook stores it and deploys nothing.
FLEET_REF = "refs/fleet/candidate"
FLEET_INVENTORY_SUFFIX = ".inventory"
STORE_SUFFIX = ".store"   # ~/APP.store, the app's content store (store.py)   # ~/APP.inventory, on a fleet's primary
# Entries of the deploy home that are not apps: the settings' directories and
# files under DEPLOY_HOME, what `make install` puts there (Makefile BINDIR,
# LIBDIR, SHAREDIR), git-shell's command directory and the dependency
# environments.
INSTALL_DIRS = ("bin", "lib", "share")
RESERVED_NAMES = frozenset(
    [s.default.split("/")[1] for s in SETTINGS if s.default.startswith("{home}/")]
    + list(INSTALL_DIRS) + ["git-shell-commands", "venvs"])


def create_directories(settings):
    """The directories the Emperor and every deploy need: vassals, run, log."""
    for directory in (settings.vassals_dir, settings.run_dir, settings.log_dir):
        os.makedirs(directory, exist_ok=True)


class TemporaryName:
    """A kind of temporary (or hidden) name, defined once: its template's
    {fields} are filled in to build a name (name) and replaced by patterns
    to recognise one (regex, match), so what a deploy writes and what
    recovery and cleanup match cannot drift apart. Field patterns given at
    construction are defaults; match() can narrow them (to one app's)."""

    def __init__(self, template, **fields):
        self.template, self.fields = template, fields

    def name(self, **values):
        return self.template.format(**values)

    def regex(self, **fields):
        fields = dict(self.fields, **fields)
        parts = re.split(r"\{(\w+)\}", self.template)   # text, field, text, field, ..., text
        return re.compile("".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>{fields[part]})"
                                  for i, part in enumerate(parts)) + r"\Z")

    def match(self, text, /, **fields):
        return self.regex(**fields).match(text)


PID = r"[0-9]+"
# links.switch_symlink: the fresh symlink renamed over a link (~/APP, ~/run/APP.socket)
TEMPORARY_LINK = TemporaryName("{link}.{pid}.new", pid=PID)
# what a file is written as before it is renamed to NAME: a hidden name the
# Emperor ignores, .NAME.tmp (vassal.write_vassal_ini), or .NAME.tmp-PID
# where writers may race (config.write_private)
HIDDEN_TEMPORARY = TemporaryName(".{name}.tmp")
HIDDEN_TEMPORARY_PID = TemporaryName(".{name}.tmp-{pid}", pid=PID)
# in the deploy home, beside ~/APP-<rev>: a checkout being extracted, its
# archive, a version being removed (deploy-cleanup)
CHECKOUT_TEMPORARY = TemporaryName(".{version}.tmp-{pid}", pid=PID)
CHECKOUT_ARCHIVE = TemporaryName(".{version}.tmp-{pid}.tar", pid=PID)
VERSION_REMOVAL = TemporaryName(".{version}.tmp-cleanup-{pid}", pid=PID)


def temporary_link(link, pid=None):
    """The fresh symlink renamed over `link` (links.switch_symlink)."""
    return TEMPORARY_LINK.name(link=link, pid=os.getpid() if pid is None else pid)


def hidden_temporary(path, pid=None):
    """What a file is written as before it is renamed to `path` (see
    HIDDEN_TEMPORARY), with pid: .NAME.tmp-PID."""
    directory, name = os.path.split(path)
    if pid is None:
        return os.path.join(directory, HIDDEN_TEMPORARY.name(name=name))
    return os.path.join(directory, HIDDEN_TEMPORARY_PID.name(name=name, pid=pid))


def hidden_temporaries(path):
    """A glob for every .NAME.tmp-PID of path."""
    return glob.escape(hidden_temporary(path, "")) + "*"


def rewritten_temporary(path):
    """What installers.finish writes a fixed-up file of a venv being built
    as, before renaming it over the file (inside the hidden build directory)."""
    return path + ".fixup"


# Dependency environments (venvs.py): ~/venvs/<key>, built in a hidden
# directory and renamed into place, removed the same way, one lock per key.
VENV_KEY_LENGTH = 20    # hex digits of the key's sha256 (venv_key.py): 80 bits
VENV_KEY = r"[0-9a-f]{%d}" % VENV_KEY_LENGTH
VENV_NAME = re.compile(VENV_KEY + r"\Z")
VENV_BUILD = TemporaryName(".tmp-{key}-{pid}", key=VENV_KEY, pid=PID)
VENV_REMOVAL = TemporaryName(".tmp-{key}-cleanup-{pid}", key=VENV_KEY, pid=PID)
VENV_LOCK = TemporaryName(".{key}.lock", key=VENV_KEY)


def venv_temporary_key(name):
    """The key of a hidden environment directory (being built or removed), or None."""
    match = VENV_BUILD.match(name) or VENV_REMOVAL.match(name)
    return match.group("key") if match else None


def venv_build_temporary(venvs_dir, key, pid=None):
    """Where the environment `key` is built before it is renamed into place."""
    return os.path.join(venvs_dir, VENV_BUILD.name(key=key, pid=os.getpid() if pid is None else pid))


def venv_removal_temporary(venvs_dir, key, pid=None):
    """What deploy-cleanup renames an environment to before removing it."""
    return os.path.join(venvs_dir, VENV_REMOVAL.name(key=key, pid=os.getpid() if pid is None else pid))


def venv_lock(venvs_dir, key):
    return os.path.join(venvs_dir, VENV_LOCK.name(key=key))


def check_app_name(app):
    if not APP_NAME.match(app) or not app.isascii() or len(app) > MAX_APP_NAME:
        raise DeployError(f"invalid app name {app!r}: use up to {MAX_APP_NAME} letters, digits, "
                          "'_' and '-', starting with a letter or digit")
    if VERSION_NAME.match(app):
        raise DeployError(f"invalid app name {app!r}: it ends like a version directory "
                          f"(-<{REV_LENGTH} hex digits>)")
    if app in RESERVED_NAMES:
        raise DeployError(f"invalid app name {app!r}: ~/{app} is part of the deploy home's layout")
    return app


def hidden_work_file_version(app, filename):
    """The Version (with its run) of app whose hidden work file (in the
    deploy home or the vassals directory) filename is, or None: a checkout
    being extracted or its archive, a version being removed, a run's vassal
    being written (.APP-<rev>[.N].ini.tmp)."""
    version = "(?P<run>%s-[0-9a-f]{%d})" % (re.escape(app.name), REV_LENGTH)
    run = "(?P<run>%s-[0-9a-f]{%d}(?:\\.[1-9][0-9]*)?)" % (re.escape(app.name), REV_LENGTH)
    match = (CHECKOUT_TEMPORARY.match(filename, version=version) or CHECKOUT_ARCHIVE.match(filename, version=version)
             or VERSION_REMOVAL.match(filename, version=version)
             or HIDDEN_TEMPORARY.match(filename, name=run + r"\.ini"))
    return app.run_from_name(match.group("run")) if match else None


@dataclass(frozen=True)
class App:
    settings: object
    name: str

    def __post_init__(self):
        check_app_name(self.name)

    @property
    def repo(self):
        return os.path.join(self.settings.home, self.name + ".git")

    @property
    def home_link(self):
        """~/APP -> APP-<rev>: the live version's directory."""
        return os.path.join(self.settings.home, self.name)

    @property
    def store_dir(self):
        """~/APP.store: the content of every file the app's versions check
        out, once, that their files are hard links to (store.py)."""
        return os.path.join(self.settings.home, self.name + STORE_SUFFIX)

    @property
    def live_socket(self):
        """~/run/APP.socket -> APP-<rev>.socket: where nginx sends requests."""
        return os.path.join(self.settings.run_dir, self.name + ".socket")

    # Maintenance (maintenance.py): a built-in vassal, APP.maintenance, serves
    # the app's socket; the version behind it is named by ~/run/APP.behind.socket.
    @property
    def maintenance_name(self):
        return self.name + MAINTENANCE_SUFFIX

    @property
    def maintenance_socket(self):
        return os.path.join(self.settings.run_dir, self.maintenance_name + ".socket")

    @property
    def behind_link(self):
        """~/run/APP.behind.socket -> APP-<rev>.socket: the live version while
        maintenance holds ~/run/APP.socket."""
        return os.path.join(self.settings.run_dir, self.name + ".behind.socket")

    @property
    def canary_link(self):
        """~/run/APP.canary.socket: the nginx site's second server (canary.py);
        it points where ~/run/APP.socket does, except while a canary runs."""
        return os.path.join(self.settings.run_dir, self.name + ".canary.socket")

    @property
    def in_maintenance(self):
        try:
            return os.readlink(self.live_socket) == os.path.basename(self.maintenance_socket)
        except OSError:
            return False

    @property
    def version_link(self):
        """The link a deploy switches: ~/run/APP.socket, or during maintenance
        the link to the version behind it (the page stays until it is off)."""
        return self.behind_link if self.in_maintenance else self.live_socket

    @property
    def lock_file(self):
        return os.path.join(self.settings.run_dir, self.name + ".lock")

    @property
    def env_file(self):
        """~/APP.env: this app's own server-side variables, read last (0600)."""
        return os.path.join(self.settings.app_env_dir, self.name + ".env")

    def env_files(self, repo_env=None):
        """The variables files a version of the app reads, later ones winning:
        the repository's environment.sh, ~/environment.sh, ~/APP.env."""
        return [path for path in (repo_env, self.settings.env_file, self.env_file)
                if path and os.path.exists(path)]

    @property
    def fleet_inventory(self):
        """~/APP.inventory: the Ansible inventory of the app's fleet. On the
        fleet's primary its presence makes a push deploy to every host."""
        return os.path.join(self.settings.home, self.name + FLEET_INVENTORY_SUFFIX)

    @property
    def has_fleet(self):
        return os.path.exists(self.fleet_inventory)

    @property
    def fleet_lock_file(self):
        """One fleet deploy of the app at a time (the primary's hook holds it;
        each host's own deploy lock is taken by the phases there)."""
        return os.path.join(self.settings.run_dir, self.name + ".fleet.lock")

    def temporary_links(self):
        """(directory, pattern) of the fresh symlinks a deploy of this app
        renames over ~/APP and ~/run/APP.socket (temporary_link, any pid)."""
        return [(os.path.dirname(link), TEMPORARY_LINK.regex(link=re.escape(os.path.basename(link))))
                for link in (self.home_link, self.live_socket, self.behind_link, self.canary_link)]

    def version(self, rev):
        return Version(self, rev[:REV_LENGTH])

    def version_from_name(self, name):
        match = VERSION_NAME.match(name)
        if not match or match.group("app") != self.name:
            return None
        return self.version(match.group("rev"))

    def run_from_name(self, name):
        """The Version (with its run number) that vassal, socket or log name
        APP-<rev>[.N] belongs to, or None."""
        match = RUN_NAME.match(name)
        version = self.version_from_name(match.group("version")) if match else None
        return version.restart(int(match.group("run"))) if version and match.group("run") else version

    def live_version(self):
        """The version ~/run/APP.socket points at (what serves), or during
        maintenance the one behind it; None if there is none."""
        try:
            target = os.readlink(self.version_link)
        except OSError:
            return None
        name = os.path.basename(target)
        return self.run_from_name(name[:-len(".socket")]) if name.endswith(".socket") else None


@dataclass(frozen=True)
class Version:
    """A version checked out as ~/APP-<rev>. Its run (0 for a deploy, N for the
    N-th restart while live) names what runs it: vassal, sockets, log. Two runs
    of a version are the same version (==), but not the same vassal."""
    app: App
    rev: str
    run: int = field(default=0, compare=False)

    @property
    def name(self):
        return f"{self.app.name}-{self.rev}"

    @property
    def run_name(self):
        """APP-<rev>, or APP-<rev>.N for a restart: the name of what runs."""
        return f"{self.name}.{self.run}" if self.run else self.name

    def restart(self, run=None):
        """This version's next run (or run number `run`)."""
        return Version(self.app, self.rev, self.run + 1 if run is None else run)

    def _path(self, directory, suffix=""):
        return os.path.join(directory, self.run_name + suffix)

    @property
    def workdir(self):
        return os.path.join(self.app.settings.home, self.name)

    def _hidden(self, kind, pid):
        return os.path.join(self.app.settings.home,
                            kind.name(version=self.name, pid=os.getpid() if pid is None else pid))

    def checkout_temporary(self, pid=None):
        """Where a checkout is extracted before it is renamed to workdir."""
        return self._hidden(CHECKOUT_TEMPORARY, pid)

    def checkout_archive(self, pid=None):
        return self._hidden(CHECKOUT_ARCHIVE, pid)

    def removal_temporary(self, pid=None):
        """What deploy-cleanup renames workdir to before removing it."""
        return self._hidden(VERSION_REMOVAL, pid)

    @property
    def vassal_ini(self):
        return self._path(self.app.settings.vassals_dir, ".ini")

    @property
    def socket(self):
        return self._path(self.app.settings.run_dir, ".socket")

    @property
    def stats_socket(self):
        return self._path(self.app.settings.run_dir, ".stats")

    @property
    def log(self):
        return self._path(self.app.settings.log_dir, ".log")

    @property
    def prepared_file(self):
        """What `deploy-version --prepare` leaves beside a candidate that runs
        and waits for its commit: the commit it was built from (phases.py)."""
        return self._path(self.app.settings.run_dir, PREPARED_SUFFIX)

    @property
    def log_backup(self):
        """The one older copy of the run's log (uwsgi_ini.log_cap_options)."""
        return self.log + LOG_BACKUP_SUFFIX

    def check_socket_paths(self):
        for path in (self.socket, self.stats_socket, self.app.live_socket):
            if len(os.fsencode(path)) > MAX_SOCKET_PATH:
                raise DeployError(f"socket path {path} is {len(os.fsencode(path))} bytes; "
                                  f"uWSGI allows {MAX_SOCKET_PATH}: set a shorter DEPLOY_RUN_DIR")


def app_from_repo_dir(settings, git_dir):
    """The app a bare repository deploys: its directory name without .git."""
    base = os.path.basename(os.path.abspath(git_dir))
    return App(settings, base[:-4] if base.endswith(".git") else base)


def version_from_dir(settings, directory):
    """The Version a checked-out directory (~/APP-<rev>) holds."""
    name = os.path.basename(os.path.abspath(directory).rstrip("/"))
    match = VERSION_NAME.match(name)
    if not match:
        raise DeployError(f"{directory}: not a version directory (expected APP-<12 hex digits>)")
    return App(settings, match.group("app")).version(match.group("rev"))
