"""deploy-scale: how many of each worker type run per host. The counts are
the app's (~/APP.scale, NAME=COUNT lines), so they hold across deploys and
rollbacks; the live version's supervisor reads the file within a tenth of a
second, so a change applies at once. Clocks and cron jobs are not scaled:
a clock is one per app, a cron job fires once per tick."""
import os
import re
import sys

from . import DeployError, proclayout
from .background import entries_of
from .checkout import deploy_dir
from .inventory import selected_apps
from .procfile import WORKER
from .settings import load
from .supervisor import read_scale

ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_-]*)=(?P<count>[0-9]+)\Z")
MAX_COUNT = 64


def parse_assignments(words, workers):
    """{name: count} from NAME=COUNT words, each a worker type of the live version."""
    counts = {}
    for word in words:
        match = ASSIGNMENT.match(word)
        if not match:
            raise DeployError(f"{word!r}: expected TYPE=COUNT, like worker=3")
        name, count = match.group("name"), int(match.group("count"))
        if name not in workers:
            known = ", ".join(workers) or "none"
            raise DeployError(f"{name}: not a worker type of the live version's Procfile (workers: {known})")
        if count > MAX_COUNT:
            raise DeployError(f"{name}={count}: at most {MAX_COUNT} per host")
        counts[name] = count
    return counts


def write_scale(path, counts):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write("".join(f"{name}={count}\n" for name, count in sorted(counts.items())))
    os.rename(temporary, path)


def scale(app_name, words, environ=None, out=None):
    """deploy-scale APP [TYPE=COUNT ...]: set counts, then print them all."""
    out = out or sys.stdout
    settings = load(os.environ if environ is None else environ)
    [app] = selected_apps(settings, app_name)
    live = app.live_version()
    if live is None:
        raise DeployError(f"nothing of {app.name} is live")
    workers = [e.name for e in entries_of(deploy_dir(live.workdir)) if e.kind == WORKER]
    path = proclayout.scale_file(settings, app.name)
    counts = read_scale(path)
    changes = parse_assignments(words, workers)
    if changes:
        counts.update(changes)
        write_scale(path, counts)
    for name in workers:
        out.write(f"{name}={counts.get(name, 1)}\n")
    if not workers:
        out.write(f"{live.name} has no workers in its Procfile\n")
