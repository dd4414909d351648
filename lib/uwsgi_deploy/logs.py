"""deploy-logs: an app's uWSGI log, ~/log/APP-<rev>[.N].log, as it is written.

Without a version it is the live version's log (the run that ~/run/APP.socket
points at). The tail comes first; following prints what is appended, and when
a deploy (or a configuration restart) puts another run live it prints the rest
of the old log, a marker line, and goes on from the start of the new log.

What the app and its clients wrote can hold terminal escapes (a request for
`/<ESC>]2;...`) that would act on the reader's terminal: control characters
but tab and newline (C0, DEL, C1) and Unicode's bidirectional overrides are
shown as `\\xNN` or `\\uNNNN`, and bytes that are not UTF-8 as U+FFFD, unless
raw. The tail is found by reading the log backwards from its end, one block
at a time: each byte at most once, whatever -n asks."""
import codecs
import os
import select
import sys
import time

from . import DeployError
from .inventory import log_files, selected_apps, versions_on_disk
from .settings import load
from .versions import version_by_prefix

DEFAULT_LINES = 10
POLL = 0.2         # seconds between looks at the log and the live link
BLOCK = 64 * 1024


def tail_start(stream, count):
    """Where the last count lines of an open binary file begin (0 if it has
    fewer), read backwards from its end one BLOCK at a time. A newline ends a
    line; the last line need not have one."""
    end = stream.seek(0, os.SEEK_END)
    if count == 0 or end == 0:
        return end
    stream.seek(end - 1)
    position = end - 1 if stream.read(1) == b"\n" else end   # the last line's own newline
    found = 0
    while position > 0:
        start = max(0, position - BLOCK)
        stream.seek(start)
        block = stream.read(position - start)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) >= 0:
            found += 1
            if found == count:
                return start + index + 1
        position = start
    return 0


def copy_tail(stream, count, out, shown):
    """Write the last count lines of stream to out through shown (a Shown),
    leaving stream at its end."""
    end = stream.seek(0, os.SEEK_END)
    stream.seek(tail_start(stream, count))
    while stream.tell() < end:
        out.write(shown(stream.read(min(BLOCK, end - stream.tell()))))


# What a terminal would act on: C0 controls but tab and newline, DEL, C1
# controls, and Unicode's bidirectional embeddings, overrides and isolates.
CONTROLS = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7f, *range(0x80, 0xa0)] if code not in (9, 10)}
CONTROLS.update({code: f"\\u{code:04x}" for code in [*range(0x202a, 0x202f), *range(0x2066, 0x206a)]})


class Shown:
    """Bytes of a log as they are shown: raw, or decoded (across calls: a
    character split between two reads is decoded whole) with controls made
    visible."""

    def __init__(self, raw=False):
        self.raw = raw
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, data, final=False):
        if self.raw:
            return data
        return self.decoder.decode(data, final).translate(CONTROLS).encode("utf-8")


def run_logs(version):
    """The logs of every run of version, oldest first by modification time."""
    logs = [path for path, run in log_files(version.app) if run == version and path == run.log]
    return sorted(logs, key=os.path.getmtime)


def log_of(app, prefix=None):
    """(run, log path): the live run's, or the latest run of the version that
    rev prefix names."""
    live = app.live_version()
    if prefix is None:
        if live is None:
            on_disk = ", ".join(v.rev for v in versions_on_disk(app)) or "none"
            raise DeployError(f"nothing of {app.name} is live; name a version: "
                              f"deploy-logs {app.name} REV (on disk: {on_disk})")
        return live, live.log
    version = version_by_prefix(app, prefix)
    if version == live:
        return live, live.log
    logs = run_logs(version)
    if not logs:
        raise DeployError(f"{version.name} has no log in {app.settings.log_dir}")
    return version, logs[-1]


def open_log(path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DeployError(f"{path}: no such log") from None


def reader_gone(out):
    """True once whoever reads our output (ssh, a pipe) has gone away: a
    follower that prints nothing would otherwise outlive its client."""
    try:
        poller = select.poll()
        poller.register(out.fileno(), 0)   # POLLERR and POLLHUP are always reported
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


class Follower:
    """Prints what is appended to a log; with the app, moves to the next live
    run's log when the live link changes."""

    def __init__(self, stream, path, run, out, app=None, shown=None):
        self.stream, self.path, self.run, self.out, self.app = stream, path, run, out, app
        self.shown = shown or Shown()

    def copy(self):
        """Print what was appended; False when there was nothing."""
        data = self.stream.read(BLOCK)
        if data:
            self.out.write(self.shown(data))
            self.out.flush()
        return bool(data)

    def reopen_if_replaced(self):
        """A log rotated or truncated under us is read again from its start."""
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return
        if status.st_ino != os.fstat(self.stream.fileno()).st_ino or status.st_size < self.stream.tell():
            self.stream.close()
            self.stream = open_log(self.path)

    def move_to_live(self):
        live = self.app.live_version() if self.app else None
        if live is None or live.run_name == self.run.run_name or not os.path.exists(live.log):
            return
        while self.copy():
            pass
        self.out.write(self.shown(b"", final=True))
        self.out.write(f"==> {live.run_name} is live: following {live.log} <==\n".encode())
        self.out.flush()
        self.stream.close()
        self.stream, self.path, self.run = open_log(live.log), live.log, live

    def run_until_reader_gone(self, poll=POLL):
        while True:
            if self.copy():
                continue
            if reader_gone(self.out):
                return
            self.move_to_live()
            self.reopen_if_replaced()
            time.sleep(poll)


def logs(app_name, prefix=None, lines=DEFAULT_LINES, follow=False, environ=None, out=None, raw=False):
    """deploy-logs APP [REV] [-n N] [-f] [--raw]."""
    out = out or sys.stdout.buffer
    if lines < 0:
        raise DeployError(f"-n must be 0 or more, not {lines}")
    settings = load(os.environ if environ is None else environ)
    [app] = selected_apps(settings, app_name)
    run, path = log_of(app, prefix)
    stream = open_log(path)
    shown = Shown(raw)
    try:
        copy_tail(stream, lines, out, shown)
        out.flush()
        if follow:
            follower = Follower(stream, path, run, out, app if prefix is None else None, shown)
            try:
                follower.run_until_reader_gone()
            finally:
                stream = follower.stream
    except BrokenPipeError:
        # the reader went away: nothing more to say, not even at exit's flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
    finally:
        stream.close()
