"""The traffic judgement (traffic.py): parsing request lines, the figures of
each side, and when a new version is clearly worse. Pure logic, plus one
real uWSGI that writes the request lines the watch reads."""
import os
import random
import time

import pytest
import requests

from conftest import write
from uwsgi_deploy.probe import free_loopback_port
from uwsgi_deploy.traffic import (LOG_FORMAT, LOG_OPTIONS, LogFollower, Limits, Request, Traffic, TrafficWatch,
                                  binomial_tail, judge, parse, parse_line, requests_before)
from uwsgi_deploy.uwsgi_ini import expand_ini

DEFAULTS = Limits(min_requests=50, max_5xx_rise=1, slower=2, slower_ms=10)


def traffic(count, errors=0, micros=500, path="/", spread=0.2, seed=1):
    """count requests on path around micros (+-spread), errors of them 500."""
    rng = random.Random(seed)
    return [Request(1000 + i, 500 if i < errors else 200, int(micros * (1 + rng.uniform(-spread, spread))),
                    "GET", path) for i in range(count)]


def test_parse_line_reads_ours_and_skips_anything_else():
    assert parse_line("ud-req 1796526031655 500 173 GET /err?x=1") == Request(1796526031655, 500, 173, "GET", "/err")
    for garbled in ("ud-req 1 2 3 GET", "ud-req x 200 1 GET /", "ud-req 1 20 1 GET /", "[pid: 1] GET / =>",
                    "ud-request 1 200 1 GET /", ""):
        assert parse_line(garbled) is None, garbled
    # a path with spaces (or anything after) stays the path; a partial last line is left out
    data = b"app says hi\nud-req 5 200 7 GET /a b\nud-req 6 404 8 POST /n\nud-req 7 200"
    assert [(r.path, r.status) for r in parse(data)] == [("/a b", 200), ("/n", 404)]


def test_binomial_tail_matches_direct_sums():
    assert binomial_tail(0, 10, 0.3) == 1.0
    assert abs(binomial_tail(1, 10, 0.1) - (1 - 0.9 ** 10)) < 1e-12
    assert abs(binomial_tail(10, 10, 0.5) - 0.5 ** 10) < 1e-15
    assert binomial_tail(3, 2, 0.5) == 0.0
    assert binomial_tail(20, 400, 0.0005) < 1e-30      # 5% where 0.05% was expected
    assert 0.3 < binomial_tail(1, 400, 0.001) < 0.4


def test_five_percent_500s_against_a_clean_version_is_broken():
    before, after = Traffic.of(traffic(2000)), Traffic.of(traffic(400, errors=20))
    verdict = judge(before, after, DEFAULTS)
    assert verdict.judged and verdict.broken == "5xx 5.0% (20 of 400 requests) vs 0.0% before (0 of 2000)"


def test_the_same_error_rate_as_before_is_not_worse():
    before, after = Traffic.of(traffic(2000, errors=100)), Traffic.of(traffic(400, errors=22))
    assert judge(before, after, DEFAULTS).broken == ""   # 5.5% vs 5%: under a point more


def test_a_few_errors_are_not_beyond_chance():
    # 2 of 60 is 3.3% (over the 1-point rise) but could be a blip: not judged worse
    before, after = Traffic.of(traffic(2000, errors=1)), Traffic.of(traffic(60, errors=2))
    assert judge(before, after, DEFAULTS).broken == ""


def test_too_few_requests_judge_nothing():
    verdict = judge(Traffic.of(traffic(2000)), Traffic.of(traffic(49, errors=49)), DEFAULTS)
    assert not verdict.judged and verdict.broken == ""
    verdict = judge(Traffic.of(traffic(10)), Traffic.of(traffic(400, errors=400)), DEFAULTS)
    assert not verdict.judged and verdict.broken == ""


def test_three_times_slower_on_a_path_is_broken():
    before = Traffic.of(traffic(500, micros=15000) + traffic(50, micros=4_000_000, path="/slow"))
    after = Traffic.of(traffic(300, micros=45000, seed=2) + traffic(20, micros=4_000_000, path="/slow", seed=2))
    verdict = judge(before, after, DEFAULTS)
    assert verdict.broken.startswith("slower: / p"), verdict.broken
    assert " ms (300 requests) vs 1" in verdict.broken and " ms before (500), " in verdict.broken
    ratio = float(verdict.broken.split(", ")[-1].split("x")[0])
    assert 2.5 < ratio < 3.5, verdict.broken


