"""deploy-cleanup: remove old versions and what they leave behind.

Per app: keep the N most recently deployed versions (by their latest
deploy.log entry; by directory time in an app that has no log entries) and,
whatever N, the live version, the previous one (the rollback target), any
version with a vassal ini and the version a running deploy works on. Remove
the rest, failed deploys (checked out, never logged) first of all, with their
logs and stale sockets, plus half checkouts and the logs and sockets of
versions whose directory is gone, and the content of the app's store that
no version left on disk uses (store.py). It says how many bytes that frees
on disk (st_blocks: content still shared by a kept version is not counted,
and counts when its last user goes). Then, across apps, the dependency
environments in ~/venvs that no version left on disk uses.

A real run holds the app's deploy lock while it removes (a push waits for
it); when a deploy holds the lock, that deploy's version and every half
checkout of the app are left alone."""
import collections
import contextlib
import os
import shutil
import sys

from . import DeployError, background
from .inventory import AppState, hidden_work_files, log_files, selected_apps, socket_files
from .links import remove_if_exists
from .lock import DeployLock, Holder, holder_of
from .settings import load
from .store import BLOCK, ContentStore, collect, link_counts, own_bytes, tree_inodes
from .venvs import clean_environments


def parse_keep(text, default):
    if text is None:
        return default
    try:
        keep = int(text)
    except ValueError:
        raise DeployError(f"N must be a whole number, not {text!r}") from None
    if keep < 0:
        raise DeployError(f"N must be 0 or more, not {keep}")
    return keep


def cleanup(keep=None, app_name=None, dry_run=False, environ=None, out=None):
    out = out or sys.stdout
    settings = load(os.environ if environ is None else environ)
    keep = parse_keep(keep, settings.keep)
    leaving = set()     # versions removed (or, dry, that would be)
    for app in selected_apps(settings, app_name):
        if dry_run:
            leaving |= Cleanup(app, keep, holder_of(app.lock_file), dry_run=True, out=out).run()
            continue
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(DeployLock(app.lock_file, 0, "deploy-cleanup"))
                holder = None
            except DeployError:    # a deploy (or another cleanup) holds it
                holder = holder_of(app.lock_file) or Holder("unknown holder")
            leaving |= Cleanup(app, keep, holder, dry_run=False, out=out).run()
    # environments are shared by apps: one no version on disk uses is garbage
    clean_environments(settings, leaving, dry_run, lambda text: out.write(text + "\n"))


