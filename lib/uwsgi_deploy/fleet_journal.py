"""The primary's journal of a fleet deploy in progress, ~/run/APP.fleet.journal:
what a controller that dies (SIGKILL, a reboot of the primary) leaves for the
next one.

The fleet deploy writes it before it touches any host, and keeps it up to
date as it goes (the playbook's output callback records each phase and what
each host answered): the commit, the branch it was pushed to and the commit
the branch named before, the phase, and each host's state (prepared, live
already, committing, committed, refused, rolled back, failed). Every write
replaces the whole file atomically (a temporary file, fsync, rename), so a
reader finds the old record or the new one, never half of one.

The deploy removes it once it ended with every host on one version. One that
is still there when the next fleet operation takes the fleet lock was left by
a controller that died, or by a deploy that ended with a host it could not
reach: the next push undoes it first (fleet.py), and `deploy-status --fleet`
shows it."""
import json
import os
import tempfile
import time

# the phases as the journal names them, in order
PHASES = ("push", "prepare", "commit", "rollback", "abort", "ended")


def write(path, record):
    """Replace the journal at path by record, atomically and durably."""
    directory = os.path.dirname(path)
    record = dict(record, updated=time.time())
    fd, temporary = tempfile.mkstemp(prefix=".fleet-journal-", dir=directory)
    try:
        with os.fdopen(fd, "w") as stream:
            json.dump(record, stream, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return record


def read(path):
    """The journal's record, None when there is none; a record that cannot
    be read is {"unreadable": reason} (it still says a deploy was cut short)."""
    try:
        with open(path) as stream:
            record = json.load(stream)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return {"unreadable": str(error)}
    return record if isinstance(record, dict) else {"unreadable": "not a JSON object"}


def update(path, phase=None, hosts=None, **fields):
    """Record a phase, host states ({host: state}) or other fields."""
    record = read(path)
    if record is None or "unreadable" in record:
        return None
    if phase is not None:
        record["phase"] = phase
    if hosts:
        record.setdefault("hosts", {}).update(hosts)
    record.update(fields)
    return write(path, record)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def hosts_in(record, *states):
    return sorted(h for h, state in (record.get("hosts") or {}).items() if state in states)


def describe(record):
    """One line: which deploy, where it was, what each host had done."""
    if "unreadable" in record:
        return f"a fleet deploy whose journal cannot be read ({record['unreadable']})"
    commit = str(record.get("commit", "?"))
    name = f"{record.get('app', '?')}-{commit[:12]}"
    since = record.get("updated")
    when = f" since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(since))} UTC" if since else ""
    phase = record.get("phase", "?")
    parts = [f"{name}, ended with the fleet split{when}" if phase == "ended" else
             f"{name}, cut short in its {phase} phase{when}"]
    for label, states in (("committed on", ("committed",)), ("committing on", ("committing",)),
                          ("unknown on", ("unknown", "failed"))):
        hosts = hosts_in(record, *states)
        if hosts:
            parts.append(f"{label} {', '.join(hosts)}")
    return "; ".join(parts)
