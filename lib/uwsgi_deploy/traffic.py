"""A version judged by its real traffic: what it answered, read from its own
request lines, against what the version it replaced answered before.

Every vassal logs one line per request into its own log (the deployer sets
`logformat` and turns request logging on, whatever the app's ini says):

    ud-req <start, epoch ms> <status> <response time, us> <method> <uri>

uWSGI writes each line with one write() on the log it opened O_APPEND, and
the time is the worker's own (accept to last byte), so a request that waited
in the listen queue behind slow ones does not count as slow: a busy version
is not a slow one. Lines the app prints itself are skipped unless they parse.

The judgement (judge) compares like with like:
- 5xx: the new version's rate against the old one's, refused when it is at
  least DEPLOY_WATCH_5XX percentage points higher AND the excess is beyond
  chance (the new count has probability < ALPHA under the old rate);
- latency, per path (query strings dropped): the p50 of each path that has
  enough requests on both sides; slower is at least DEPLOY_WATCH_SLOWER
  times AND DEPLOY_WATCH_SLOWER_MS more. Slow requests that fill every
  worker are the same path on both sides, so they compare with themselves.
  The p95 is reported, not judged: on a shared 2-core machine a healthy
  version's p95 of a 5-ms path was measured at 72 ms in one window and 6 ms
  in the next (other processes took the CPU), which would refuse healthy
  pushes; the p50 of the same windows moved by 1 ms.
Requests to DEPLOY_PING_PATH are not traffic: the watch sends them itself.
Too few requests (under DEPLOY_WATCH_MIN_REQUESTS on either side) judge
nothing; the watch says so and keeps its other checks."""
import math
import os
import time
from dataclasses import dataclass, field

from . import DeployError

MARKER = "ud-req"
# The %(...) are uWSGI's logformat variables; written raw (uwsgi_ini escapes
# every other value): no option of that name exists, so uWSGI keeps them.
LOG_FORMAT = f"{MARKER} %(tmsecs) %(status) %(micros) %(method) %(uri)"
LOG_OPTIONS = (("disable-logging", "false"), ("logformat", LOG_FORMAT))

ALPHA = 0.001               # chance a healthy version's 5xx count is taken for a worse one
PATH_MIN_REQUESTS = 20      # requests a path needs on each side for its p50 to count
BASELINE_BYTES = 4 << 20    # read at most this much of the old version's log (~80,000 requests)
BASELINE_MAX_REQUESTS = 20000
LOOK_EVERY = 0.5            # seconds between reads of the new version's log


@dataclass(frozen=True)
class Request:
    start_ms: int
    status: int
    micros: int
    method: str
    path: str


def parse_line(line):
    """A Request from one request line, or None (not ours, or garbled)."""
    parts = line.split(" ", 5)
    if len(parts) != 6 or parts[0] != MARKER:
        return None
    _, start, status, micros, method, uri = parts
    if not (start.isdigit() and status.isdigit() and micros.isdigit() and len(status) == 3):
        return None
    return Request(int(start), int(status), int(micros), method, uri.rstrip("\r\n").split("?", 1)[0])


def parse(data):
    """Requests in a chunk of log (bytes); a partial last line is left out."""
    text = data.decode("utf-8", "replace")
    found = []
    for line in text.split("\n")[:-1]:
        if line.startswith(MARKER):
            request = parse_line(line)
            if request:
                found.append(request)
    return found


