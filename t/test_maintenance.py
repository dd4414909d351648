"""deploy-maintenance with the real Emperor and nginx, DEFAULT settings, under
a request loop: on, every request gets 503 with the message (escaped) and
Retry-After, a request the live version had accepted finishes; a push deploys
behind the page and says so; off, the new version serves; no connection
error at any point."""
import threading

import pytest

from conftest import must_fail, run_tool
from load import BUSY_INI, LoadLoop

pytestmark = [pytest.mark.emperor, pytest.mark.load]

MESSAGE = 'Back <soon> & "later"'


def maintenance(server, *args):
    return run_tool("deploy-maintenance", "app", *args, env=server.environ)


def slow_request(server, seconds):
    """A GET of /slow started now in a thread; its response lands in the dict."""
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(response=server.get(f"/slow?{seconds}", timeout=60)),
                              daemon=True)
    thread.start()
    return thread, answer


def test_maintenance_on_and_off_under_load(busy_server):
    server = busy_server
    v1 = server.commit_app("v1", extra={"uwsgi.ini": BUSY_INI})[:12]
    assert server.push().returncode == 0
    app = server.app("app")
    with LoadLoop(server.url("/"), ["v1", "v2"], clients=4) as load:
        load.wait_for(100)
        thread, before_on = slow_request(server, 2)   # accepted by v1, still running when the page takes over
        server.get("/")
        on = maintenance(server, "on", "--message", MESSAGE)
        assert on.returncode == 0, on.stderr
        assert on.stdout.splitlines()[-1] == (f"app is in maintenance: every request gets 503 (Retry-After: 300); "
                                              f"app-{v1} keeps running behind it and finishes what it accepted")
        page = server.get("/anything?x=1")
        assert page.status_code == 503 and page.headers["Retry-After"] == "300"
        assert "Back &lt;soon&gt; &amp; &quot;later&quot;" in page.text and "<soon>" not in page.text
        served_503 = load.statuses[503]
        load.wait_for(load.total + 50)
        assert load.statuses[503] > served_503
        thread.join(60)
        assert (before_on["response"].status_code, before_on["response"].text) == (200, "v1")

        status = run_tool("deploy-status", "app", env=server.environ)
        assert "  maintenance on since " in status.stdout and repr(MESSAGE) in status.stdout, status.stdout
        assert f"  live      app-{v1}" in status.stdout

        # a push during maintenance deploys behind the page, and says so
        v2 = server.commit_app("v2", extra={"uwsgi.ini": BUSY_INI})[:12]
        pushed = server.push()
        assert pushed.returncode == 0, pushed.stderr
        assert f"app is in maintenance: app-{v2} takes no traffic until `deploy-maintenance app off`" in pushed.stderr
        assert f"app-{v2} is live behind the maintenance page" in pushed.stderr
        assert app.live_version().rev == v2 and app.in_maintenance
        assert server.get("/").status_code == 503
        server.wait_emperor_vassals([f"app-{v2}.ini", "app.maintenance.ini"])

        off = maintenance(server, "off")
        assert off.returncode == 0, off.stderr
        assert f"app is out of maintenance: app-{v2} serves" in off.stdout
        assert server.get("/").text == "v2"
        load.wait_for(load.total + 100)
    print(load.summary())
    assert load.errors == {} and set(load.statuses) == {200, 503}, load.summary()
    assert load.versions["v1"] > 0 and load.versions["v2"] > 0 and load.regressions == []
    server.wait_emperor_vassals([f"app-{v2}.ini"])
    assert maintenance(server, "off").stdout == "app is not in maintenance\n"


def test_bad_messages_are_refused_and_nothing_changes(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    for message, why in (("a\nb", "control characters"), ("x" * 501, "501 characters; at most 500")):
        result = maintenance(server, "on", "--message", message)
        must_fail(result, 1, f"deploy-maintenance: --message: {why}")
        assert result.stderr.count("\n") == 1, result.stderr
    must_fail(maintenance(server, "on", "--retry-after", "-1"), 1, "deploy-maintenance: --retry-after: -1 seconds")
    assert not server.app("app").in_maintenance and server.get("/").text == "v1"
    assert not any("maintenance" in name for name in server.vassal_inis() + server.run_files(""))
