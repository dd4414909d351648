"""The candidate checked by what it opened (issue 21): after the probe and
before the switch, its processes' sockets are read from /proc. Whatever way
in it opened (at import, from a child process, through an option the
operator allowed) refuses it; another app's live link it took over is put
back; the live version keeps serving throughout."""
import os
import re
import socket

import pytest

from conftest import must_fail, wait_until
from load import BUSY_INI, BusyLoad
from sandbox import app_beside_another
from sandbox_server import port_open
from uwsgi_deploy.listeners import findings, inet_address
from uwsgi_deploy.probe import probe_once

pytestmark = [pytest.mark.emperor, pytest.mark.xdist_group(__name__)]   # its module world, built once

HERE = "import os\nRUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'run')\n"
UDP_AT_IMPORT = ("import socket\n_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                 "_udp.bind(('127.0.0.1', 0))\n")
# a listener held by a grandchild of the worker (a descendant, not the master)
TCP_IN_A_CHILD = ("import subprocess\n_child = subprocess.Popen(['/usr/bin/python3', '-c', "
                  "'import socket, time; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(); "
                  "print(\"listening\", flush=True); time.sleep(600)'], stdout=subprocess.PIPE)\n"
                  "_child.stdout.readline()\n")
# what `socket = %d../run/other.socket` did: unlink the other app's link, bind there
TAKE_OVER_OTHER = HERE + ("import socket\n_path = os.path.join(RUN, 'other.socket')\nos.unlink(_path)\n"
                          "_sock = socket.socket(socket.AF_UNIX)\n_sock.bind(_path)\n_sock.listen()\n")


@pytest.fixture(scope="module")
def world(stop_later):
    """An Emperor and nginx; `app` live at v1 (two workers) and `other` live."""
    box = app_beside_another({"uwsgi.ini": BUSY_INI})   # the default settings
    box.live_v1 = box.app("app").live_version().run_name
    yield box
    stop_later(box)


def hostile(box, code, extra=None, env=None):
    """Push v2 whose app.py runs code at import; returns the refusal line."""
    box.commit_app("v2", extra={"uwsgi.ini": BUSY_INI, **(extra or {})})
    app_py = os.path.join(box.source_repo(), "app.py")
    with open(app_py) as stream:
        text = stream.read()
    box.commit({"app.py": code + text})
    result = box.push(extra_env=env)
    line = must_fail(result, 1, r"remote: pre-receive: inspect: ")
    assert "remote:  !     app-" in result.stderr and "not deployed; " + box.live_v1 + " is still live" in result.stderr
    assert box.get("/").text == "v1"
    assert box.vassal_inis() == sorted([f"{box.live_v1}.ini", box.app("other").live_version().run_name + ".ini"])
    return line


@pytest.mark.load
def test_a_udp_socket_opened_at_import_is_refused_under_load(world):
    with BusyLoad(world, ["v1"]) as load:
        line = hostile(world, UDP_AT_IMPORT)
        load.settle()
    load.assert_nothing_lost()
    assert re.search(r"inspect: app-[0-9a-f]{12} opened what nginx does not reach: udp socket bound 127\.0\.0\.1:"
                     r"[0-9]+ \(pid [0-9]+\) \(docs/security.md\)", line), line
    assert "(pid " in line


def test_a_tcp_listener_in_a_child_process_is_refused(world):
    line = hostile(world, TCP_IN_A_CHILD)
    port = int(re.search(r"tcp listener 127\.0\.0\.1:([0-9]+) \(pid", line).group(1))
    wait_until(lambda: not port_open(port), 10, "the candidate's child to be gone")


def test_a_listener_the_operator_allowed_is_still_refused_when_opened(world):
    """cache2 with udp= passes the ini check once the operator allows cache2;
    what it opens does not."""
    ini = BUSY_INI + "cache2 = name=c,items=10,udp=127.0.0.1:0\n"
    line = hostile(world, "", extra={"uwsgi.ini": ini}, env={"DEPLOY_INI_ALLOW": "cache2"})
    assert "udp socket bound 127.0.0.1:" in line


def test_another_apps_live_link_taken_over_is_refused_and_put_back(world):
    other = world.app("other")
    before = os.readlink(other.live_socket)
    line = hostile(world, TAKE_OVER_OTHER)
    assert f"{other.live_socket} (was -> {before}, now a socket) (put back)" in line
    assert f"unix stream listener {other.live_socket} (pid " in line
    assert os.readlink(other.live_socket) == before
    assert probe_once("unix:" + other.live_socket, "/").ok


# -- the /proc reading itself, on this process's own sockets -------------------

def test_findings_name_what_listens_and_nothing_else(tmp_path):
    own = str(tmp_path / "own.socket")
    opened = []
    try:
        def keep(sock):
            opened.append(sock)
            return sock
        tcp = keep(socket.socket())
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        tcp6 = keep(socket.socket(socket.AF_INET6))
        tcp6.bind(("::1", 0))
        tcp6.listen()
        udp = keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        udp.bind(("127.0.0.1", 0))
        connected = keep(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        connected.connect(("127.0.0.1", 9))   # a client of one peer: fine
        client = keep(socket.create_connection(tcp.getsockname()))   # a TCP client: fine
        unix = keep(socket.socket(socket.AF_UNIX))
        unix.bind(str(tmp_path / "other.socket"))
        unix.listen()
        mine = keep(socket.socket(socket.AF_UNIX))
        mine.bind(own)
        mine.listen()
        keep(socket.socketpair()[0])   # unnamed, not listening: fine
        found = findings({os.getpid()}, {own})
        pid = os.getpid()
        assert sorted(found) == sorted([
            f"tcp listener 127.0.0.1:{tcp.getsockname()[1]} (pid {pid})",
            f"tcp listener [::1]:{tcp6.getsockname()[1]} (pid {pid})",
            f"udp socket bound 127.0.0.1:{udp.getsockname()[1]} (pid {pid})",
            f"unix stream listener {tmp_path}/other.socket (pid {pid})",
        ]), (found, client)
    finally:
        for sock in opened:
            sock.close()


def test_inet_address_reads_the_kernels_byte_order():
    assert inet_address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert inet_address("00000000000000000000000001000000:0050") == ("::1", 80)


def test_link_watch_tells_a_takeover_from_another_deploy(tmp_path):
    from types import SimpleNamespace
    from uwsgi_deploy.layout import App
    from uwsgi_deploy.listeners import LinkWatch
    run = tmp_path / "run"
    run.mkdir()
    for app, rev in (("app", "a" * 12), ("b", "b" * 12), ("c", "c" * 12), ("d", "d" * 12), ("e", "e" * 12)):
        os.symlink(f"{app}-{rev}.socket", run / f"{app}.socket")
    settings = SimpleNamespace(run_dir=str(run), home=str(tmp_path))
    watch = LinkWatch(settings, App(settings, "app"))
    assert sorted(watch.before) == ["b.socket", "c.socket", "d.socket", "e.socket"]   # not its own app's
    os.unlink(run / "app.socket")                                # its own app's: not watched
    os.unlink(run / "b.socket")
    os.symlink(f"b-{'1' * 12}.1.socket", run / "b.socket")      # another deploy of b: fine
    os.unlink(run / "c.socket")
    os.symlink(f"c-d-{'1' * 12}.socket", run / "c.socket")      # app c-d's socket, not c's
    os.unlink(run / "d.socket")
    taken = socket.socket(socket.AF_UNIX)
    taken.bind(str(run / "d.socket"))                           # what `socket = .../d.socket` did
    os.unlink(run / "e.socket")                                 # gone
    try:
        changed = watch.changed()
        assert changed == {
            "c.socket": f"{run}/c.socket (was -> c-{'c' * 12}.socket, now leads to c-d-{'1' * 12}.socket)",
            "d.socket": f"{run}/d.socket (was -> d-{'d' * 12}.socket, now a socket)",
            "e.socket": f"{run}/e.socket (was -> e-{'e' * 12}.socket, gone)"}
        watch.restore(changed)
        assert watch.changed() == {}
        assert os.readlink(run / "b.socket") == f"b-{'1' * 12}.1.socket"   # left as the other deploy made it
        assert os.readlink(run / "d.socket") == f"d-{'d' * 12}.socket"
    finally:
        taken.close()


def test_link_watch_leaves_canary_maintenance_and_its_own_apps_links_alone(tmp_path):
    """What other apps' deploys do meanwhile is not a takeover: a canary link
    switched (canary.follow writes it absolute), maintenance on and its
    behind link; nor are the watched app's own links. A canary link that
    leads out of ~/run, or to another app's socket, is."""
    from types import SimpleNamespace
    from uwsgi_deploy.layout import App
    from uwsgi_deploy.listeners import LinkWatch
    run = tmp_path / "run"
    run.mkdir()
    old, new = "a" * 12, "b" * 12
    links = {"app.socket": f"app-{old}.socket", "app.canary.socket": f"{run}/app-{old}.socket",
             "b.socket": f"b-{old}.socket", "b.canary.socket": f"{run}/b-{old}.socket",
             "c.socket": f"c-{old}.socket", "c.behind.socket": f"c-{old}.socket",
             "d.canary.socket": f"{run}/d-{old}.socket", "e.canary.socket": f"e-{old}.socket"}
    for name, target in links.items():
        os.symlink(target, run / name)
    settings = SimpleNamespace(run_dir=str(run), home=str(tmp_path))
    watch = LinkWatch(settings, App(settings, "app"))
    assert "app.canary.socket" not in watch.before and "b.canary.socket" in watch.before

    def switch(name, target):
        os.unlink(run / name)
        os.symlink(target, run / name)
    switch("app.canary.socket", "/elsewhere/x.socket")          # its own app's: not watched
    switch("b.canary.socket", f"{run}/b-{new}.socket")          # b's canary runs
    switch("c.socket", "c.maintenance.socket")                  # c in maintenance
    switch("c.behind.socket", f"c-{new}.socket")
    switch("d.canary.socket", f"/tmp/d-{new}.socket")           # out of ~/run
    switch("e.canary.socket", f"{run}/app-{new}.socket")        # to the watched app's socket
    assert sorted(watch.changed()) == ["d.canary.socket", "e.canary.socket"]
