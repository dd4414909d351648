"""Maintenance mode: a built-in vassal (share/maintenance.py, APP.maintenance)
takes the app's socket through the same atomic symlink switch as a deploy
and answers every request with 503, Retry-After and the operator's message.

on:  start the page's vassal, wait until it answers 503, point
     ~/run/APP.behind.socket at the live version, then switch ~/run/APP.socket
     to the page. The live version keeps running: what it accepted finishes.
off: check the version behind the page answers /ping, switch the socket
     back to it, let the page finish what it accepted, stop it.
A deploy during maintenance switches the link behind the page (layout.App
.version_link), so the new version goes live there and the page stays
until off. Both take the app's deploy lock: never in the middle of a deploy."""
import json
import os
import sys
import time
from dataclasses import dataclass

from . import DeployError
from .canary import follow as follow_canary_link
from .inventory import selected_apps
from .layout import Version, create_directories, hidden_temporary
from .links import remove_if_exists, switch_symlink
from .lock import DeployLock
from .paths import share
from .probe import probe_once, wait_for_200
from .settings import load
from .stats import poke
from .uwsgi_ini import escape_value, log_cap_options
from .vassal import remove_vassal, wait_drained, wait_vassal_gone, write_vassal_ini
from .waiting import wait_until

MAX_MESSAGE = 500          # characters (share/maintenance.py falls back past this)
MAX_RETRY_AFTER = 86400
DEFAULT_RETRY_AFTER = 300  # seconds: what the page's Retry-After says unless told
PROCESSES = 2              # the page answers at once; two workers keep its queue short


@dataclass(frozen=True)
class MaintenanceRun(Version):
    """The page's vassal and its files, named like a version's run, so the
    vassal helpers take it: APP.maintenance, which no version's name can be."""
    rev: str = ""

    @property
    def run_name(self):
        return self.app.maintenance_name

    @property
    def record(self):
        """What the page says: {"message", "retry_after", "since"} (JSON)."""
        return self._path(self.app.settings.run_dir, ".json")


def check_message(message):
    """The message as the page will show it; DeployError naming what is wrong."""
    message = (message or "").strip()
    if len(message) > MAX_MESSAGE:
        raise DeployError(f"--message: {len(message)} characters; at most {MAX_MESSAGE}")
    if not message.isprintable():
        raise DeployError("--message: control characters (a newline, a tab, an escape) are not allowed")
    return message or None


def check_retry_after(seconds):
    if not 0 <= seconds <= MAX_RETRY_AFTER:
        raise DeployError(f"--retry-after: {seconds} seconds; use 0 to {MAX_RETRY_AFTER}")
    return seconds


def write_record(run, message, retry_after):
    path = run.record
    temporary = hidden_temporary(path)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        record = {"retry_after": retry_after, "since": time.time()}
        if message:
            record["message"] = message
        json.dump(record, stream)
    os.rename(temporary, path)


def read_record(run):
    try:
        with open(run.record, encoding="utf-8") as stream:
            record = json.load(stream)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def vassal_text(run, settings):
    lines = [("master", "true"), ("processes", str(PROCESSES)), ("need-app", "true"),
             ("wsgi-file", escape_value(share("maintenance.py"), "wsgi-file")),
             ("env", "UD_MAINTENANCE_RECORD=" + escape_value(run.record, "record")),
             ("socket", escape_value(run.socket, "socket")),
             ("stats", escape_value(run.stats_socket, "stats")),
             ("logto", escape_value(run.log, "logto"))]
    cap = settings.vassal_log_max_mb * 1024 * 1024
    if cap:
        lines += [(option, escape_value(value, option))
                  for option, value in log_cap_options(run.log, run.log_backup, cap)]
    return "[uwsgi]\n; the maintenance page of uwsgi-deploy\n" + "".join(f"{k} = {v}\n" for k, v in lines)


