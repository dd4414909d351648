"""deploy-status: per app, the live version and since when, whether it
answers its ping, the versions on disk (live, previous, failed, deploying)
with the disk each uses alone and the dependency environment each links,
the app's total on disk, and the last deploys. The facts come from
inventory.py and store.py, as deploy-cleanup's do."""
import json
import os
import sys
import time

from . import background
from .deploylog import TIME_FORMAT
from .inventory import AppState, selected_apps
from .canary import read_record as canary_record
from .layout import App
from .maintenance import state as maintenance_state
from .probe import probe_once
from .settings import load
from .store import ContentStore, usage
from .venv_key import KEY_LENGTH
from .venvs import version_environment

RECENT = 5           # deploys shown per app
PING_TIMEOUT = 2.0   # seconds the live version has to answer


def _time(value):
    return value.strftime(TIME_FORMAT) if value else None


def canary_state(app):
    record = canary_record(app)
    if record is None:
        return None
    try:
        return {"version": str(record["version"]), "rev": str(record["rev"]), "since": float(record["since"]),
                "seconds": float(record["seconds"]), "share": int(record["share"])}
    except (KeyError, TypeError, ValueError):
        return None


def app_facts(app, settings):
    """The facts `deploy-status --json` prints for one app."""
    state = AppState(app)
    went_live = state.history.went_live(state.live) if state.live else None
    versions = state.newest_first()
    alone, total = usage(ContentStore(app.store_dir), [v.workdir for v in versions])
    ping = probe_once("unix:" + app.live_socket, settings.ping_path, timeout=PING_TIMEOUT) if state.live else None
    return {
        "name": app.name,
        "live": state.live.name if state.live else None,
        "live_since": _time(went_live.time) if went_live else None,
        "answers_ping": bool(ping and ping.ok),
        "ping_seen": ping.seen if ping else None,
        "versions": [{"name": v.name, "marks": state.marks(v), "last_deployed": _time(state.last_deployed(v)),
                      "venv": version_environment(settings, v.workdir)}
                     for v in versions],
        # bytes on disk (st_blocks): each version's alone (what removing it
        # would free), and the versions and their store's, each file once
        "disk": {"total": total, "alone": {v.name: alone[v.workdir] for v in versions}},
        "recent": [{"version": e.name, "time": _time(e.time), "via": e.via, "commit": e.commit}
                   for e in reversed(state.history.entries[-RECENT:])],
        "deploying": state.deploying.name if state.deploy_running and state.deploying else None,
        "maintenance": maintenance_state(app),
        "canary": canary_state(app),
        "processes": background.process_facts(settings, state.live) if state.live else None,
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
    if facts["maintenance"]:
        since = facts["maintenance"]["since"]
        since = f" since {time.strftime(TIME_FORMAT, time.localtime(since))}" if isinstance(since, (int, float)) else ""
        message = facts["maintenance"]["message"]
        lines.append(f"  maintenance on{since}: every request gets 503"
                     + (f" ({message!r})" if message else "") + f" (deploy-maintenance {facts['name']} off)")
    canary = facts["canary"]
    if canary:
        ran = time.time() - canary["since"]
        lines.append(f"  canary    {canary['version']}: {ran:.0f} of {canary['seconds']:g} s, {canary['share']}% of "
                     f"clients (deploy-version --abort {facts['name']} {canary['rev']} ends it)")
    lines += background.render_processes(facts.get("processes"))
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
        alone = size_text(facts["disk"]["alone"][row["name"]]).rjust(9)
        lines.append(f"{label}{alone} alone  {row['name']}  {deployed}  {venv}{', '.join(row['marks'])}".rstrip())
    if rows:
        lines.append(f"  disk      {size_text(facts['disk']['total'])} in all (its versions, and {facts['name']}.store "
                     "for the files they share)")
    if not facts["recent"]:
        lines.append("  deploys   none in deploy.log")
    for index, entry in enumerate(facts["recent"]):
        label = "  deploys   " if index == 0 else " " * 12
        lines.append(f"{label}{entry['time']}  {entry['version']}  {entry['via']}")
    return "\n".join(lines) + "\n"


def size_text(size):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


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
