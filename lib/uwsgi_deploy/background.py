"""A version's background processes (its Procfile) across deploys: the
pipeline's side. Each run with workers, clocks or cron jobs gets a second
vassal, ~/vassals/RUN.procs.ini: no socket, no workers, one daemon, the
supervisor (supervisor.py), which the Emperor starts when the file appears,
brings back when the Emperor restarts, and stops with SIGTERM, repeated every
second, when the file goes (uWSGI SIGKILLs it after reload-mercy, set here
above DEPLOY_STOP_TIMEOUT so the supervisor's own timeout comes first).
- expand (before the switch): the vassal is written to ~/run, where the
  Emperor does not look, so a refused candidate never consumes a job;
- after the switch (go_live): it is moved into ~/vassals;
- the watch (watch_check): a worker or clock of the new run that exits is a
  broken version; the push is refused with that process's last lines;
- switch back and retire (stop): the file goes; the previous run, live
  again, takes its clock and cron back by itself;
- recovery (sweep): only the live run keeps a processes vassal."""
import os
import shlex
import sys
import time

from . import DeployError, FailedWithOutput, proclayout
from .links import remove_if_exists
from .paths import BIN_DIR
from .settings import config_path
from .procfile import CLOCK, WORKER, background, procfile_path, read
from .stats import poke, read_stats, vassal_state
from .supervisor import read_state
from .uwsgi_ini import deploy_options
from .vassal import log_tail, write_vassal_ini
from .waiting import wait_until

MERCY_MARGIN = 15   # seconds uWSGI waits beyond DEPLOY_STOP_TIMEOUT before it SIGKILLs the supervisor
START_TIMEOUT = 10  # seconds the watch waits for the supervisor to start every process


def entries_of(deploy_dir):
    """The Procfile's processes other than web ([] without a Procfile)."""
    return background(read(procfile_path(deploy_dir)))


def vassal_text(settings, version, deploy_dir, env_entries):
    """The processes vassal: the app's variables as `env` lines (escaped like
    the web vassal's), the supervisor as its one daemon."""
    argv = [sys.executable, "-I", os.path.join(os.path.normpath(BIN_DIR), "deploy-processes"),
            "--app", version.app.name, "--run", version.run_name, "--deploy-dir", deploy_dir,
            "--run-dir", settings.run_dir, "--log-dir", settings.log_dir, "--home", settings.home,
            "--vassals-dir", settings.vassals_dir,
            "--stop-timeout", f"{settings.stop_timeout:g}",
            "--singletons", "yes" if settings.singletons == "yes" else "no"]
    if settings.sources.get("singletons") != "environment":   # the file's value, read again as it changes
        argv += ["--config", config_path(os.environ)]
    command = "exec " + " ".join(shlex.quote(arg) for arg in argv)
    if "," in command:
        raise DeployError("a path of the processes' supervisor contains ',' (attach-daemon2 splits on it)")
    options = deploy_options(env_entries, chdir=deploy_dir, extra=[
        ("master", "true"),
        ("reload-mercy", int(settings.stop_timeout) + MERCY_MARGIN),
        ("logto", proclayout.procs_log(version)),
        ("attach-daemon2", f"cmd={command},stopsignal=15,reloadsignal=15"),
    ])
    return "[uwsgi]\n" + "".join(f"{option} = {value}\n" for option, value in options)


def prepare(settings, version, deploy_dir, env_entries):
    """At the expand stage: read the Procfile (refusing a bad one) and, when it
    has background processes, write the run's processes vassal where the
    Emperor does not look. Returns the entries."""
    entries = entries_of(deploy_dir)
    remove_if_exists(proclayout.waiting_ini(version))
    if entries:
        wait_earlier_gone(settings, version, settings.stop_timeout + MERCY_MARGIN)
        write_vassal_ini(proclayout.waiting_ini(version), vassal_text(settings, version, deploy_dir, env_entries))
    return entries