def answers_503(run, settings):
    """Wait until the page answers (503) on its own socket."""
    def answered():
        return probe_once("unix:" + run.socket, settings.ping_path, timeout=1.0).seen == "status 503"
    return wait_until(answered, settings.probe_timeout)


def turn_on(settings, app, message, retry_after, say):
    run = MaintenanceRun(app)
    write_record(run, message, retry_after)
    if app.in_maintenance:
        say(f"{app.name} is in maintenance already; its page now says: {message or 'the default message'}")
        return
    create_directories(settings)
    if not wait_vassal_gone(settings, run, settings.drain_timeout):
        raise DeployError(f"{run.run_name}: the page of an earlier maintenance is still stopping")
    write_vassal_ini(run.vassal_ini, vassal_text(run, settings))
    poke(settings)
    if not answers_503(run, settings):
        remove_vassal(settings, run, settings.drain_timeout, kill_after=2.0)
        remove_if_exists(run.record)
        raise DeployError(f"the maintenance page did not answer on {run.socket} within "
                          f"{settings.probe_timeout:g} s (see {run.log}); {app.name} is unchanged")
    live = app.live_version()
    if live is not None:
        switch_symlink(app.behind_link, live.socket)
    else:
        remove_if_exists(app.behind_link)
    switch_symlink(app.live_socket, run.socket)
    follow_canary_link(app)
    behind = (f"{live.run_name} keeps running behind it and finishes what it accepted" if live
              else "no version was live")
    say(f"{app.name} is in maintenance: every request gets 503 (Retry-After: {retry_after}); {behind}")


def turn_off(settings, app, say):
    run = MaintenanceRun(app)
    if not app.in_maintenance:
        say(f"{app.name} is not in maintenance")
        return
    live = app.live_version()
    if live is not None:
        result = wait_for_200("unix:" + live.socket, settings.ping_path, settings.probe_timeout)
        if not result.ok:
            raise DeployError(f"{live.run_name} does not answer GET {settings.ping_path} on its socket "
                              f"({result.seen}); {app.name} stays in maintenance")
        switch_symlink(app.live_socket, live.socket)
    else:
        remove_if_exists(app.live_socket)
    follow_canary_link(app)
    remove_if_exists(app.behind_link)
    remove_if_exists(run.record)
    say(f"{app.name} is out of maintenance: " + (f"{live.run_name} serves" if live else "no version is live"))
    if not wait_drained(run, settings.drain_timeout):
        say(f"the maintenance page is still busy after {settings.drain_timeout:g} s; stopping it gracefully")
    remove_vassal(settings, run, settings.drain_timeout)


def maintenance(app_name, action, message=None, retry_after=DEFAULT_RETRY_AFTER, environ=None, out=None):
    """deploy-maintenance APP on|off."""
    out = out or sys.stdout
    settings = load(os.environ if environ is None else environ)
    message, retry_after = check_message(message), check_retry_after(retry_after)
    app = selected_apps(settings, app_name)[0]

    def say(text):
        out.write(text + "\n")
        out.flush()
    with DeployLock(app.lock_file, settings.lock_timeout, f"deploy-maintenance {action}", say):
        if action == "on":
            turn_on(settings, app, message, retry_after, say)
        else:
            turn_off(settings, app, say)


def state(app):
    """{"since", "message", "retry_after"} while app is in maintenance, else None."""
    if not app.in_maintenance:
        return None
    record = read_record(MaintenanceRun(app))
    return {"since": record.get("since"), "message": record.get("message"),
            "retry_after": record.get("retry_after")}


def sweep(settings, app, say):
    """A page no maintenance holds (an interrupted on or off): remove it.
    The caller holds app's lock."""
    run = MaintenanceRun(app)
    if os.path.exists(run.vassal_ini) and not app.in_maintenance:
        say(f"removing {run.run_name}, left by an interrupted deploy-maintenance")
        remove_vassal(settings, run, settings.drain_timeout, kill_after=settings.drain_timeout)
        remove_if_exists(run.record)
