"""What runs: per app, the live version and since when, whether it answers
its ping, the versions on disk (live, previous, failed, deploying) with the
dependency environment each links, and the last deploys. The same facts
decide what deploy-cleanup may remove."""
import json
import os
import sys

from . import DeployError
from .deploylog import TIME_FORMAT
from .inventory import History, apps_on_disk, versions_on_disk
from .layout import App
from .lock import DeployLock, is_locked
from .probe import probe_once
from .settings import load
from .venv_key import KEY_LENGTH
from .venvs import version_environment

RECENT = 5           # deploys shown per app
PING_TIMEOUT = 2.0   # seconds the live version has to answer


def lock_holder(app):
    """None when no deploy of app holds its lock; else what the holder wrote
    (`APP-<rev> (push), pid 12, since ...`; possibly "unknown holder")."""
    if not is_locked(app.lock_file):
        return None
    return DeployLock(app.lock_file, 0, None).current_holder()


class AppState:
    """One app's versions as deploy.log, the live socket and the lock see them.

    holder: the lock holder's text, None when the lock is free (or held by the
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
        self.holder = lock_holder(app) if holder is Ellipsis else holder
        first = self.holder.split(None, 1)[0].rstrip(",") if self.holder and self.holder.split() else ""
        self.deploying = app.version_from_name(first) if self.holder else None

    @property
    def deploy_running(self):
        return self.holder is not None

    def is_logged(self, version):
        return version.name in self.logged

    def is_failed(self, version):
        """Checked out but never logged, in an app that does log its deploys,
        and not the version a running deploy is working on."""
        return (bool(self.logged) and not self.is_logged(version)
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


def _time(value):
    return value.strftime(TIME_FORMAT) if value else None


def selected_apps(settings, name=None):
    """Every app on disk, or only `name` (an error when it is not there)."""
    names = apps_on_disk(settings)
    if name is None:
        return [App(settings, n) for n in names]
    app = App(settings, name)
    if name not in names:
        raise DeployError(f"no app {name!r} in {settings.home} (no {name}.git, no {name}-<rev> directory)")
    return [app]


def app_facts(app, settings):
    """The facts `deploy-status --json` prints for one app."""
    state = AppState(app)
    went_live = state.history.went_live(state.live) if state.live else None
    ping = probe_once("unix:" + app.live_socket, settings.ping_path, timeout=PING_TIMEOUT) if state.live else None
    return {
        "name": app.name,
        "live": state.live.name if state.live else None,
        "live_since": _time(went_live.time) if went_live else None,
        "answers_ping": bool(ping and ping.ok),
        "ping_seen": ping.seen if ping else None,
        "versions": [{"name": v.name, "marks": state.marks(v), "last_deployed": _time(state.last_deployed(v)),
                      "venv": version_environment(settings, v.workdir)}
                     for v in state.newest_first()],
        "recent": [{"version": e.name, "time": _time(e.time), "via": e.via, "commit": e.commit}
                   for e in reversed(state.history.entries[-RECENT:])],
        "deploying": state.deploying.name if state.deploy_running and state.deploying else None,
    }


def render_text(facts, settings):
    lines = [facts["name"]]
    if facts["live"]:
        since = f" since {facts['live_since']}" if facts["live_since"] else " (not in deploy.log)"
        lines.append(f"  live      {facts['live']}{since}")
        answer = "up" if facts["answers_ping"] else f"down ({facts['ping_seen']})"
        lines.append(f"  ping      {answer}: GET {settings.ping_path} on {App(settings, facts['name']).live_socket}")
    else:
        lines.append("  live      none")
    if facts["deploying"]:
        lines.append(f"  deploying {facts['deploying']}")
    rows = facts["versions"]
    if not rows:
        lines.append("  on disk   no versions")
    with_venvs = any(row["venv"] for row in rows)
    for index, row in enumerate(rows):
        label = "  on disk   " if index == 0 else " " * 12
        deployed = row["last_deployed"] or "never deployed".ljust(19)
        venv = f"venv {row['venv'] or '-'.ljust(KEY_LENGTH)}  " if with_venvs else ""
        lines.append(f"{label}{row['name']}  {deployed}  {venv}{', '.join(row['marks'])}".rstrip())
    if not facts["recent"]:
        lines.append("  deploys   none in deploy.log")
    for index, entry in enumerate(facts["recent"]):
        label = "  deploys   " if index == 0 else " " * 12
        lines.append(f"{label}{entry['time']}  {entry['version']}  {entry['via']}")
    return "\n".join(lines) + "\n"


def status(app_name=None, as_json=False, environ=None, out=None):
    """deploy-status: print every app's (or one app's) status."""
    out = out or sys.stdout
    settings = load(os.environ if environ is None else environ)
    facts = [app_facts(app, settings) for app in selected_apps(settings, app_name)]
    if as_json:
        out.write(json.dumps({"apps": facts}, indent=2) + "\n")
    elif not facts:
        out.write(f"no apps in {settings.home}\n")
    else:
        out.write("\n".join(render_text(f, settings) for f in facts))
