"""Names and paths of an app's versions on the server (see README, "What
happens on the server"). Every file the pipeline touches is named here."""
import os
import re
from dataclasses import dataclass, field

from . import DeployError

APP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
REV_LENGTH = 12
VERSION_NAME = re.compile(r"(?P<app>.+)-(?P<rev>[0-9a-f]{%d})\Z" % REV_LENGTH)
# What a version's vassal, sockets and log are named: APP-<rev>, or APP-<rev>.N
# for its N-th restart while live (a configuration change restarts it beside
# the running one, so the two need different names).
RUN_NAME = re.compile(r"(?P<version>.+-[0-9a-f]{%d})(?:\.(?P<run>[1-9][0-9]*))?\Z" % REV_LENGTH)
# sun_path is 108 bytes on Linux, including the terminating NUL
MAX_SOCKET_PATH = 107


# What a deploy writes under a hidden name before renaming it into place:
# .APP-<rev>.tmp-PID (checkout), .APP-<rev>.tmp-PID.tar, .APP-<rev>.ini.tmp
HIDDEN_WORK_FILE = re.compile(r"\.(?P<name>.+?)(?:\.ini\.tmp|\.tmp-.*)\Z")


def hidden_work_file_version(app, filename):
    """The Version a hidden work file of app belongs to, or None."""
    match = HIDDEN_WORK_FILE.match(filename)
    return app.run_from_name(match.group("name")) if match else None


def check_app_name(app):
    if not APP_NAME.match(app) or not app.isascii():
        raise DeployError(f"invalid app name {app!r}: use letters, digits, '.', '_' and '-', "
                          "not starting with '.' or '-'")
    return app


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
    def live_socket(self):
        """~/run/APP.socket -> APP-<rev>.socket: where nginx sends requests."""
        return os.path.join(self.settings.run_dir, self.name + ".socket")

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
        """The version ~/run/APP.socket points at (what serves), or None."""
        try:
            target = os.readlink(self.live_socket)
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

    def check_socket_paths(self):
        for path in (self.socket, self.stats_socket, self.app.live_socket):
            if len(os.fsencode(path)) > MAX_SOCKET_PATH:
                raise DeployError(f"socket path {path} is {len(os.fsencode(path))} bytes; "
                                  f"the kernel allows {MAX_SOCKET_PATH}: set a shorter DEPLOY_RUN_DIR")


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