def test_slow_requests_compare_with_themselves_not_with_the_fast_ones():
    # the old version's mix was mostly fast; the new one, busy, logged more slow
    # requests in its short window: the overall p95 rises, no path got slower
    before = Traffic.of(traffic(2000, micros=300) + traffic(20, micros=4_000_000, path="/slow"))
    after = Traffic.of(traffic(200, micros=300, seed=3) + traffic(20, micros=4_000_000, path="/slow", seed=3))
    verdict = judge(before, after, DEFAULTS)
    assert verdict.judged and verdict.broken == ""


def test_slower_needs_both_the_ratio_and_the_milliseconds():
    fast = Traffic.of(traffic(500, micros=200))
    assert judge(fast, Traffic.of(traffic(500, micros=600, seed=2)), DEFAULTS).broken == ""  # 3x, 0.4 ms
    a_bit = Traffic.of(traffic(500, micros=40000))
    assert judge(a_bit, Traffic.of(traffic(500, micros=60000, seed=2)), DEFAULTS).broken == ""  # 1.5x, 20 ms
    off = Limits(50, 0, 0, 10)
    assert judge(Traffic.of(traffic(500)), Traffic.of(traffic(500, errors=500, micros=10 ** 7)), off).broken == ""


def test_a_slow_tail_alone_is_not_judged():
    # 10% of the new version's requests 15x slower (a busy CPU does that to a
    # healthy one): the p95 is reported, the p50 is what is judged
    before = Traffic.of(traffic(500, micros=5000))
    after = Traffic.of(traffic(450, micros=5000, seed=2) + traffic(50, micros=75000, seed=2))
    verdict = judge(before, after, DEFAULTS)
    assert verdict.judged and verdict.broken == "" and "p95 7" in verdict.measured, verdict.measured


def test_a_path_needs_enough_requests_on_both_sides():
    before = Traffic.of(traffic(500) + traffic(19, micros=1000, path="/rare"))
    after = Traffic.of(traffic(500, seed=2) + traffic(19, micros=900000, path="/rare", seed=2))
    assert judge(before, after, DEFAULTS).broken == ""


def test_log_follower_reads_what_is_added_and_starts_over_after_the_cap(tmp_path):
    log = tmp_path / "v.log"
    log.write_bytes(b"ud-req 100 200 5 GET /before\nud-req 200 200 5 GET /ping\nud-req 201 500 5 GET /a\nud-req 2")
    follower = LogFollower(str(log), 150, "/ping")
    assert [r.path for r in follower.read()] == ["/a"]
    with open(log, "ab") as stream:
        stream.write(b"02 200 5 GET /b\n")
    assert [r.path for r in follower.read()] == ["/a", "/b"]
    log.write_bytes(b"ud-req 300 200 5 GET /c\n")     # the cap emptied it; this was written since
    assert [r.path for r in follower.read()] == ["/a", "/b", "/c"]


class FakeVersion:
    def __init__(self, directory, name):
        self.log = os.path.join(directory, name + ".log")
        self.log_backup = self.log + ".1"


def test_baseline_is_the_window_before_the_switch_from_the_log_and_its_copy(tmp_path):
    old = FakeVersion(str(tmp_path), "old")
    write(old.log_backup, "".join(f"ud-req {t} 200 5 GET /old\n" for t in range(1000, 5000, 1000)))
    write(old.log, "".join(f"ud-req {t} 500 5 GET /new\n" for t in range(5000, 9000, 1000))
          + "ud-req 6500 200 1 GET /ping\n")
    found = requests_before(old, until_ms=8000, seconds=5, ping_path="/ping")
    assert [(r.start_ms, r.path) for r in found] == [(3000, "/old"), (4000, "/old"), (5000, "/new"),
                                                     (6000, "/new"), (7000, "/new")]


class Settings:
    ping_path = "/ping"
    watch_min_requests, watch_5xx, watch_slower, watch_slower_ms = 50, 1, 2, 10
    watch_baseline, watch_max = 300, 30


def test_the_watch_extends_only_while_traffic_is_coming(tmp_path):
    now = [0.0]
    old, new = FakeVersion(str(tmp_path), "old"), FakeVersion(str(tmp_path), "new")
    switch_ms = 1_000_000
    # the old version served 2 requests a second: 60 in the 30 s before the switch
    write(old.log, "".join(f"ud-req {switch_ms - 100_000 + i * 500} 200 5 GET /\n" for i in range(200)))
    write(new.log, "".join(f"ud-req {switch_ms + i} 200 5 GET /\n" for i in range(10)))
    said = []
    watch = TrafficWatch(Settings(), new, old, switch_ms / 1000, said.append, clock=lambda: now[0])
    watch.poll()
    assert watch.wants_more() == "too few requests yet to judge its traffic"
    now[0] = 31.0
    assert not watch.wants_more()          # DEPLOY_WATCH_MAX is up
    watch.finish()
    assert said[-1].startswith("traffic: too few requests to judge (5xx 0.0% (10 requests) vs 0.0% (200) before")
    # an old version whose traffic stopped before the switch: no point waiting
    write(old.log, "".join(f"ud-req {switch_ms - 290_000 + i * 1000} 200 5 GET /\n" for i in range(200)))
    assert TrafficWatch(Settings(), new, old, switch_ms / 1000, clock=lambda: 0.0).wants_more() == ""


