"""Procfile parsing and cron schedules (pure logic)."""
import time

import pytest

from uwsgi_deploy import DeployError
from uwsgi_deploy.procfile import CLOCK, CRON, WEB, WORKER, background, parse, parse_field


def test_kinds_commands_and_comments():
    entries = parse("# processes\nweb: uwsgi uwsgi.ini\nworker: python worker.py --queue a:b\n\n"
                    "clock: python clock.py\ncronreport: */5 * * * * python report.py  \n"
                    "emails:python send.py\n")
    assert [(e.name, e.kind, e.command) for e in entries] == [
        ("web", WEB, "uwsgi uwsgi.ini"), ("worker", WORKER, "python worker.py --queue a:b"),
        ("clock", CLOCK, "python clock.py"), ("cronreport", CRON, "python report.py"),
        ("emails", WORKER, "python send.py")]
    assert [e.name for e in background(entries)] == ["worker", "clock", "cronreport", "emails"]
    assert entries[3].schedule[0] == frozenset(range(0, 60, 5))


@pytest.mark.parametrize("text, values", [
    ("*", set(range(60))), ("5", {5}), ("1,2,10", {1, 2, 10}), ("10-12", {10, 11, 12}),
    ("*/15", {0, 15, 30, 45}), ("10-20/5", {10, 15, 20}), ("50/5", {50, 55}), ("1-3,7", {1, 2, 3, 7})])
def test_cron_fields(text, values):
    assert parse_field(text, 0, 59) == values


@pytest.mark.parametrize("text, why", [
    ("60", "outside"), ("*/0", "step"), ("a", "expected"), ("5-1", "outside"), ("*/", "step"),
    ("1,,2", "expected")])
def test_bad_cron_fields(text, why):
    with pytest.raises(ValueError, match=why):
        parse_field(text, 0, 59)


@pytest.mark.parametrize("text, message", [
    ("worker python w.py\n", r"^P:1: expected NAME: COMMAND$"),
    ("\nworker:\n", r"^P:2: worker has no command$"),
    ("worker: a\nworker: b\n", r"^P:2: process worker is declared twice$"),
    ("1worker: a\n", r"^P:1: invalid process name '1worker'"),
    ("w.x: a\n", r"^P:1: invalid process name 'w.x'"),
    ("cron: * * * python\n", r"^P:1: cron needs five cron fields"),
    ("cronx: 61 * * * * python x.py\n", r"^P:1: cronx: minute field: a value is outside 0-59$"),
    ("cronx: * 1-2/0 * * * python x.py\n", r"^P:1: cronx: hour field: a step"),
])
def test_errors_name_file_and_line(text, message):
    with pytest.raises(DeployError, match=message):
        parse(text, "P")


def test_an_error_never_shows_a_command():
    with pytest.raises(DeployError) as raised:
        parse("cronx: * * * * SECRET=hunter2 run\nworker\n", "P")
    assert "hunter2" not in str(raised.value)


def test_due_minutes_and_sunday():
    job, = parse("cronx: 30 2 * * 7 run\n")
    sunday = time.strptime("2026-12-06 02:30", "%Y-%m-%d %H:%M")   # a Sunday
    assert job.due(sunday)
    assert not job.due(time.strptime("2026-12-06 02:31", "%Y-%m-%d %H:%M"))
    assert not job.due(time.strptime("2026-12-07 02:30", "%Y-%m-%d %H:%M"))
    every, = parse("cronx: * * * * * run\n")
    assert every.due(sunday)
