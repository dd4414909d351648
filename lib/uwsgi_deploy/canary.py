"""A canary: before a new version takes all the traffic, it takes the share
of clients the nginx site sends to ~/run/APP.canary.socket, for a set time,
and is judged on what it answers against what the live version answers in
the same seconds (traffic.judge), besides the watch's checks (health.py).

The site deploy-init prints carries an upstream of two servers, the live
socket and the canary link, weighted 100-DEPLOY_CANARY_SHARE : share, hashed
on the client's address (a client stays on its side). The canary link points
where the live socket does, except while a canary runs, so no deploy needs
an nginx reload; every switch of the live socket moves it too (follow).

An older site without the canary upstream never uses the link: no request
reaches the canary, which is said, and the deploy goes on as without one
(switch, then the watch judges the version as usual).

Ends: the time is up and the canary is not worse (promoted: the pipeline's
switch); or it is clearly worse, its processes die, its /ping fails
(aborted: the link goes back to the live version, the canary finishes what
it accepted and stops); or `deploy-version --abort APP REV` asks (a flag
file the canary's loop looks at: the deploy holds the app's lock)."""
import json
import os
import time

from . import DeployError
from .health import watch_health
from .layout import hidden_temporary
from .stages import ABANDONING, StageFailed
from .links import remove_if_exists, switch_symlink
from .listeners import WatchOpened
from .traffic import Limits, LogFollower, Traffic, judge, ms, pct, percentile
from .waiting import wait_until

PROGRESS_EVERY = 5.0    # seconds between the pusher's progress lines
LOOK_EVERY = 0.5        # seconds between reads of both versions' logs
DEFAULT_SECONDS = 60    # `git push -o canary` with DEPLOY_CANARY unset


def record_path(app):
    return os.path.join(app.settings.run_dir, app.name + ".canary.json")


def abort_flag(app):
    return os.path.join(app.settings.run_dir, app.name + ".canary.abort")


def write_record(app, version, seconds, share):
    path = record_path(app)
    temporary = hidden_temporary(path)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        json.dump({"version": version.run_name, "rev": version.rev, "since": time.time(),
                   "seconds": seconds, "share": share, "pid": os.getpid()}, stream)
    os.rename(temporary, path)


def read_record(app):
    """The running canary's record, or None (none runs; a dead deploy's is ignored)."""
    try:
        with open(record_path(app)) as stream:
            record = json.load(stream)
        os.kill(int(record["pid"]), 0)
        return record
    except (OSError, ValueError, KeyError, TypeError):
        return None


def follow(app):
    """Point the canary link where the live socket points (after any switch
    of the live socket, and when a canary ends)."""
    try:
        target = os.readlink(app.live_socket)
    except OSError:
        remove_if_exists(app.canary_link)
        return
    switch_symlink(app.canary_link, os.path.join(os.path.dirname(app.live_socket), target))


def request_abort(app, rev, say, timeout=60):
    """deploy-version --abort APP REV while REV's canary runs: ask its deploy
    to end it, and wait until it has. True if a canary of REV was running."""
    record = read_record(app)
    if record is None or not str(record.get("rev", "")).startswith(rev):
        return False
    with open(abort_flag(app), "w") as stream:
        stream.write(f"{os.getpid()}\n")
    say(f"asked the canary of {record['version']} to stop")
    if not wait_until(lambda: read_record(app) is None, timeout):
        raise DeployError(f"the canary of {record['version']} did not stop within {timeout} s")
    say(f"the canary of {record['version']} is over: {app.name} serves as before it")
    return True


def side(traffic):
    if not traffic.total:
        return "0 requests"
    times = traffic.all_times()
    return f"{traffic.total} requests, 5xx {pct(traffic.rate)}, p50 {ms(percentile(times, 0.5))}"