def read_tail(path, max_bytes):
    """The last max_bytes of path, from the start of a line ('' if missing)."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            size = stream.tell()
            stream.seek(max(0, size - max_bytes))
            data = stream.read(max_bytes)
    except OSError:
        return b""
    if size > max_bytes:
        data = data.partition(b"\n")[2]
    return data


def requests_before(version, until_ms, seconds, ping_path):
    """What version answered in the `seconds` before until_ms (epoch ms),
    from its log and the one older copy the log cap keeps; at most the
    last BASELINE_MAX_REQUESTS."""
    data = read_tail(version.log, BASELINE_BYTES)
    if len(data) < BASELINE_BYTES // 2:
        data = read_tail(version.log_backup, BASELINE_BYTES - len(data)) + data
    since_ms = until_ms - seconds * 1000
    found = [r for r in parse(data) if since_ms <= r.start_ms < until_ms and r.path != ping_path]
    return found[-BASELINE_MAX_REQUESTS:]


class LogFollower:
    """Requests a version starts from since_ms on, read as its log grows. A
    log the cap just emptied is read again from its start."""

    def __init__(self, path, since_ms, ping_path):
        self.path, self.since_ms, self.ping_path = path, since_ms, ping_path
        self.offset = 0
        self.partial = b""
        self.requests = []

    def read(self):
        try:
            with open(self.path, "rb") as stream:
                stream.seek(0, os.SEEK_END)
                if stream.tell() < self.offset:
                    self.offset, self.partial = 0, b""
                stream.seek(self.offset)
                data = stream.read()
        except OSError:
            return self.requests
        self.offset += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        self.requests += [r for r in parse(data[:cut])
                          if r.start_ms >= self.since_ms and r.path != self.ping_path]
        return self.requests


# -- figures -------------------------------------------------------------------
def percentile(values, fraction):
    """The nearest-rank percentile of sorted values."""
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


@dataclass
class Traffic:
    """What one side served: requests, 5xx, and response times per path."""
    total: int = 0
    errors: int = 0
    times: dict = field(default_factory=dict)    # path -> sorted micros

    @classmethod
    def of(cls, requests):
        times = {}
        errors = 0
        for request in requests:
            errors += request.status >= 500
            times.setdefault(request.path, []).append(request.micros)
        for values in times.values():
            values.sort()
        return cls(len(requests), errors, times)

    @property
    def rate(self):
        return self.errors / self.total if self.total else 0.0

    def all_times(self):
        return sorted(t for values in self.times.values() for t in values)


def binomial_tail(k, n, p):
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1 or k > n:
        return 1.0 if p >= 1 else 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        term = math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * log_p + (n - i) * log_q)
        total += term
        if i > n * p and term < total * 1e-12:
            break
    return min(1.0, total)


@dataclass(frozen=True)
class Limits:
    min_requests: int       # DEPLOY_WATCH_MIN_REQUESTS
    max_5xx_rise: float     # DEPLOY_WATCH_5XX, percentage points (0: not judged)
    slower: float           # DEPLOY_WATCH_SLOWER, times (0: not judged)
    slower_ms: float        # DEPLOY_WATCH_SLOWER_MS

    @classmethod
    def of(cls, settings):
        return cls(settings.watch_min_requests, settings.watch_5xx, settings.watch_slower, settings.watch_slower_ms)


def ms(micros):
    return f"{micros / 1000:.1f} ms"


def pct(rate):
    return f"{100 * rate:.1f}%"


@dataclass(frozen=True)
class Verdict:
    judged: bool        # False: too few requests (or nothing to compare with)
    broken: str         # why the new version is worse, or "" when it is not
    measured: str       # both sides' figures, for the pusher


def error_verdict(before, after, limits, than="before"):
    """Why after's 5xx are clearly worse than before's, or ''."""
    if not limits.max_5xx_rise or after.errors == 0:
        return ""
    rise = after.rate - before.rate
    # the old rate, with one error and one success added: a baseline that
    # saw no error still leaves room for an occasional one
    expected = (before.errors + 1) / (before.total + 2)
    if rise * 100 >= limits.max_5xx_rise and binomial_tail(after.errors, after.total, expected) < ALPHA:
        return (f"5xx {pct(after.rate)} ({after.errors} of {after.total} requests) "
                f"vs {pct(before.rate)} {than} ({before.errors} of {before.total})")
    return ""


def suspicious(before, after, limits):
    """after's 5xx rate is over the limit, though maybe by chance."""
    return bool(limits.max_5xx_rise and after.errors and (after.rate - before.rate) * 100 >= limits.max_5xx_rise)


def slower_paths(before, after, limits, than="before"):
    """[(how much slower, text)] for each path clearly slower after."""
    found = []
    if not limits.slower:
        return found
    for path, new in after.times.items():
        old = before.times.get(path, [])
        if len(new) < PATH_MIN_REQUESTS or len(old) < PATH_MIN_REQUESTS:
            continue
        was, now = percentile(old, 0.5), percentile(new, 0.5)
        if now >= limits.slower * max(was, 1) and now - was >= limits.slower_ms * 1000:
            found.append((now / max(was, 1), f"{path} p50 {ms(now)} ({len(new)} requests) "
                                             f"vs {ms(was)} {than} ({len(old)}), {now / max(was, 1):.1f}x"))
    return sorted(found, reverse=True)