class Cleanup:
    def __init__(self, app, keep, holder, dry_run, out):
        self.app, self.keep, self.dry_run, self.out = app, keep, dry_run, out
        self.state = AppState(app, holder)
        self.store = ContentStore(app.store_dir)
        self.freed_own = 0                       # bytes of removed versions' own files, and logs
        self.leaving_links = collections.Counter()   # links the removed versions hold into the store

    def say(self, text):
        self.out.write(text + "\n")

    def most_recent(self):
        return "the most recent" if self.keep == 1 else f"the {self.keep} most recent"

    def why_old(self):
        return "old, and N is 0" if self.keep == 0 else f"older than {self.most_recent()}"

    def protected(self, version):
        """Why version must stay whatever N is, or None."""
        state = self.state
        if version == state.live:
            return "live"
        if version == state.previous:
            return "previous (rollback target)"
        if state.deploy_running and version == state.deploying:
            return "being deployed"
        if any(os.path.exists(run.vassal_ini) for run in self.runs(version)):
            return "has a vassal"
        if state.deploy_running and state.deploying is None and not state.is_logged(version):
            return f"not in deploy.log while the deploy lock is held ({state.holder})"
        return None

    def run(self):
        """Remove what is old; returns the versions removed (dry: would be)."""
        state = self.state
        self.removing = set()
        # an app that lost its log ranks every version by directory time
        ranked = [v for v in state.newest_first() if state.log_lost or state.is_logged(v)]
        recent = set(ranked[:self.keep])
        on_disk = set(state.versions)
        for version in state.newest_first():
            reason = self.protected(version)
            if reason:
                self.say(f"kept {version.name}: {reason}")
            elif version in recent:
                self.say(f"kept {version.name}: among {self.most_recent()}")
            elif version in ranked:
                self.remove(version, self.why_old())
            else:
                self.remove(version, "failed deploy")
        self.remove_orphans(on_disk)
        if not state.deploy_running:
            self.remove_half_checkouts()
        self.collect_store()
        return self.removing

    def collect_store(self):
        """The store's content no version uses any more, and what all was freed.
        While a deploy runs, content it has just stored may not be linked
        yet: the store is then left alone."""
        files = in_store = 0
        if self.state.deploy_running:
            if os.path.isdir(self.store.root):
                self.say(f"kept {os.path.basename(self.store.root)} as it is: {self.state.holder} is running")
        else:
            files, in_store = collect(self.store, self.dry_run, self.leaving_links)
        if self.dry_run or not (self.freed_own or in_store):
            return
        self.say(f"freed {self.freed_own + in_store:,} bytes on disk: {self.freed_own:,} in the removed "
                 f"{self.app.name}-<rev> directories and their logs, {in_store:,} in {files:,} files of "
                 f"{os.path.basename(self.store.root)} no version left uses")

    def act(self, text):
        self.say(("would remove " if self.dry_run else "removed ") + text)
        return not self.dry_run

    def remove(self, version, why):
        self.removing.add(version)
        inodes = tree_inodes(version.workdir)
        self.freed_own += own_bytes(inodes) + sum(file_bytes(path) for path in self.log_paths(version))
        if not self.act(f"{version.name}: {why}"):
            self.leaving_links.update(link_counts(inodes))
            return
        # renamed first, so it disappears at once and a crash halfway leaves
        # a half checkout the next run removes
        hidden = version.removal_temporary()
        try:
            os.rename(version.workdir, hidden)
            shutil.rmtree(hidden)
            self.remove_files(version)
        except OSError as err:
            raise DeployError(f"cannot remove {version.name}: {err.filename}: {err.strerror}") from None

    def runs_with_files(self):
        """Every run (APP-<rev>, or APP-<rev>.N after restarts) that has a log
        (or its older copy) or a socket, by run name."""
        return {run.run_name: run for files in (log_files(self.app), socket_files(self.app))
                for _path, run in files}

    def runs(self, version):
        """version's runs that left files, and the version itself."""
        return [version] + [run for run in self.runs_with_files().values() if run == version and run.run]

    def log_paths(self, version):
        return [path for run in self.runs(version) for path in (run.log, run.log_backup)]

    def remove_files(self, version):
        for run in self.runs(version):
            remove_if_exists(run.log)
            remove_if_exists(run.log_backup)
            background.remove_run_files(self.app.settings, run)   # its processes' logs
            if not os.path.exists(run.vassal_ini):
                remove_if_exists(run.socket)
                remove_if_exists(run.stats_socket)

    def remove_orphans(self, on_disk):
        """Logs and sockets of versions whose directory is gone."""
        found = {run.name: run.restart(0) for run in self.runs_with_files().values() if run not in on_disk}
        for version in sorted(found.values(), key=lambda v: v.name):
            if self.protected(version) is None:
                if self.act(f"{version.name}: its log and sockets (the version is no longer on disk)"):
                    self.remove_files(version)

    def remove_half_checkouts(self):
        """.APP-<rev>.tmp-* directories and .tar files an interrupted deploy
        (or cleanup) left; only called while no deploy of the app runs."""
        for path in hidden_work_files(self.app, self.app.settings.home):
            entry = os.path.basename(path)
            if os.path.isdir(path) and not os.path.islink(path):
                if self.act(f"{entry}: half checkout left by an interrupted deploy"):
                    shutil.rmtree(path)
            elif entry.endswith(".tar") and os.path.isfile(path):
                if self.act(f"{entry}: archive left by an interrupted deploy"):
                    os.unlink(path)
        for path in self.store.temporaries():
            if self.act(f"{os.path.relpath(path, self.app.settings.home)}: content an interrupted deploy "
                        "was storing"):
                shutil.rmtree(path)


def file_bytes(path):
    """Bytes path takes on disk, 0 when it is not there."""
    try:
        return os.lstat(path).st_blocks * BLOCK
    except FileNotFoundError:
        return 0
