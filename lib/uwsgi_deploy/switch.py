"""The second half of a deploy (pipeline.py): the switch, switch .. link.
From the switch on the new version serves. The watch can still send the
traffic back (switch_back) and refuse the push. Once it passed, the deploy
only finishes (finish: retire, link, log): the new version serves whatever
happens there, so a failure is a warning and the deploy.log line names what
was left undone; the push succeeds."""
import time

from . import background, error_line
from .deploylog import append_entry, known_commit
from .gate import key_of
from .canary import follow as follow_canary_link
from .health import watch_health
from .links import remove_if_exists, switch_symlink
from .listeners import WatchOpened
from .stages import ABANDONING, SWITCHED, StageFailed
from .traffic import TrafficWatch
from .vassal import retire_vassal, wait_drained


class Switch:
    """target.version (stages.Target) takes the app's traffic from
    target.previous, for request (stages.Request), its stages run by stages."""

    def __init__(self, request, target, stages):
        self.request, self.target, self.stages = request, target, stages
        self.settings, self.report = request.settings, stages.report
        self.version, self.app = target.version, request.app
        self.live_at = self.live_since = None   # when the new version took traffic (monotonic, wall clock)

    def switch(self):
        link = self.app.version_link   # during maintenance, the link behind the page
        with self.stages.stage("switch", f"Switching {link} to {self.version.run_name}"):
            self.stages.progress.phase = SWITCHED   # first: a signal from here on must not abandon it
            switch_symlink(link, self.version.socket)
            self.live_at, self.live_since = time.monotonic(), time.time()
            if link == self.app.live_socket:
                follow_canary_link(self.app)
            else:
                self.report.say(f"{self.app.name} is in maintenance: {self.version.run_name} takes no traffic "
                                f"until `deploy-maintenance {self.app.name} off`")

    def watch(self):
        """For DEPLOY_WATCH seconds after the switch, the old version still
        running, judge the new one's health (see health.py) and its traffic
        against the old one's (traffic.py): a busy version passes, a broken
        or clearly worse one is switched back. The new version's Procfile
        processes start first: a worker or clock dying is a broken version,
        and so is a listener any of its processes opens (listeners.py)."""
        background.go_live(self.settings, self.version, self.report.say)
        if self.settings.watch <= 0:
            return
        with self.stages.stage("watch", f"Watching {self.version.run_name} for {self.settings.watch:g} s"):
            traffic = (None if self.app.in_maintenance else   # then no request reaches it
                       TrafficWatch(self.settings, self.version, self.target.previous, self.live_since,
                                    self.report.say))
            watch_health(self.settings, self.version, self.settings.watch, self.report.say, traffic,
                         also=[background.watch_check(self.settings, self.version, self.report.say),
                               WatchOpened(self.settings, self.version, self.report.say)])
            if traffic:
                traffic.finish()

    def switch_back(self):
        """The watch failed: traffic goes back to the previous version at once
        (or, on a first deploy, nowhere, as before). The new version has served
        requests, so it is then retired like any old version (retire_served):
        no request that reached it is cut."""
        self.stages.progress.phase = ABANDONING
        previous = self.target.previous
        if previous is not None:
            switch_symlink(self.app.version_link, previous.socket)
            self.report.warn(f"switched back to {previous.run_name}")
        else:
            remove_if_exists(self.app.version_link)
        follow_canary_link(self.app)
        background.stop(self.settings, self.version, self.report.say)   # the previous run's take over

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
            background.stop(self.settings, previous, self.report.say)   # SIGTERM, DEPLOY_STOP_TIMEOUT to finish
            self.retire_served(previous)

    def finish(self):
        """retire, link, then the deploy.log line. Each runs whatever the one
        before did: a failure is reported as a warning (` !     stage: reason`)
        and named in the log line (unfinished=retire,link); what it left (the
        previous vassal still running, ~/APP still at the previous version)
        the next deploy's sweep and link put right. The stages that failed."""
        unfinished = []
        for name, step in (("retire", self.retire), ("link", self.link)):
            try:
                step()
            except Exception as error:
                self.report.warn(str(StageFailed.of(name, error)))
                unfinished.append(name)
        if unfinished:
            self.report.warn(f"{self.version.run_name} is live all the same; the next deploy of "
                             f"{self.app.name} finishes what {' and '.join(unfinished)} left undone")
        self.log(unfinished)
        return unfinished

    def link(self):
        with self.stages.stage("link", f"Linking {self.app.home_link}"):
            switch_symlink(self.app.home_link, self.version.workdir)

    def log(self, unfinished=()):
        """The deploy's line in deploy.log: the version went live. Should
        even that fail, the pusher is told that the log misses it."""
        try:
            self.stages.point("log")
            source = self.request.source
            commit = source.commit if source else known_commit(self.settings.log_file, self.version)
            append_entry(self.settings.log_file, self.version, commit, self.request.via,
                         self.stages.elapsed(), self.target.logged_previous, unfinished,
                         key=key_of(self.request.environ))
        except Exception as error:
            self.report.warn(f"log: {self.settings.log_file} does not record that {self.version.run_name} "
                             f"went live ({error_line(error)})")

    def summary(self):
        """The last line: when the new version took traffic (the switch) and,
        with a watch, that the push returned only after watching it."""
        total = self.stages.elapsed()
        setup = self.report.durations.get("setup")
        extra = f", setup {setup:.1f} s" if setup is not None else ""
        watched = self.report.durations.get("watch")
        after = f", then watched it {watched:.1f} s" if watched is not None else ""
        if self.app.in_maintenance:
            return (f"{self.version.run_name} is live behind the maintenance page: it serves after "
                    f"`deploy-maintenance {self.app.name} off` ({total:.1f} s in all{extra})")
        return (f"{self.version.run_name} is live: serving {self.live_at - self.stages.started:.2f} s into "
                f"the deploy{after} ({total:.1f} s in all{extra})")