def summary(before, after, than="before"):
    """`5xx 0.0% (412 requests) vs 0.1% (1803) before; p50 1.2 ms vs 1.1 ms, p95 ...`"""
    text = f"5xx {pct(after.rate)} ({after.total} requests) vs {pct(before.rate)} ({before.total}) {than}"
    new, old = after.all_times(), before.all_times()
    if new and old:
        text += (f"; p50 {ms(percentile(new, 0.5))} vs {ms(percentile(old, 0.5))}, "
                 f"p95 {ms(percentile(new, 0.95))} vs {ms(percentile(old, 0.95))}")
    return text


def judge(before, after, limits, latency=True, than="before"):
    """A Verdict on after (the new version's Traffic) against before (than
    says what before was, in the texts)."""
    measured = summary(before, after, than)
    if after.total < limits.min_requests or before.total < limits.min_requests:
        return Verdict(False, "", measured)
    broken = error_verdict(before, after, limits, than)
    if not broken and latency:
        slower = slower_paths(before, after, limits, than)
        if slower:
            broken = "slower: " + slower[0][1] + (f" (and {len(slower) - 1} more)" if len(slower) > 1 else "")
    return Verdict(True, broken, measured)


# -- during the watch ----------------------------------------------------------
class TrafficWatch:
    """The watch's look at real traffic: the new version's requests since the
    switch (at switched_at, epoch seconds) against what previous answered in
    the DEPLOY_WATCH_BASELINE seconds before it. poll() raises DeployError as
    soon as the 5xx are clearly worse; finish() judges latency too, and says
    what was measured. wants_more() keeps the watch going past DEPLOY_WATCH,
    up to DEPLOY_WATCH_MAX seconds, while it has too few requests and the old
    version served that many in the DEPLOY_WATCH_MAX seconds before the
    switch (traffic is coming), or while the new version's 5xx rate is over
    the limit but not yet beyond chance (50 requests with 2 errors prove
    nothing; a version failing 5% of them is refused within a few hundred)."""

    def __init__(self, settings, version, previous, switched_at, say=None, clock=time.monotonic):
        self.settings, self.version, self.previous = settings, version, previous
        self.limits = Limits.of(settings)
        self.since_ms = int(switched_at * 1000)
        self.say = say or (lambda text: None)
        self.clock = clock
        self.started = clock()
        self.follower = LogFollower(version.log, self.since_ms, settings.ping_path)
        self.before = None
        self.last_look = None
        self.recent = 0   # the old version's requests in the DEPLOY_WATCH_MAX s before the switch

    def baseline(self):
        if self.before is None:
            seconds = self.settings.watch_baseline
            requests = (requests_before(self.previous, self.since_ms, seconds, self.settings.ping_path)
                        if self.previous else [])
            self.before = Traffic.of(requests)
            recent_ms = self.since_ms - self.settings.watch_max * 1000
            self.recent = sum(1 for r in requests if r.start_ms >= recent_ms)
        return self.before

    def after(self):
        return Traffic.of(self.follower.read())

    def poll(self):
        """Look again (at most every LOOK_EVERY s); raise when 5xx are clearly worse."""
        now = self.clock()
        if self.last_look is not None and now - self.last_look < LOOK_EVERY:
            return
        self.last_look = now
        verdict = judge(self.baseline(), self.after(), self.limits, latency=False)
        if verdict.broken:
            raise DeployError(verdict.broken)

    def wants_more(self):
        """Why the watch should go on (DEPLOY_WATCH_MAX allowing), or ''."""
        if self.previous is None or self.clock() - self.started >= self.settings.watch_max:
            return ""
        before, after = self.baseline(), self.after()
        if before.total < self.limits.min_requests:
            return ""
        if after.total < self.limits.min_requests:
            return "too few requests yet to judge its traffic" if self.recent >= self.limits.min_requests else ""
        if suspicious(before, after, self.limits):
            return f"its 5xx are over the limit but not yet beyond chance ({summary(before, after)})"
        return ""

    def finish(self):
        """The last judgement, latency included: raise when broken, else say
        what was measured (or that there was too little to judge)."""
        if self.previous is None:
            self.say("traffic: no previous version to compare with; judged on /ping and its processes")
            return
        verdict = judge(self.baseline(), self.after(), self.limits)
        if verdict.broken:
            raise DeployError(verdict.broken)
        if verdict.judged:
            self.say(f"traffic: {verdict.measured}")
        else:
            self.say(f"traffic: too few requests to judge ({verdict.measured}; "
                     f"DEPLOY_WATCH_MIN_REQUESTS={self.limits.min_requests}); "
                     f"judged on {self.settings.ping_path} and its processes")
