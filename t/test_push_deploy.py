"""git push deploys: a real Emperor, a real nginx, a real git client."""
import os
import re
import stat

import pytest

from conftest import must_fail
from uwsgi_deploy.stats import read_stats


def deploy_log_lines(server):
    with open(server.settings.log_file) as stream:
        return stream.read().splitlines()


@pytest.mark.emperor
def test_first_push_goes_live_at_once(server):
    commit = server.commit_app("v1")
    rev = commit[:12]
    result = server.push()
    assert result.returncode == 0, result.stderr
    # served through nginx the moment the push returns: no 502 window
    response = server.get("/")
    assert (response.status_code, response.text) == (200, "v1")
    app = server.app("app")
    assert os.readlink(app.home_link) == f"app-{rev}"
    assert os.readlink(app.live_socket) == f"app-{rev}.socket"
    assert os.path.isdir(os.path.join(server.home, f"app-{rev}"))
    assert not os.path.exists(os.path.join(server.home, f"app-{rev}", ".git"))
    [line] = deploy_log_lines(server)
    assert line.startswith(f"app-{rev} ") and f"commit={commit}" in line
    ini = app.version(rev).vassal_ini
    assert stat.S_IMODE(os.stat(ini).st_mode) == 0o600
    assert f"app-{rev} is live" in result.stderr
    for stage in ("Checking out", "Reading environment", "Expanding uwsgi.ini", "Probing", "Switching"):
        assert f"-----> {stage}" in result.stderr


@pytest.mark.emperor
def test_push_output_names_each_stage_and_duration(server):
    server.commit_app("v1", extra={"setup": "#!/bin/sh\necho building\n"})
    result = server.push()
    assert result.returncode == 0, result.stderr
    out = result.stderr
    assert "remote:        building" in [line.rstrip() for line in out.splitlines()]   # live setup output, indented
    assert "setup done (" in out and "probe done (" in out  # durations
    last = [line for line in out.splitlines() if line.startswith("remote: ")][-1]
    assert re.search(r" is live: serving \d+\.\d\d s into the deploy, then watched it \d+\.\d s "
                     r"\(\d+\.\d s in all, setup \d+\.\d s\)", last), last


@pytest.mark.emperor
def test_second_push_moves_traffic_and_retires_old_vassal(server):
    first = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    second = server.commit_app("v2")[:12]
    result = server.push()
    assert result.returncode == 0, result.stderr
    assert server.get("/").text == "v2"
    assert server.vassal_inis() == [f"app-{second}.ini"]
    server.wait_emperor_vassals([f"app-{second}.ini"])   # the old one stops gracefully
    assert f"app-{first}.socket" not in server.run_files(".socket")
    assert f"app-{first}.stats" not in server.run_files(".stats")
    assert os.readlink(server.app("app").home_link) == f"app-{second}"
    assert len(deploy_log_lines(server)) == 2


def assert_refused_and_v1_serves(server, result, stage, v1):
    must_fail(result, 1, f"remote: pre-receive: {stage}: ")
    assert "pre-receive hook declined" in result.stderr
    assert f"remote:  !     {stage}: " in result.stderr
    assert f"app-{v1} is still live" in result.stderr
    assert server.get("/").text == "v1"
    assert server.vassal_inis() == [f"app-{v1}.ini"]
    server.wait_emperor_vassals([f"app-{v1}.ini"])
    assert server.run_files(".socket") == sorted(["app.socket", "app.canary.socket", f"app-{v1}.socket"])
    assert os.readlink(server.app("app").home_link) == f"app-{v1}"
    assert len(deploy_log_lines(server)) == 1