def wait_earlier_gone(settings, version, timeout):
    """An earlier processes vassal of the same run name (a rollback to a
    version retired moments ago) must be gone before the file is reused."""
    name = os.path.basename(proclayout.vassal_ini(version))

    def gone():
        stats = poke(settings)
        return stats is None or vassal_state(stats, name) is None
    if not wait_until(gone, timeout):
        raise DeployError(f"the earlier processes of {version.run_name} are still stopping")


def go_live(settings, version, say=None):
    """After the switch: the Emperor starts the run's processes. True if it has any."""
    waiting = proclayout.waiting_ini(version)
    if not os.path.exists(waiting):
        return False
    os.rename(waiting, proclayout.vassal_ini(version))
    poke(settings)
    if say:
        say(f"starting {version.run_name}'s processes ({os.path.basename(proclayout.vassal_ini(version))})")
    return True


def stop(settings, version, say=None):
    """The run's processes get SIGTERM and DEPLOY_STOP_TIMEOUT to finish;
    nothing waits for them here."""
    removed = remove_if_exists(proclayout.vassal_ini(version))
    remove_if_exists(proclayout.waiting_ini(version))
    if removed:
        poke(settings)
        if say:
            say(f"stopping {version.run_name}'s processes: SIGTERM, up to {settings.stop_timeout:g} s "
                "to finish what they do")
    return removed


def has_processes(version):
    return os.path.exists(proclayout.vassal_ini(version))


def watch_check(settings, version, say=None):
    """A callable for each look of the watch: raises FailedWithOutput when a
    worker or clock of the run exited (with its last log lines), or when
    they have not all started within START_TIMEOUT. Says once what runs."""
    if not has_processes(version):
        return None
    first_look = [None]
    told = []

    def check(window_closing=False):
        now = time.monotonic()
        first_look[0] = first_look[0] or now
        state = read_state(settings, version.run_name) or {}
        for process in state.get("processes", []):
            if process["kind"] in (WORKER, CLOCK) and process["exits"]:
                log = proclayout.type_log(settings, version.run_name, process["name"])
                raise FailedWithOutput(f"{process['name']}.{process['index']} exited (status "
                                       f"{process['last_exit']}) after going live",
                                       log_tail(log), os.path.basename(log))
        started = started_all(state)
        if window_closing and not started and now - first_look[0] > START_TIMEOUT:
            raise DeployError(f"the processes of {version.run_name} did not start within {START_TIMEOUT} s")
        if started and say and not told:
            told.append(True)
            say("processes: " + ", ".join(describe(p) for p in state["processes"]) +
                ("" if state.get("singletons") else " (clocks and cron run elsewhere)"))
        return started
    return check


def describe(process):
    label = f"{process['name']}.{process['index']}"
    if process["pid"]:
        return f"{label} pid {process['pid']}"
    return f"{label} waits for the old {process['name']} to exit" if process["waiting_for_lock"] else f"{label} off"


def started_all(state):
    """Every worker type and (when the run holds them) every clock runs."""
    types = state.get("types")
    if types is None:
        return False
    running = {p["name"] for p in state.get("processes", []) if p["pid"]}
    waiting = {p["name"] for p in state.get("processes", []) if p["waiting_for_lock"]}
    for entry in types:
        if entry["kind"] == WORKER and entry["name"] not in running:
            if not any(p["name"] == entry["name"] for p in state["processes"]):
                return False   # not even attempted yet (scaled to 0 shows a slot)
        if entry["kind"] == CLOCK and state.get("singletons") and entry["name"] not in running | waiting:
            return False
    return True


