"""must_fail, the refusal check the tests share: it rejects a crash, a wrong
status and a missing line."""
import subprocess, re, pytest
from conftest import must_fail
def r(code, out="", err=""):
    return subprocess.CompletedProcess([], code, out, err)
def test_ok():
    assert must_fail(r(2, "", "deploy-x: bad thing (a.b)\n"), 2, "bad thing (a.b)") == "deploy-x: bad thing (a.b)"
    must_fail(r(2, "", "x\ndeploy-x: bad thing\n"), 2, r"^deploy-x: bad \w+$")
    must_fail(r(1, b"", b"remote: no\n"), 1, re.compile("no$"))
@pytest.mark.parametrize("res,st,line", [(r(1, "", "Traceback (most\nx: bad\n"), 1, "bad"), (r(2,"","x: bad\n"),1,"bad"), (r(1,"","x: bad\n"),1,"good"), (r(-9,"","x: bad\n"),1,"bad")])
def test_bad(res, st, line):
    with pytest.raises(AssertionError):
        must_fail(res, st, line)
