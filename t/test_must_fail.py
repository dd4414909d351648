"""must_fail, the refusal check the tests share: it rejects a crash, a wrong
status and a missing line, and accepts an app's traceback quoted as evidence."""
import re
import subprocess

import pytest

from conftest import must_fail


def result(code, out="", err=""):
    return subprocess.CompletedProcess([], code, out, err)


def test_a_refusal_with_its_line_passes():
    assert must_fail(result(2, "", "deploy-x: bad thing (a.b)\n"), 2, "bad thing (a.b)") == "deploy-x: bad thing (a.b)"
    must_fail(result(2, "", "x\ndeploy-x: bad thing\n"), 2, r"^deploy-x: bad \w+$")
    must_fail(result(1, b"", b"remote: no\n"), 1, re.compile("no$"))


def test_an_apps_traceback_quoted_in_a_log_tail_is_evidence_not_a_crash():
    tail = "remote:  !     last 3 lines of the vassal log:\nremote:  !       Traceback (most recent call last):\n" \
           "remote:  !       ImportError: x\nremote: pre-receive: probe: the vassal died while starting\n"
    must_fail(result(1, "", tail), 1, "probe: the vassal died")


@pytest.mark.parametrize("res,status,line", [
    (result(1, "", "Traceback (most recent call last):\nx: bad\n"), 1, "bad"),          # the tool crashed
    (result(1, "", "remote: Traceback (most recent call last):\nx: bad\n"), 1, "bad"),  # the hook crashed
    (result(2, "", "x: bad\n"), 1, "bad"),        # another status
    (result(1, "", "x: bad\n"), 1, "good"),       # another line
    (result(-9, "", "x: bad\n"), 1, "bad"),       # a signal
])
def test_a_crash_a_wrong_status_or_a_missing_line_fails(res, status, line):
    with pytest.raises(AssertionError):
        must_fail(res, status, line)
