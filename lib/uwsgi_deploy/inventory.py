"""What is on the server: apps, their versions on disk, and what deploy.log
says about them (live, previous, when each was deployed)."""
import os

from .deploylog import read_log
from .layout import VERSION_NAME, App


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
    except Exception:
        return False


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
