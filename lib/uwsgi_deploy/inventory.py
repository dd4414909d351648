"""What is on the server: apps, their versions on disk, the files their runs
left (logs, sockets), what deploy.log says about them (live, previous, when
each was deployed) and whether a deploy holds an app's lock. deploy-status
shows these facts; deploy-cleanup and the recovery after a dead deploy act
on them."""
import os

from . import DeployError
from .deploylog import read_log
from .layout import LOG_SUFFIXES, PREPARED_SUFFIX, SOCKET_SUFFIXES, VERSION_NAME, App, hidden_work_file_version
from .lock import holder_of


def apps_on_disk(settings):
    """Names of apps with a repository (~/APP.git) or a version (~/APP-<rev>)."""
    names = set()
    for entry in os.listdir(settings.home) if os.path.isdir(settings.home) else []:
        path = os.path.join(settings.home, entry)
        if entry.endswith(".git") and os.path.isdir(path):
            names.add(entry[:-4])
        elif VERSION_NAME.match(entry) and os.path.isdir(path) and not os.path.islink(path):
            names.add(VERSION_NAME.match(entry).group("app"))
    return sorted(n for n in names if _valid(settings, n))


def _valid(settings, name):
    try:
        App(settings, name)
        return True
    except DeployError:
        return False


def selected_apps(settings, name=None):
    """Every app on disk, or only `name` (an error when it is not there)."""
    names = apps_on_disk(settings)
    if name is None:
        return [App(settings, n) for n in names]
    app = App(settings, name)
    if name not in names:
        raise DeployError(f"no app {name!r} in {settings.home} (no {name}.git, no {name}-<rev> directory)")
    return [app]


def versions_on_disk(app):
    """Versions of app checked out in ~ (directories APP-<rev>)."""
    home = app.settings.home
    found = []
    for entry in sorted(os.listdir(home)) if os.path.isdir(home) else []:
        version = app.version_from_name(entry)
        path = os.path.join(home, entry)
        if version and os.path.isdir(path) and not os.path.islink(path):
            found.append(version)
    return found


def version_by_prefix(app, prefix):
    """The one version of app on disk whose rev starts with prefix."""
    candidates = [v for v in versions_on_disk(app) if v.rev.startswith(prefix.lower())]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        on_disk = ", ".join(v.name for v in versions_on_disk(app)) or "none"
        raise DeployError(f"no version of {app.name} matches {prefix!r} (on disk: {on_disk})")
    raise DeployError(f"{prefix!r} is ambiguous: " + ", ".join(v.name for v in candidates))


def hidden_work_files(app, directory):
    """Paths of what deploys or cleanups of app write in directory under a
    hidden name (layout.hidden_work_file_version): left there, they were interrupted."""
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    return [os.path.join(directory, name) for name in names if hidden_work_file_version(app, name)]


def run_files(app, directory, suffixes):
    """(path, run) of every file in directory named after one of app's runs
    (APP-<rev>[.N]) followed by one of suffixes, whatever version it is of."""
    for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        for suffix in suffixes:
            run = entry.endswith(suffix) and app.run_from_name(entry[:-len(suffix)])
            if run:
                yield os.path.join(directory, entry), run


def socket_files(app):
    """(path, run) of the sockets and stats sockets of app's runs in ~/run."""
    return run_files(app, app.settings.run_dir, SOCKET_SUFFIXES)


def prepared_records(app):
    """(path, run) of the records of app's prepared candidates in ~/run
    (candidates.py): the one scanner of them."""
    return run_files(app, app.settings.run_dir, (PREPARED_SUFFIX,))


def is_prepared(version):
    """A record and a vassal: a candidate that still waits for its commit."""
    return os.path.exists(version.prepared_file) and os.path.exists(version.vassal_ini)


def log_files(app):
    """(path, run) of the logs (and their older copies) of app's runs in ~/log."""
    return run_files(app, app.settings.log_dir, LOG_SUFFIXES)


class History:
    """deploy.log as it concerns one app."""

    def __init__(self, app):
        self.app = app
        self.entries = read_log(app.settings.log_file, app.name)

    def last_deployed(self):
        """{version name: time of its latest successful deploy}."""
        return {entry.name: entry.time for entry in self.entries}

    def went_live(self, version):
        """The latest log entry of version, or None."""
        for entry in reversed(self.entries):
            if entry.name == version.name:
                return entry
        return None

    def previous_version(self, live=None):
        """The version that was live before the current one: the `previous`
        field of the live version's latest deploy, else the latest other
        version in the log."""
        live = live or self.app.live_version()
        entry = self.went_live(live) if live else None
        if entry and entry.previous:
            return self.app.version_from_name(entry.previous)
        for entry in reversed(self.entries):
            if live is None or entry.name != live.name:
                return self.app.version_from_name(entry.name)
        return None


class AppState:
    """One app's versions as deploy.log, the live links and the lock see them.

    holder: the lock's Holder, None when the lock is free (or held by the
    caller); by default it is read from the lock file."""

    def __init__(self, app, holder=Ellipsis):
        self.app = app
        self.history = History(app)
        self.live = app.live_version()
        self.previous = self.history.previous_version(self.live)
        # name -> (time of its latest deploy, its position in the log): the
        # position orders deploys logged within the same second
        self.logged = {e.name: (e.time, i) for i, e in enumerate(self.history.entries)}
        self.versions = versions_on_disk(app)
        self.holder = holder_of(app.lock_file) if holder is Ellipsis else holder
        # a deploy's holder is `APP-<rev> (via)`
        self.deploying = app.version_from_name(self.holder.what.split(" ")[0]) if self.holder else None
        # An app that went live (its links exist) but has no deploy.log
        # entries has lost its log: its versions can only be ranked by
        # directory time. One that never went live has only failed deploys.
        self.log_lost = not self.logged and (self.live is not None or os.path.lexists(app.home_link))

    @property
    def deploy_running(self):
        return self.holder is not None

    def is_logged(self, version):
        return version.name in self.logged

    def is_failed(self, version):
        """Checked out but never logged (unless the log was lost), not the
        version a running deploy is working on, nor one prepared and waiting
        for its commit."""
        return (not self.log_lost and not self.is_logged(version) and not is_prepared(version)
                and not (self.deploy_running and (self.deploying is None or version == self.deploying)))

    def last_deployed(self, version):
        entry = self.logged.get(version.name)
        return entry[0] if entry else None

    def marks(self, version):
        marks = []
        if version == self.live:
            marks.append("live")
        if version == self.previous:
            marks.append("previous")
        if self.deploy_running and version == self.deploying:
            marks.append("deploying")
        elif is_prepared(version):
            marks.append("prepared")
        elif self.is_failed(version):
            marks.append("failed")
        return marks

    def newest_first(self):
        """Versions on disk: logged ones by their latest deploy, newest first,
        then the never-logged ones, newest directory first."""
        def key(version):
            if version.name in self.logged:
                return (1, *self.logged[version.name])
            return (0, _mtime(version.workdir), 0)
        return sorted(self.versions, key=key, reverse=True)


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
