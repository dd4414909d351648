"""A bounded request loop through nginx: several clients, counted results."""
import collections
import threading
import time

import requests


class LoadLoop:
    """`clients` threads GET url until stopped, or until max_seconds or
    max_requests (each bounded, so the loop always ends by itself). Each
    response body is a version name; `order` lists them oldest first, and a
    client that went back to an older version counts as a regression."""

    def __init__(self, url, order, clients=4, max_seconds=120, max_requests=50000):
        self.url, self.order = url, order
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
        session = requests.Session()
        deadline = time.monotonic() + self.max_seconds
        newest = -1
        while not self.stopping.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self.total >= self.max_requests:
                    return
            try:
                response = session.get(self.url, timeout=30)
            except requests.RequestException as error:
                with self.lock:
                    self.errors[type(error).__name__] += 1
                continue
            with self.lock:
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions[response.text] += 1
                    index = self.order.index(response.text) if response.text in self.order else -2
                    if index < newest:
                        self.regressions.append((self.order[newest], response.text))
                    newest = max(newest, index)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def wait_for(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while self.total < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def summary(self):
        return (f"{self.total} requests, statuses {dict(self.statuses)}, errors {dict(self.errors)}, "
                f"versions {dict(self.versions)}")
