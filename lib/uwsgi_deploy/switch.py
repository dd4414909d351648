"""The second half of a deploy (pipeline.py): the switch, switch .. link.
From the switch on the new version serves. The watch can still send the
traffic back (switch_back); retire and link only finish the deploy."""
import time

from .deploylog import append_entry, known_commit
from .health import watch_health
from .links import remove_if_exists, switch_symlink
from .stages import ABANDONING, SWITCHED
from .vassal import retire_vassal, wait_drained


class Switch:
    """target.version (stages.Target) takes the app's traffic from
    target.previous, for request (stages.Request), its stages run by stages."""

    def __init__(self, request, target, stages):
        self.request, self.target, self.stages = request, target, stages
        self.settings, self.report = request.settings, stages.report
        self.version, self.app = target.version, request.app
        self.live_at = None   # when the new version took traffic (time.monotonic)

    def switch(self):
        with self.stages.stage("switch", f"Switching {self.app.live_socket} to {self.version.run_name}"):
            self.stages.progress.phase = SWITCHED   # first: a signal from here on must not abandon it
            switch_symlink(self.app.live_socket, self.version.socket)
            self.live_at = time.monotonic()

    def watch(self):
        """For DEPLOY_WATCH seconds after the switch, the old version still
        running, judge the new one's health (see health.py): a busy version
        passes, a broken one is switched back."""
        if self.settings.watch <= 0:
            return
        with self.stages.stage("watch", f"Watching {self.version.run_name} for {self.settings.watch:g} s"):
            watch_health(self.settings, self.version, self.settings.watch, self.report.say)

    def switch_back(self):
        """The watch failed: traffic goes back to the previous version at once
        (or, on a first deploy, nowhere, as before). The new version has served
        requests, so it is then retired like any old version (retire_served):
        no request that reached it is cut."""
        self.stages.progress.phase = ABANDONING
        previous = self.target.previous
        if previous is not None:
            switch_symlink(self.app.live_socket, previous.socket)
            self.report.warn(f"switched back to {previous.run_name}")
        else:
            remove_if_exists(self.app.live_socket)

    def retire_served(self, version):
        """Remove a version that took traffic, once its queue is empty and no
        worker is busy (at most DEPLOY_DRAIN_TIMEOUT); the Emperor stops it
        gracefully, so a request still running finishes."""
        self.report.say(f"letting {version.run_name} finish the requests it accepted")
        if not wait_drained(version, self.settings.drain_timeout):
            self.report.warn(f"{version.run_name} still busy after {self.settings.drain_timeout:g} s; "
                             "stopping it gracefully")
        retire_vassal(version)

    def retire(self):
        previous = self.target.previous
        if previous is None or previous.run_name == self.version.run_name:
            return
        with self.stages.stage("retire", f"Retiring {previous.run_name}"):
            self.retire_served(previous)

    def link(self):
        with self.stages.stage("link", f"Linking {self.app.home_link}"):
            switch_symlink(self.app.home_link, self.version.workdir)
            self.stages.point("log")
            source = self.request.source
            commit = source.commit if source else known_commit(self.settings.log_file, self.version)
            append_entry(self.settings.log_file, self.version, commit, self.request.how,
                         self.stages.elapsed(), self.target.logged_previous)

    def summary(self):
        """The last line: when the new version took traffic (the switch) and,
        with a watch, that the push returned only after watching it."""
        total = self.stages.elapsed()
        setup = self.report.durations.get("setup")
        extra = f", setup {setup:.1f} s" if setup is not None else ""
        watched = self.report.durations.get("watch")
        after = f", then watched it {watched:.1f} s" if watched is not None else ""
        return (f"{self.version.run_name} is live: serving {self.live_at - self.stages.started:.2f} s into "
                f"the deploy{after} ({total:.1f} s in all{extra})")
