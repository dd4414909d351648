"""Where a version's background processes (Procfile) keep their files, named
after the run (APP-<rev>[.N]) like its vassal, so recovery and cleanup
find exactly one app's files:
  ~/vassals/RUN.procs.ini   the processes vassal: the Emperor runs the
                            supervisor (bin/deploy-processes) as its daemon
  ~/run/RUN.procs.ini       the same, written before the switch, moved into
                            ~/vassals when the version goes live
  ~/run/RUN.procs.state     what the supervisor runs now (JSON)
  ~/log/RUN.TYPE.log        each process type's output (and the supervisor's
                            lines about it); ~/log/RUN.procs.log: uWSGI's
and per app: ~/run/APP.CLOCK.lock (held by the running clock process itself),
~/run/APP.cron.lock and ~/run/APP.cron.ticks (the last minute each cron job
fired), ~/APP.scale (deploy-scale's counts)."""
import os

PROCS_INI_SUFFIX = ".procs.ini"
STATE_SUFFIX = ".procs.state"
PROCS_LOG_SUFFIX = ".procs.log"


def vassal_ini(version):
    return os.path.join(version.app.settings.vassals_dir, version.run_name + PROCS_INI_SUFFIX)


def waiting_ini(version):
    """The processes vassal, written at the expand stage, not yet live."""
    return os.path.join(version.app.settings.run_dir, version.run_name + PROCS_INI_SUFFIX)


def state_file(settings, run_name):
    return os.path.join(settings.run_dir, run_name + STATE_SUFFIX)


def type_log(settings, run_name, process_name):
    return os.path.join(settings.log_dir, f"{run_name}.{process_name}.log")


def procs_log(version):
    return os.path.join(version.app.settings.log_dir, version.run_name + PROCS_LOG_SUFFIX)


def clock_lock(settings, app_name, clock_name):
    return os.path.join(settings.run_dir, f"{app_name}.{clock_name}.lock")


def cron_lock(settings, app_name):
    return os.path.join(settings.run_dir, f"{app_name}.cron.lock")


def cron_ticks(settings, app_name):
    return os.path.join(settings.run_dir, f"{app_name}.cron.ticks")


def scale_file(settings, app_name):
    return os.path.join(settings.home, f"{app_name}.scale")