@pytest.mark.emperor
def test_failing_setup_refuses_push_and_old_version_serves(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    server.commit_app("v2", extra={"setup": "#!/bin/sh\necho step one\necho broken >&2\nexit 3\n"})
    result = server.push()
    assert_refused_and_v1_serves(server, result, "setup", v1)
    assert "setup: setup exited with status 3" in result.stderr
    assert "remote:  !       broken" in result.stderr   # the tail of its output


@pytest.mark.emperor
def test_ping_500_refuses_push_showing_vassal_log(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    server.commit_app("v2", ping_status=500)
    result = server.push(extra_env={"DEPLOY_PROBE_TIMEOUT": "2"})
    assert_refused_and_v1_serves(server, result, "probe", v1)
    assert "no 200 within 2 s (last: status 500)" in result.stderr
    assert re.search(r"ud-req [0-9]+ 500 [0-9]+ GET /ping", result.stderr)     # a vassal log line


@pytest.mark.emperor
def test_ping_that_never_answers_refuses_within_timeout(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    hanging = "import time\ntime.sleep(3600)\n"   # the app never finishes importing
    server.commit_app("v2", extra={"app.py": hanging})
    result = server.push(extra_env={"DEPLOY_PROBE_TIMEOUT": "3"})
    assert_refused_and_v1_serves(server, result, "probe", v1)
    assert "no 200 within 3 s" in result.stderr


@pytest.mark.emperor
def test_import_error_refuses_push_showing_traceback(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    server.commit_app("v2", extra={"app.py": "import no_such_module_here\n"})
    result = server.push(extra_env={"DEPLOY_PROBE_TIMEOUT": "20"})
    assert_refused_and_v1_serves(server, result, "probe", v1)
    assert "No module named 'no_such_module_here'" in result.stderr


@pytest.mark.emperor
def test_other_branch_is_accepted_and_deploys_nothing(server):
    server.commit_app("v1")
    result = server.push(refspec="main:feature")
    assert result.returncode == 0, result.stderr
    assert ("remote:  !     branch feature was pushed but deploys nothing: only main or master deploys; "
            "to deploy it: git push deploy HEAD:main") in result.stderr
    assert server.vassal_inis() == []
    assert server.git(server.source_repo(), "ls-remote", os.path.join(server.home, "app.git")
                      ).stdout.strip().endswith("refs/heads/feature")


@pytest.mark.emperor
def test_deploy_branch_setting_narrows_it_to_one_branch(server):
    server.commit_app("v1")
    production = {"DEPLOY_BRANCH": "production"}
    result = server.push(refspec="main:master", extra_env=production)
    assert result.returncode == 0, result.stderr
    assert "branch master was pushed but deploys nothing: only production deploys; " \
           "to deploy it: git push deploy HEAD:production" in result.stderr
    assert server.vassal_inis() == []
    result = server.push(refspec="main:production", extra_env=production)
    assert result.returncode == 0, result.stderr
    assert server.get("/").text == "v1"


@pytest.mark.emperor
def test_deploy_init_branch_makes_that_branch_the_one_that_deploys(sandbox):
    sandbox.start_emperor()
    result = sandbox.tool("deploy-init", "--branch", "production", "prod")
    assert result.returncode == 0, result.stderr
    assert "(deploys production)" in result.stdout and "git push deploy production" in result.stdout
    sandbox.start_nginx(["prod"])
    sandbox.commit_app("v1")
    result = sandbox.push("prod", refspec="main")
    assert result.returncode == 0, result.stderr
    assert "branch main was pushed but deploys nothing: only production deploys" in result.stderr
    assert sandbox.vassal_inis() == []
    result = sandbox.push("prod", refspec="main:production")
    assert result.returncode == 0, result.stderr
    assert sandbox.get("/").text == "v1"


@pytest.mark.emperor
def test_tags_pass_untouched(server):
    server.commit_app("v1")
    server.git(server.source_repo(), "tag", "v1.0")
    result = server.push(refspec="refs/tags/v1.0")
    assert result.returncode == 0, result.stderr
    assert server.vassal_inis() == []


@pytest.mark.emperor
def test_deleting_the_deploy_branch_is_refused(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    result = server.push(refspec=":main", force=False)
    must_fail(result, 1, "remote: pre-receive: refusing to delete refs/heads/main: it is the deploy branch")
    assert server.get("/").text == "v1"
    assert os.readlink(server.app("app").live_socket) == f"app-{v1}.socket"
    heads = server.git(server.source_repo(), "ls-remote", server.app("app").repo).stdout
    assert "refs/heads/main" in heads     # git kept the branch


@pytest.mark.emperor
def test_deploy_symlink_points_to_the_deploy_files(server):
    server.commit({"deploy/app.py": "import sys\nsys.exit('wrong app')\n"})
    server.commit_app("v1", extra={"deploy/environment.sh": "GREETING=from-subdir\n"})
    # move the app into the sub-directory and link .deploy to it
    repo = server.source_repo()
    server.git(repo, "mv", "-f", "app.py", "deploy/app.py")
    server.git(repo, "mv", "uwsgi.ini", "deploy/uwsgi.ini")
    os.symlink("deploy", os.path.join(repo, ".deploy"))
    server.git(repo, "add", "-A")
    server.git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "deploy dir")
    result = server.push()
    assert result.returncode == 0, result.stderr
    assert server.get("/").text == "v1"
    assert server.get("/env").json()["GREETING"] == "from-subdir"


@pytest.mark.emperor
def test_env_files_reach_the_app_and_secrets_stay_out_of_output(server):
    with open(server.settings.env_file, "w") as stream:
        stream.write("SECRET_KEY='s3cr3t-50%-$(y)-@z'\nSHARED=home\n")
    server.commit_app("v1", extra={
        "environment.sh": "export SHARED=repo\nREPO_ONLY=\"${SHARED}-r\"\n",
        "setup": "#!/bin/sh\nenv | grep -c '^GIT_' > git-vars.txt || true\n"})
    result = server.push()
    assert result.returncode == 0, result.stderr
    env = server.get("/env").json()
    assert env["SECRET_KEY"] == "s3cr3t-50%-$(y)-@z"
    assert env["SHARED"] == "home"               # ~/environment.sh wins
    assert env["REPO_ONLY"] == "repo-r"
    assert not [k for k in env if k.startswith("GIT_")]
    assert "s3cr3t" not in result.stderr
    live = os.path.join(server.home, "app")
    assert open(os.path.join(live, "git-vars.txt")).read().strip() == "0"   # setup saw no GIT_*


@pytest.mark.emperor
def test_deploy_version_switches_back_to_an_older_version(server):
    v1 = server.commit_app("v1")[:12]
    assert server.push().returncode == 0
    v2 = server.commit_app("v2")[:12]
    assert server.push().returncode == 0
    result = server.tool("deploy-version", os.path.join(server.home, f"app-{v1}"))
    assert result.returncode == 0, result.stderr
    assert server.get("/").text == "v1"
    assert server.vassal_inis() == [f"app-{v1}.ini"]
    assert os.readlink(server.app("app").home_link) == f"app-{v1}"
    assert " via=deploy-version seconds=" in deploy_log_lines(server)[-1]
    assert deploy_log_lines(server)[-1].endswith(f" previous=app-{v2}")
    assert os.path.isdir(os.path.join(server.home, f"app-{v2}"))   # a rollback removes nothing


def test_deploy_version_of_unknown_directory_is_an_error(sandbox):
    sandbox.deploy_init("app")
    result = sandbox.tool("deploy-version", os.path.join(sandbox.home, "app-0123456789ab"))
    must_fail(result, 1, r"^deploy-version: .*no such directory")


@pytest.mark.emperor
def test_a_local_push_by_another_user_deploys_into_the_repos_home(server):
    """The pusher's HOME is not the deploy root: the repository's directory is."""
    elsewhere = os.path.join(server.root, "pusher-home")
    os.makedirs(elsewhere)
    rev = server.commit_app("v1", extra={"setup": "#!/bin/sh\nset -e\ndeploy-venv\necho $HOME > home\n"})[:12]
    result = server.push(extra_env={"HOME": elsewhere})
    assert result.returncode == 0, result.stderr
    assert server.get("/").text == "v1"
    workdir = os.path.join(server.home, f"app-{rev}")
    assert os.path.isdir(workdir)
    assert os.path.dirname(os.readlink(os.path.join(workdir, ".venv"))) == server.settings.venvs_dir
    with open(os.path.join(workdir, "home")) as stream:
        assert stream.read() == server.home + "\n"      # setup runs with the deploy home
    assert os.listdir(elsewhere) == []


def tcp_listeners(pids):
    """TCP ports the processes `pids` listen on (from /proc)."""
    inodes = set()
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in open(table).read().splitlines()[1:]:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:      # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.mark.emperor
def test_default_push_starts_on_the_socket_and_never_opens_a_tcp_port(server):
    server.commit_app("v1")
    assert server.push().returncode == 0
    v2 = server.commit_app("v2")[:12]
    version = server.app("app").version(v2)
    push = server.paused_push("switch")      # the candidate runs, probed, not yet live
    push.reached()
    with open(version.vassal_ini) as stream:
        ini = stream.read()
    assert f"socket = {version.socket}" in ini and "http" not in ini and "127.0.0.1" not in ini
    master = next(v["pid"] for v in read_stats(server.settings.emperor_stats)["vassals"]
                  if v["id"] == f"app-{v2}.ini")
    workers = [w["pid"] for w in read_stats(version.stats_socket)["workers"]]
    assert len(workers) == 4 and tcp_listeners([master, *workers]) == set()
    push.release()
    status, output = push.finish()
    assert status == 0, output
    assert "Moving " not in output and "-----> Probing" in output
    assert server.get("/").text == "v2"
    assert "(RE)spawned" not in open(version.log).read()   # no reload


@pytest.mark.emperor
def test_probe_via_http_listens_on_loopback_then_moves_to_the_socket(server):
    server.environ["DEPLOY_PROBE_VIA"] = "http"
    server.commit_app("v1")
    assert server.push().returncode == 0
    v2 = server.commit_app("v2")[:12]
    version = server.app("app").version(v2)
    push = server.paused_push("reconfigure")
    push.reached()
    with open(version.vassal_ini) as stream:
        assert "http-socket = 127.0.0.1:" in stream.read()
    push.release()
    status, output = push.finish()
    assert status == 0, output
    assert "-----> Moving " in output and server.get("/").text == "v2"
    with open(version.vassal_ini) as stream:
        ini = stream.read()
    assert f"socket = {version.socket}" in ini and "http-socket" not in ini