class CanaryTraffic:
    """The canary's requests and the live version's, both since the canary
    began, for watch_health's traffic hook: poll() says how it goes every
    PROGRESS_EVERY seconds and raises as soon as the canary is clearly worse
    (5xx at once, latency after DEPLOY_WATCH seconds) or an abort was asked;
    finish() judges both at the end."""

    def __init__(self, settings, app, canary, live, since, seconds, share, say, clock=time.monotonic):
        self.settings, self.app, self.canary, self.live = settings, app, canary, live
        self.seconds, self.share, self.say, self.clock = seconds, share, say, clock
        since_ms = int(since * 1000)
        self.new = LogFollower(canary.log, since_ms, settings.ping_path)
        self.old = LogFollower(live.log, since_ms, settings.ping_path)
        self.limits = Limits.of(settings)
        self.started = clock()
        self.last_look = self.last_progress = None
        self.than = f"on {live.run_name}"

    def figures(self):
        return Traffic.of(self.old.read()), Traffic.of(self.new.read())

    def progress(self, before, after):
        elapsed = self.clock() - self.started
        self.say(f"canary {elapsed:.0f} of {self.seconds:g} s, share {self.share}%: {self.canary.run_name} "
                 f"{side(after)} | {self.live.run_name} {side(before)}")

    def poll(self):
        now = self.clock()
        if os.path.exists(abort_flag(self.app)):
            remove_if_exists(abort_flag(self.app))
            raise DeployError("aborted by hand (deploy-version --abort)")
        if self.last_look is not None and now - self.last_look < LOOK_EVERY:
            return
        self.last_look = now
        before, after = self.figures()
        if self.last_progress is None or now - self.last_progress >= PROGRESS_EVERY:
            self.last_progress = now
            self.progress(before, after)
        # latency once DEPLOY_WATCH seconds are in (a fresh version's first
        # requests are no measure of it); 5xx from the first look
        latency = now - self.started >= self.settings.watch
        verdict = judge(before, after, self.limits, latency=latency, than=self.than)
        if verdict.broken:
            raise DeployError(verdict.broken)

    def wants_more(self):
        return False

    def finish(self):
        before, after = self.figures()
        if self.clock() - self.last_progress >= 1:
            self.progress(before, after)
        verdict = judge(before, after, self.limits, than=self.than)
        if verdict.broken:
            raise DeployError(verdict.broken)
        if after.total == 0:
            self.say(f"no request reached the canary: is the nginx site the one deploy-init prints "
                     f"(with the canary upstream on {self.app.canary_link})? Going on without it")
        elif not verdict.judged:
            self.say(f"canary: too few requests to judge ({verdict.measured}); the watch judges it next")
        else:
            self.say(f"canary passed: {verdict.measured}")


def canary_seconds(settings, push_options):
    """How long a push's canary runs (0: none): `-o canary[=SECONDS]` or
    `-o no-canary` on the push, else DEPLOY_CANARY."""
    seconds = settings.canary
    for option in push_options:
        name, _, value = option.partition("=")
        if name == "no-canary":
            seconds = 0
        elif name == "canary":
            if value:
                try:
                    seconds = float(value)
                except ValueError:
                    raise DeployError(f"push option canary={value!r}: a number of seconds") from None
                if not 0 <= seconds <= 86400:
                    raise DeployError(f"push option canary={value}: 0 to 86400 seconds")
            else:
                seconds = settings.canary or DEFAULT_SECONDS
    return seconds


def push_options(environ):
    """git's push options (GIT_PUSH_OPTION_COUNT, GIT_PUSH_OPTION_0..)."""
    try:
        count = int(environ.get("GIT_PUSH_OPTION_COUNT") or 0)
    except ValueError:
        return []
    return [environ.get(f"GIT_PUSH_OPTION_{n}", "") for n in range(min(count, 100))]


def run(deploy, switch, target, seconds):
    """The canary stage of deploy (a pipeline.Deploy) before switch (its
    switch.Switch): the canary link points at target.version for `seconds`,
    judged against target.previous in the same seconds. On a failure (or an
    abort by hand) the link goes back, the new version finishes what it
    accepted and stops, and the push is refused (StageFailed `canary: ...`)."""
    app, settings, report = deploy.request.app, deploy.request.settings, deploy.report
    version, previous = target.version, target.previous
    if previous is None or app.in_maintenance:
        why = "no version is live" if previous is None else f"{app.name} is in maintenance"
        report.stage(f"No canary: {why}")
        return
    share = settings.canary_share
    try:
        with deploy.stages.stage("canary", f"Canary: {version.run_name} takes the clients of {share}% of "
                                           f"addresses for {seconds:g} s, {previous.run_name} the others"):
            write_record(app, version, seconds, share)
            since = time.time()
            switch_symlink(app.canary_link, version.socket)
            traffic = CanaryTraffic(settings, app, version, previous, since, seconds, share, report.say)
            watch_health(settings, version, seconds, report.say, traffic,
                         also=[WatchOpened(settings, version, report.say)])
            traffic.finish()
    except Exception as error:
        deploy.progress.phase = ABANDONING
        failure = StageFailed.of("canary", error)
        follow(app)
        deploy.report_failure(failure)
        report.warn(f"the canary is over: every client is back on {previous.run_name}")
        switch.retire_served(version)
        deploy.report_not_deployed(target)
        raise failure from None
    finally:
        remove_if_exists(record_path(app))
        remove_if_exists(abort_flag(app))
