"""deploy-config: an app's own server-side variables, ~/APP.env.

The file is python-dotenv text like environment.sh, read after it (its values
win), mode 0600, and read only by that app's deploys. deploy-config lists its
names (never a value), sets one from stdin (never from the command line, which
other users can see) or unsets one. A change is written atomically, under the
app's deploy lock, and the live version restarts through the deploy pipeline
(without setup), so the change takes effect with zero downtime. A value the
pipeline could not carry is refused before anything changes; a refused
restart puts the old file back and the live version keeps serving."""
import getpass
import glob
import io
import os
import sys

from dotenv.parser import parse_stream

from . import DeployError
from .envfile import (MAX_VALUE_BYTES, NAME, UWSGI_PREFIX, check_environment_size, check_value_size,
                      parse_env_text, read_env_file)
from .files import read_text_if_exists
from .inventory import selected_apps
from .layout import hidden_temporaries, hidden_temporary
from .lock import DeployLock
from .report import Reporter
from .settings import load
from .uwsgi_ini import deploy_options, escape_value
from .versions import restart_live

FILE_MODE = 0o600
HEADER = ("# {app}'s own variables: python-dotenv lines, read after ~/environment.sh.\n"
          "# Written by deploy-config (ssh ACCOUNT@HOST deploy-config {app} set NAME < value).\n")


class Unchanged(DeployError):
    """The change would leave the file as it is: nothing to write or restart."""


def quoted(value):
    """value as a single-quoted python-dotenv value that reads back exactly:
    inside single quotes it decodes only \\\\ and \\'."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bindings(text):
    """(name or None, original text) per binding; the texts make up all of text."""
    return [(binding.key, binding.original.string) for binding in parse_stream(io.StringIO(text))]


def with_value(text, name, value):
    """text with NAME set: its first binding replaced in place (the blank lines
    before it kept), any later ones dropped; appended when it is not there."""
    line = f"{name}={quoted(value)}\n"
    parts, placed = [], False
    for key, original in bindings(text):
        if key != name:
            parts.append(original)
        elif not placed:
            lead = original[:len(original) - len(original.lstrip())]
            parts.append(lead[:lead.rfind("\n") + 1] + line)
            placed = True
    if not placed:
        if parts and not parts[-1].endswith("\n"):
            parts.append("\n")
        parts.append(line)
    return "".join(parts)


def without(text, name):
    return "".join(original for key, original in bindings(text) if key != name)


def write_private(path, text):
    """Replace path with text in one rename, mode 0600 from the first byte."""
    for stale in glob.glob(hidden_temporaries(path)):
        os.unlink(stale)   # left by a killed deploy-config
    temporary = hidden_temporary(path, os.getpid())
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.rename(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def check_name(name):
    if not NAME.match(name):
        raise DeployError(f"invalid variable name {name!r}: use letters, digits and '_', "
                          "not starting with a digit")
    if name.upper().startswith(UWSGI_PREFIX):
        raise DeployError(f"{name}: names starting with {UWSGI_PREFIX} become uWSGI options when the app "
                          "reloads; choose another")


def check_value(name, value):
    """Refuse, naming NAME but never showing the value, what uWSGI cannot
    carry and what is over the size limit."""
    check_value_size(name, value)
    escape_value(value, name)


def read_value(name, stdin):
    """The value from stdin: a terminal is asked without echo; from a pipe one
    trailing newline (as echo adds) is dropped. At most MAX_VALUE_BYTES (and
    that newline) are read: a longer value is refused without reading on."""
    if stdin.isatty():
        return getpass.getpass(f"value of {name} (not echoed): ")
    source = stdin.buffer if hasattr(stdin, "buffer") else stdin
    data = source.read(MAX_VALUE_BYTES + 2)   # a longer stdin is never read further
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    data = data[:-1] if data.endswith(b"\n") else data
    if len(data) > MAX_VALUE_BYTES:
        raise DeployError(f"{name}: the value on stdin is longer than the {MAX_VALUE_BYTES} bytes a "
                          "variable may hold")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DeployError(f"{name}: the value on stdin is not UTF-8 text") from None


class Change:
    """Setting (value) or unsetting (value None) one variable of app's file:
    apply() and restore() run with the app's deploy lock held."""

    def __init__(self, app, name, value, report):
        self.app, self.name, self.value, self.report = app, name, value, report
        self.path = app.env_file
        self.before = self.after = None

    def new_text(self, text):
        if self.value is None:
            return without(text, self.name)
        return with_value(text, self.name, self.value)

    def verify(self, text):
        """The new file must read back with the value unchanged, and every
        variable in it must pass the checks the pipeline's expand applies."""
        entries = parse_env_text(text, self.path)
        if self.value is not None:
            entry = [e for e in entries if e.name == self.name][-1]
            if entry.value != self.value:
                raise DeployError(f"{self.name}: the value would not read back unchanged from "
                                  f"{self.path} (python-dotenv expands '${{...}}' in it)")
        deploy_options(entries)
        check_environment_size(entries, f"the variables of {self.path}")

    def apply(self):
        self.before = read_text_if_exists(self.path)
        if self.before is not None:
            read_env_file(self.path)   # a line it cannot parse is named before we touch it
        current = self.before if self.before is not None else HEADER.format(app=self.app.name)
        after = self.new_text(current)
        if after == current:
            what = "is not set" if self.value is None else "already has that value"
            raise Unchanged(f"{self.name} {what} in {self.path}; nothing to do")
        self.verify(after)
        write_private(self.path, after)
        self.after = after
        done = "unset" if self.value is None else "set"
        self.report.stage(f"{self.name} {done} in {self.path}")

    def restore(self):
        """Put the file back as it was, unless it is no longer ours to undo."""
        if self.after is None or read_text_if_exists(self.path) != self.after:
            return
        if self.before is None:
            os.unlink(self.path)
        else:
            write_private(self.path, self.before)
        self.after = None
        self.report.warn(f"{self.path} restored: {self.name} is as it was before")


def change_and_restart(settings, app, change, environ):
    """Apply change under the app's lock; restart the live version with it
    through the pipeline, or, when nothing is live, leave it for the next deploy."""
    if app.live_version() is None:
        with DeployLock(app.lock_file, settings.lock_timeout, "deploy-config", change.report.say):
            change.apply()
        change.report.stage(f"nothing of {app.name} is live: its next deploy reads {change.path}")
        return
    try:
        restart_live(settings, app, environ, change.report, precondition=change.apply,
                     on_refused=change.restore)
    except BaseException:
        # refused before the pipeline could undo it itself (or interrupted)
        if change.after is not None:
            with DeployLock(app.lock_file, settings.lock_timeout, "deploy-config (restoring)"):
                change.restore()
        raise


def config(app_name, action=None, name=None, environ=None, stdin=None, out=None):
    """deploy-config APP [set NAME | unset NAME]."""
    environ = os.environ if environ is None else environ
    out = out or sys.stdout
    settings = load(environ)
    [app] = selected_apps(settings, app_name)
    if action is None:
        text = read_text_if_exists(app.env_file)
        if text is not None:
            names = dict.fromkeys(entry.name for entry in parse_env_text(text, app.env_file))
            out.write("".join(f"{variable}\n" for variable in names))
        return
    check_name(name)
    value = None
    if action == "set":
        value = read_value(name, stdin or sys.stdin)
        check_value(name, value)
    report = Reporter()
    try:
        change_and_restart(settings, app, Change(app, name, value, report), environ)
    except Unchanged as unchanged:
        report.stage(str(unchanged))