def sweep(settings, app, live_run, say, emperor_running=True):
    """Recovery: only the live run keeps a processes vassal; a live run whose
    deploy died between the switch and go_live gets its processes now."""
    changed = False
    for directory in (settings.vassals_dir, settings.run_dir):
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if not name.endswith(proclayout.PROCS_INI_SUFFIX):
                continue
            run = app.run_from_name(name[:-len(proclayout.PROCS_INI_SUFFIX)])
            if run is None:
                continue
            if run.run_name != live_run:
                if directory == settings.vassals_dir:
                    say(f"stopping the processes of {run.run_name}, which is not live")
                remove_if_exists(os.path.join(directory, name))
                changed = True
            elif directory == settings.run_dir and not os.path.exists(proclayout.vassal_ini(run)):
                say(f"starting the processes of {run.run_name}, live since an interrupted deploy")
                os.rename(os.path.join(directory, name), proclayout.vassal_ini(run))
                changed = True
    if changed and emperor_running:
        poke(settings)


def process_facts(settings, version):
    """For deploy-status: each process type of the run, with count, pids,
    uptime and restarts; None when the run has no processes."""
    state = read_state(settings, version.run_name)
    if state is None and not has_processes(version):
        return None
    facts = {"supervisor": (state or {}).get("pid"), "singletons": (state or {}).get("singletons"),
             "types": []}
    now = time.time()
    for entry in (state or {}).get("types", []):
        slots = [p for p in state["processes"] if p["name"] == entry["name"]]
        running = [p for p in slots if p["pid"]]
        facts["types"].append({
            "name": entry["name"], "kind": entry["kind"], "count": len(running),
            "pids": [p["pid"] for p in running],
            "uptime": [round(now - p["started"], 1) for p in running],
            "restarts": sum(p["restarts"] for p in slots),
            "running_jobs": [c["pid"] for c in state.get("cron", []) if c["name"] == entry["name"]],
        })
    return facts


def emperor_runs(settings, version):
    """Whether the Emperor runs the run's processes vassal now."""
    return vassal_state(read_stats(settings.emperor_stats), os.path.basename(proclayout.vassal_ini(version))) \
        is not None


def render_processes(facts):
    """deploy-status's lines for process_facts (none when it is None)."""
    if not facts:
        return []
    lines = []
    for index, row in enumerate(facts["types"]):
        label = "  processes " if index == 0 else " " * 12
        if row["kind"] == "cron":
            running = f"{len(row['running_jobs'])} running (pids {' '.join(map(str, row['running_jobs']))})" \
                if row["running_jobs"] else "none running"
            lines.append(f"{label}{row['name']:<12} cron    {running}")
            continue
        pids = " ".join(map(str, row["pids"])) or "-"
        uptime = " ".join(f"{seconds:.0f}s" for seconds in row["uptime"]) or "-"
        lines.append(f"{label}{row['name']:<12} {row['kind']:<7} {row['count']} running  pids {pids}  "
                     f"up {uptime}  restarts {row['restarts']}")
    if not facts["types"]:
        lines.append("  processes starting")
    if facts["types"] and not facts["singletons"] and any(r["kind"] != "worker" for r in facts["types"]):
        lines.append(" " * 12 + "(clocks and cron run elsewhere: this run is not live here, "
                                "or DEPLOY_SINGLETONS=no)")
    return lines


def remove_run_files(settings, run):
    """deploy-cleanup: a removed run's process logs (~/log/RUN.TYPE.log,
    RUN.procs.log) and, when nothing runs it, its state and waiting vassal."""
    from .procfile import NAME
    prefix = run.run_name + "."
    for name in os.listdir(settings.log_dir) if os.path.isdir(settings.log_dir) else []:
        middle = name[len(prefix):-len(".log")] if name.startswith(prefix) and name.endswith(".log") else ""
        if NAME.match(middle):   # a type's name starts with a letter: never a restart's number
            remove_if_exists(os.path.join(settings.log_dir, name))
    if not has_processes(run):
        remove_if_exists(proclayout.state_file(settings, run.run_name))
        remove_if_exists(proclayout.waiting_ini(run))
