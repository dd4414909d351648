"""Bounded load through nginx: a fast request loop, slow requests that fill
every worker of a small app at times, and a sampler that shows they did."""
import collections
import http.client
import select
import threading
import time
import urllib.parse

from uwsgi_deploy import waiting
from uwsgi_deploy.stats import read_stats


class Connection:
    """GETs of one URL over one keep-alive HTTP/1.1 connection, opened again
    when the server has closed it (as requests' pool does). The request
    loops use it, not requests: through nginx, a request cost requests 880 us
    of the client's CPU and http.client 100 us, and make test runs a dozen
    workers' loops on two cores beside the servers they load."""

    def __init__(self, url, source=None, timeout=30):
        """source: the loopback address to connect from (None: any)."""
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.source, self.timeout = source, timeout
        self.http = None

    def get(self):
        """(status, body as text); raises OSError or http.client.HTTPException
        (refused, reset, timed out, a broken answer), the connection closed."""
        if self.http is not None and self.http.sock is not None and readable(self.http.sock):
            self.close()    # readable while idle: the server closed it (or sent what no request asked)
        if self.http is None:
            self.http = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout,
                                                   source_address=(self.source, 0) if self.source else None)
        try:
            self.http.request("GET", self.target)
            response = self.http.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.http is not None:
            self.http.close()
            self.http = None


FAILURES = (OSError, http.client.HTTPException)


def get_or_count(connection, errors, lock):
    """connection.get(); or, when it fails, None, with the failure counted
    in errors (a Counter, under lock) by its type's name."""
    try:
        return connection.get()
    except FAILURES as error:
        with lock:
            errors[type(error).__name__] += 1
        return None