def test_the_watch_goes_on_while_5xx_are_over_the_limit_but_could_be_chance(tmp_path):
    now = [0.0]
    old, new = FakeVersion(str(tmp_path), "old"), FakeVersion(str(tmp_path), "new")
    write(old.log, "".join(f"ud-req {i} 200 5 GET /\n" for i in range(400)))
    # 2 errors in 60: 3.3%, but not beyond chance yet
    write(new.log, "".join(f"ud-req {2000 + i} {500 if i in (10, 40) else 200} 5 GET /\n" for i in range(60)))
    watch = TrafficWatch(Settings(), new, old, 2.0, clock=lambda: now[0])
    watch.poll()
    assert watch.wants_more().startswith("its 5xx are over the limit but not yet beyond chance (5xx 3.3% (60")
    # more of the same: 5% of 200 is beyond chance
    with open(new.log, "a") as stream:
        stream.write("".join(f"ud-req {3000 + i} {500 if i % 20 == 0 else 200} 5 GET /\n" for i in range(200)))
    now[0] = 1.0
    try:
        watch.poll()
    except Exception as error:
        assert str(error).startswith("5xx 4.6% (12 of 260 requests) vs 0.0% before (0 of 400)"), error
    else:
        raise AssertionError("not refused")
    # a healthy version with one stray error is not kept waiting
    write(new.log, "".join(f"ud-req {2000 + i} {500 if i == 10 else 200} 5 GET /\n" for i in range(400)))
    assert TrafficWatch(Settings(), new, old, 2.0, clock=lambda: 0.0).wants_more() == ""


def test_the_watch_refuses_as_soon_as_the_5xx_are_clearly_worse(tmp_path):
    old, new = FakeVersion(str(tmp_path), "old"), FakeVersion(str(tmp_path), "new")
    write(old.log, "".join(f"ud-req {i} 200 5 GET /\n" for i in range(1000)))
    write(new.log, "".join(f"ud-req {2000 + i} {500 if i % 10 == 0 else 200} 5 GET /\n" for i in range(100)))
    watch = TrafficWatch(Settings(), new, old, 2.0)
    try:
        watch.poll()
    except Exception as error:
        assert str(error) == "5xx 10.0% (10 of 100 requests) vs 0.0% before (0 of 1000)"
    else:
        raise AssertionError("not refused")


@pytest.mark.emperor
def test_real_uwsgi_writes_the_request_lines_the_watch_reads(world, uwsgi_runner):
    """The deployer's lines, as the vassal gets them, on a real uWSGI: each
    request is one line with its start time, status and time in the worker.
    (An app's uwsgi.ini may not change how requests are logged:
    test_ini_allow_list.)"""
    port = free_loopback_port()
    app = write(os.path.join(world, "app.py"), '''import time
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(0.2)
    start_response("500 Oops" if path == "/err" else "200 OK", [("Content-Type", "text/plain")])
    return [b"x"]
''')
    user_ini = write(os.path.join(world, "uwsgi.ini"), f"[uwsgi]\nplugins = python3\nmaster = true\n"
                     f"wsgi-file = {app}\n")
    text = expand_ini(user_ini, [], chdir=world, extra=[("http-socket", f"127.0.0.1:{port}")], raw=LOG_OPTIONS)
    assert f"logformat = {LOG_FORMAT}" in text
    path = write(os.path.join(world, "v.ini"), text)
    log = os.path.join(world, "v.log")
    uwsgi_runner(path, log)
    started = time.time()
    for target in ("/", "/err", "/slow?q=1"):
        requests.get(f"http://127.0.0.1:{port}{target}", timeout=10)
    follower = LogFollower(log, int(started * 1000) - 1, "/ping")
    seen = []
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        seen = follower.read()
        time.sleep(0.05)
    assert [(r.status, r.method, r.path) for r in seen] == [(200, "GET", "/"), (500, "GET", "/err"),
                                                            (200, "GET", "/slow")]
    assert 200_000 <= seen[2].micros < 2_000_000 and seen[0].micros < 200_000
    assert all(abs(r.start_ms / 1000 - started) < 5 for r in seen)
