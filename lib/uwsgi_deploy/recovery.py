"""Cleaning up after a deploy that died (SIGKILL, a lost client, a crash).

A deploy only ever adds: a hidden checkout, content being written to the
app's store (store.py), a hidden ini, a candidate vassal
(and its record, when it was only prepared), a temporary symlink. Until the
switch none of them is live; after it, the old vassal is merely not retired
yet. So whatever a dead deploy left, removing every vassal that is not live
(and the hidden files) restores the layout. The next deploy of the app does it under the app's lock, and deploy-emperor
does it for every app before the Emperor starts, so a restarted Emperor never
resurrects a stale candidate."""
import os
import shutil

from . import DeployError, background, maintenance
from .canary import follow as follow_canary_link
from .inventory import apps_on_disk, hidden_work_files, prepared_records, socket_files
from .layout import App
from .links import remove_if_exists
from .lock import DeployLock
from .store import ContentStore, remove_temporaries
from .vassal import remove_vassal, wait_drained


def sweep_app(settings, app, say=None, emperor_running=True):
    """Remove what interrupted deploys of app left. The caller holds app's lock."""
    live = app.live_version()
    live_run = live.run_name if live else None   # runs of one version are ==; only this one serves
    say = say or (lambda text: None)
    if os.path.lexists(app.canary_link) or os.path.lexists(app.live_socket):
        follow_canary_link(app)   # a dead deploy's canary: every client back on the live version
    for path in hidden_work_files(app, settings.vassals_dir):   # a vassal ini being written
        remove_if_exists(path)
    vassals = settings.vassals_dir
    for name in sorted(os.listdir(vassals)) if os.path.isdir(vassals) else []:
        path = os.path.join(vassals, name)
        if name.endswith(".ini"):
            stale = app.run_from_name(name[:-4])
            if stale and stale.run_name != live_run:
                why = ("prepared and never committed or aborted" if os.path.exists(stale.prepared_file)
                       else "left by an interrupted deploy")
                say(f"removing {stale.run_name}, {why}")
                if emperor_running:
                    wait_drained(stale, settings.drain_timeout)
                    remove_vassal(settings, stale, settings.drain_timeout, kill_after=settings.drain_timeout)
                else:
                    remove_if_exists(path)
    background.sweep(settings, app, live_run, say, emperor_running)
    for path in hidden_work_files(app, settings.home):     # half checkouts
        shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else remove_if_exists(path)
    remove_temporaries(ContentStore(app.store_dir))       # content being written to the store
    for directory, pattern in app.temporary_links():     # ~/APP.<pid>.new, ~/run/APP.socket.<pid>.new
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if pattern.match(name):
                remove_if_exists(os.path.join(directory, name))
    for path, run in socket_files(app):
        # a killed vassal cannot vacuum: its sockets stay behind
        if run.run_name != live_run and not os.path.exists(run.vassal_ini):
            remove_if_exists(path)
    for path, run in prepared_records(app):
        # a prepared candidate's record: its vassal was removed above
        if run.run_name != live_run:
            remove_if_exists(path)
    if emperor_running:
        maintenance.sweep(settings, app, say)


def sweep_all(settings, say=None):
    """sweep_app for every app not being deployed right now (Emperor stopped)."""
    for name in apps_on_disk(settings):
        app = App(settings, name)
        try:
            with DeployLock(app.lock_file, 0, "deploy-emperor (start-up sweep)"):
                sweep_app(settings, app, say, emperor_running=False)
        except DeployError:
            continue   # a deploy holds the lock: it sweeps for itself