def readable(sock):
    """Whether sock has something to read now (poll, not select: a worker
    with the canary's 400 connections may hold descriptors past select's 1024)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))

# What a LoadLoop client waits before each request. Unpaced, a loop takes
# whatever CPU the machine has left (with http.client's cheaper requests it
# only sent more of them), which make test's other workers need. At 30 ms,
# BusyLoad's six clients send at most 200 a second; while slow requests fill
# the workers they get ~85 answered (test_faults' retire case: 1,686 in
# 20 s, against 2,999 unpaced with requests), so a gap in service of a few
# tens of milliseconds still meets a request. The benchmarks stay unpaced.
PACE = 0.03


class LoadLoop:
    """`clients` threads GET url until stopped, or until max_seconds or
    max_requests (each bounded, so the loop always ends by itself). Each
    response body is a version name; `order` lists them oldest first, and a
    client that went back to an older version counts as a regression.
    pace: each client waits this long before each request (None: as fast
    as the server answers)."""

    def __init__(self, url, order, clients=4, max_seconds=120, max_requests=50000, pace=PACE):
        self.url, self.order, self.pace = url, order, pace
        self.clients, self.max_seconds, self.max_requests = clients, max_seconds, max_requests
        self.statuses = collections.Counter()
        self.errors = collections.Counter()
        self.versions = collections.Counter()
        self.regressions = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]

    @property
    def total(self):
        return sum(self.statuses.values()) + sum(self.errors.values())

    def client(self):
        connection = Connection(self.url)
        deadline = time.monotonic() + self.max_seconds
        newest = -1
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                with self.lock:
                    if self.total >= self.max_requests:
                        return
                if self.pace:
                    self.stopping.wait(self.pace)
                answered = get_or_count(connection, self.errors, self.lock)
                if answered is None:
                    continue
                status, text = answered
                with self.lock:
                    self.statuses[status] += 1
                    if status == 200:
                        self.versions[text] += 1
                        index = self.order.index(text) if text in self.order else -2
                        if index < newest:
                            self.regressions.append((self.order[newest], text))
                        newest = max(newest, index)
        finally:
            connection.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def wait_for(self, count, timeout=30):
        """Until count requests were answered (or timeout seconds passed)."""
        waiting.wait_until(lambda: self.total >= count, timeout, interval=0.01)

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def summary(self):
        return (f"{self.total} requests, statuses {dict(self.statuses)}, errors {dict(self.errors)}, "
                f"versions {dict(self.versions)}")


class SlowRequests:
    """Every `interval` seconds starts `burst` slow GETs at once (at most
    `max_requests` in all, until stopped), each in its own thread: a burst as
    large as an app's worker count fills every worker for as long as a slow
    request lasts. Every request is waited for on exit and counted:
    statuses, errors, the version that answered."""

    def __init__(self, url, interval=2.0, burst=1, max_requests=100, timeout=120):
        self.url, self.interval, self.burst = url, interval, burst
        self.max_requests, self.timeout = max_requests, timeout
        self.statuses = collections.Counter()
        self.errors = collections.Counter()
        self.versions = collections.Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.requests = []
        self.starter = threading.Thread(target=self.start_requests, daemon=True)

    @property
    def total(self):
        return sum(self.statuses.values()) + sum(self.errors.values())

    def start_requests(self):
        while not self.stopping.is_set() and len(self.requests) < self.max_requests:
            for _ in range(self.burst):
                request = threading.Thread(target=self.one, daemon=True)
                request.start()
                self.requests.append(request)
            self.stopping.wait(self.interval)

    def one(self):
        connection = Connection(self.url, timeout=self.timeout)
        try:
            answered = get_or_count(connection, self.errors, self.lock)
        finally:
            connection.close()
        if answered is None:
            return
        status, text = answered
        with self.lock:
            self.statuses[status] += 1
            if status == 200:
                self.versions[text] += 1

    def __enter__(self):
        self.starter.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.starter.join(60)
        for request in self.requests:
            request.join(self.timeout + 10)

    def summary(self):
        return (f"{self.total} slow requests, statuses {dict(self.statuses)}, errors {dict(self.errors)}, "
                f"versions {dict(self.versions)}")


class BusyWatcher:
    """Samples the stats of whatever version an app's live socket points to,
    so a test can show that its load really filled every worker with a slow
    request at times (uWSGI's stats list each core's current request)."""

    def __init__(self, app, slow_path="/slow", interval=0.05, max_seconds=900):
        self.app, self.slow_path = app, slow_path
        self.interval, self.max_seconds = interval, max_seconds
        self.samples = self.all_slow_samples = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def serving_slow(self, worker):
        """Every core (thread) of the worker is in a slow request."""
        cores = worker.get("cores", [])
        return bool(cores) and all(core.get("in_request") and f"PATH_INFO={self.slow_path}" in core.get("vars", [])
                                   for core in cores)

    def sample(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.stopping.wait(self.interval) and time.monotonic() < deadline:
            live = self.app.live_version()
            workers = (read_stats(live.stats_socket, timeout=1.0) or {}).get("workers", []) if live else []
            if workers:
                self.samples += 1
                self.all_slow_samples += all(self.serving_slow(w) for w in workers)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join(10)

    def summary(self):
        return f"every worker's every thread serving a slow request in {self.all_slow_samples} of {self.samples} samples"


# An app with two workers, and slow requests longer than the default 3-s
# watch, two started at once every 6 s: both workers serve slow requests for
# 4 s of every 6, and a /ping sent then waits up to 4 s in the queue.
BUSY_INI = """[uwsgi]
master = true
processes = 2
wsgi-file = app.py
"""
WORKERS = 2
SLOW_SECONDS = 4
SLOW_INTERVAL = 6
FAST_CLIENTS = 6


class BusyLoad:
    """A fast loop and slow requests through nginx, both workers on slow
    requests at times, and a sampler that shows it."""

    def __init__(self, server, order, app="app", workers=WORKERS, pace=PACE):
        """workers: how many requests the app serves at once (processes x
        threads); pace: the fast clients' (LoadLoop's)."""
        self.fast = LoadLoop(server.url("/"), order, clients=FAST_CLIENTS, max_seconds=600,
                             max_requests=500000, pace=pace)
        self.slow = SlowRequests(server.url(f"/slow?{SLOW_SECONDS}"), interval=SLOW_INTERVAL,
                                 burst=workers, max_requests=400)
        self.busy = BusyWatcher(server.app(app))

    def __enter__(self):
        for part in (self.fast, self.slow, self.busy):
            part.__enter__()
        self.fast.wait_for(100)
        return self

    def __exit__(self, *exc):
        for part in (self.busy, self.slow, self.fast):
            part.__exit__(*exc)

    def settle(self):
        """Let the load run on for another 100 fast requests."""
        self.fast.wait_for(self.fast.total + 100)

    def assert_nothing_lost(self):
        """No request failed, fast or slow, and the workers were filled."""
        for part in (self.fast, self.slow, self.busy):
            print(part.summary())
        assert self.fast.errors == {} and set(self.fast.statuses) == {200}, self.fast.summary()
        assert self.slow.errors == {} and set(self.slow.statuses) == {200}, self.slow.summary()
        assert self.slow.total > 0
        self.assert_workers_filled()

    def assert_workers_filled(self):
        """The load did what it is for: at some moment every worker (every
        thread) of the live version was serving a slow request, as its stats
        socket showed."""
        assert self.busy.all_slow_samples > 0, self.busy.summary()


class AddressedLoad:
    """`clients` threads GET url, each request from the next of `addresses`
    loopback source addresses (127.0.1.N), until stopped or max_seconds.
    Counts statuses and errors, and per address the versions that answered
    in order (a body is a version name; others count as their status).
    127.0.0.0/8 is all loopback, so nginx sees many clients: its `hash
    $remote_addr` spreads them as it would real ones."""

    def __init__(self, url, addresses=200, clients=6, max_seconds=300):
        self.url, self.clients, self.max_seconds = url, clients, max_seconds
        self.addresses = [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(addresses)]
        self.statuses = collections.Counter()
        self.errors = collections.Counter()
        self.seen = {address: [] for address in self.addresses}   # address -> [(time, version or status)]
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(clients)]

    @property
    def total(self):
        return sum(self.statuses.values()) + sum(self.errors.values())

    def client(self, index):
        mine = self.addresses[index::self.clients]
        connections = {address: Connection(self.url, source=address) for address in mine}
        deadline = time.monotonic() + self.max_seconds
        turn = 0
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                address = mine[turn % len(mine)]
                turn += 1
                answered = get_or_count(connections[address], self.errors, self.lock)
                if answered is None:
                    continue
                status, text = answered
                answer = text if status == 200 else status
                with self.lock:
                    self.statuses[status] += 1
                    self.seen[address].append((time.monotonic(), answer))
        finally:
            for connection in connections.values():
                connection.close()

    def answers_between(self, start, end):
        """{address: [answers]} of the requests answered between two monotonic times."""
        with self.lock:
            return {address: [a for t, a in seen if start <= t <= end] for address, seen in self.seen.items()}

    def wait_for(self, count, timeout=60):
        waiting.wait_until(lambda: self.total >= count, timeout, interval=0.01)

    def wait_every_address(self, since, timeout=60):
        """Until every address has been answered after the monotonic time since
        (a count of requests cannot say that: a slow loop may not have come
        round to some addresses yet)."""
        def answered():
            with self.lock:
                return all(seen and seen[-1][0] > since for seen in self.seen.values())
        if not waiting.wait_until(answered, timeout, interval=0.05):
            raise AssertionError(f"some addresses were not answered within {timeout} s: {self.summary()}")

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def summary(self):
        return f"{self.total} requests, statuses {dict(self.statuses)}, errors {dict(self.errors)}"
