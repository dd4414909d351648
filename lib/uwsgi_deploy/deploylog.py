"""~/deploy.log: one line per successful deploy, oldest first.

    APP-<rev> YYYY-MM-DD HH:MM:SS commit=<sha|-> via=<what deployed it> seconds=<s> previous=<APP-rev|-> [unfinished=<stages>] [key=<name>]

The first two fields say what went live and when; the rest are key=value
fields a script can parse. `via` is push, deploy-version, rollback
(deploy-version --previous) or config (a restart for deploy-config:
`previous` then names the version before the restarted one); a push the
post-switch watch refused is not logged. `unfinished` (retire, link, comma
separated) names what failed after the version went live: the deploy
succeeded, and the next deploy finishes it. Each line is written with one
write(2) on an O_APPEND descriptor, so lines of deploys running at the same
time never interleave. `key` names the scoped key (deploy-keys) the deploy
was asked for with; there is none for an unscoped key or a local command."""
import datetime
import os
from dataclasses import dataclass, field

from .layout import VERSION_NAME

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class LogEntry:
    name: str                     # APP-<rev>
    time: datetime.datetime
    fields: dict = field(default_factory=dict)

    @property
    def app(self):
        return VERSION_NAME.match(self.name).group("app")

    @property
    def rev(self):
        return VERSION_NAME.match(self.name).group("rev")

    @property
    def commit(self):
        value = self.fields.get("commit", "-")
        return None if value == "-" else value

    @property
    def via(self):
        return self.fields.get("via", "push")

    @property
    def key(self):
        return self.fields.get("key")

    @property
    def previous(self):
        value = self.fields.get("previous", "-")
        return None if value == "-" else value

    def line(self):
        extra = "".join(f" {key}={value}" for key, value in self.fields.items())
        return f"{self.name} {self.time.strftime(TIME_FORMAT)}{extra}\n"


def parse_line(line):
    """A LogEntry, or None for a line that is not one (kept, but skipped)."""
    parts = line.split()
    if len(parts) < 3 or not VERSION_NAME.match(parts[0]):
        return None
    try:
        stamp = datetime.datetime.strptime(f"{parts[1]} {parts[2]}", TIME_FORMAT)
    except ValueError:
        return None
    fields = dict(part.split("=", 1) for part in parts[3:] if "=" in part)
    return LogEntry(parts[0], stamp, fields)


def read_log(path, app=None):
    """Entries oldest first; only app's when app is given."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            entries = [parse_line(line) for line in stream]
    except FileNotFoundError:
        return []
    return [e for e in entries if e and (app is None or e.app == app)]


def append_entry(path, version, commit, via, seconds, previous, unfinished=(), key=None):
    fields = {"commit": commit or "-", "via": via, "seconds": f"{seconds:.1f}",
              "previous": previous.name if previous else "-"}
    if unfinished:
        fields["unfinished"] = ",".join(unfinished)
    if key:
        fields["key"] = key
    entry = LogEntry(version.name, datetime.datetime.now().replace(microsecond=0), fields)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, entry.line().encode())
    finally:
        os.close(fd)
    return entry


def known_commit(path, version):
    """The full commit a version was built from, as logged when it was pushed."""
    for entry in reversed(read_log(path, version.app.name)):
        if entry.rev == version.rev and entry.commit:
            return entry.commit
    return None
