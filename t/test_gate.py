"""What a scoped key may run: deploy-gate's check of a command line against
the key's role and apps (the ssh tests in t/test_keys.py run it for real),
and deploy-keys' authorized_keys lines."""
import io
import os

import pytest

from uwsgi_deploy import DeployError, gate, keys
from uwsgi_deploy.gate import Scope, resolve
from uwsgi_deploy.paths import BIN_DIR
from uwsgi_deploy.settings import load

HOME = "/srv/deploy"
SETTINGS = load({"HOME": HOME, "DEPLOY_CONFIG": "/nonexistent/deploy.conf"})
ALPHA = Scope.checked("alice", "operate", ["alpha"])
BOTH = Scope.checked("ops", "run", ["alpha", "beta"])
VIEWER = Scope.checked("viewer", "push", ["alpha"])
FLEET = Scope.checked("fleet", "fleet", ["alpha"])
# an ed25519 public key, as ssh-keygen writes it
PUBLIC = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGzRgH85107Coecd4HLhyfQCQ8s9+Rd009IRGx/hVSmz someone@laptop"


def argv(scope, line):
    program, args = resolve(scope, line, SETTINGS)
    return os.path.basename(program), args


def refused(scope, line):
    with pytest.raises(DeployError) as error:
        resolve(scope, line, SETTINGS)
    return str(error.value)


@pytest.mark.parametrize("line", ["git-receive-pack 'alpha.git'", "git-receive-pack '/srv/deploy/alpha.git'",
                                  "git-receive-pack '~/alpha.git/'", "git receive-pack 'alpha'"])
def test_a_push_to_the_keys_app_runs_receive_pack_on_its_repository(line):
    assert argv(ALPHA, line) == ("git", ["git", "receive-pack", f"{HOME}/alpha.git"])


@pytest.mark.parametrize("line, why", [
    ("git-receive-pack 'beta.git'", "key alice (operate) may not run git-receive-pack for beta: its apps are alpha"),
    ("git-receive-pack '/etc/alpha.git'", "not a repository of the deploy home"),
    ("git-receive-pack '../alpha.git'", "is not an app name"),
    ("git-receive-pack 'alpha.git' 'beta.git'", "it takes one repository"),
    ("git-upload-archive 'alpha.git'", "may not run git-upload-archive: role operate runs"),
])
def test_a_push_elsewhere_is_refused(line, why):
    assert why in refused(ALPHA, line)


@pytest.mark.parametrize("line, expected", [
    ("deploy-status alpha --json", ["deploy-status", "alpha", "--json"]),
    ("deploy-status", ["deploy-status", "alpha"]),              # the key's only app, not every app
    ("deploy-status --json", ["deploy-status", "--json", "alpha"]),
    ("deploy-logs -n 5 alpha -f", ["deploy-logs", "-n", "5", "alpha", "-f"]),
    ("deploy-logs alpha --raw --process all", ["deploy-logs", "alpha", "--raw", "--process", "all"]),
    ("deploy-scale alpha worker=2", ["deploy-scale", "alpha", "worker=2"]),
    ("deploy-maintenance alpha on --message 'back soon'", ["deploy-maintenance", "alpha", "on", "--message",
                                                          "back soon"]),
    ("deploy-version --previous alpha", ["deploy-version", "--previous", "alpha"]),
    ("deploy-config alpha set NAME", ["deploy-config", "alpha", "set", "NAME"]),
    ("deploy-cleanup 2 --dry-run", ["deploy-cleanup", "2", "--dry-run", "--app", "alpha"]),
    ("deploy-cleanup --app alpha", ["deploy-cleanup", "--app", "alpha"]),
    ("deploy-status --help", ["deploy-status", "--help"]),
])
def test_the_keys_own_app(line, expected):
    program, args = resolve(ALPHA, line, SETTINGS)
    assert program == os.path.join(BIN_DIR, expected[0]) and args == expected


@pytest.mark.parametrize("line, why", [
    ("deploy-status beta", "may not run deploy-status for beta: its apps are alpha"),
    ("deploy-logs -n 5 beta", "for beta: its apps are alpha"),
    ("deploy-cleanup --app beta", "for beta"),
    ("deploy-cleanup --app alpha --app beta", "name one app, once"),
    ("deploy-cleanup --ap beta", "may not run deploy-cleanup --ap"),            # no abbreviations
    ("deploy-cleanup --app=beta", "may not run deploy-cleanup --app=beta"),
    ("deploy-version /srv/deploy/beta-0123456789ab", "is not an app name"),     # a directory: refused
    ("deploy-status 'alpha;' id", "'alpha;' is not an app name"),
    ("deploy-run alpha -- id", "may not run deploy-run: role operate runs"),
    ("deploy-maintenance --message x beta on", "the app comes first"),
    ("deploy-scale beta worker=9", "for beta"),
    ("sh -c id", "may not run sh: role operate"),
    ("deploy-init beta", "may not run deploy-init"),
    ("deploy-gate --key x --role run --app beta", "may not run deploy-gate"),
    ("", "may not run an empty command"),
])
def test_another_app_or_command_is_refused(line, why):
    message = refused(ALPHA, line)
    assert why in message and message.startswith("key alice (operate) may not run "), message
    assert "\n" not in message


def test_a_key_of_several_apps_names_one_where_a_tool_would_act_on_every_app():
    assert "without an app it acts on every app; name one of alpha, beta" in refused(BOTH, "deploy-status")
    assert "name one of alpha, beta" in refused(BOTH, "deploy-cleanup 2")
    assert argv(BOTH, "deploy-status beta") == ("deploy-status", ["deploy-status", "beta"])
    assert argv(BOTH, "deploy-run beta -- sh -c 'echo $HOME'") == (
        "deploy-run", ["deploy-run", "beta", "--", "sh", "-c", "echo $HOME"])
    assert "the app comes first" in refused(BOTH, "deploy-run --x beta")
    assert "for gamma" in refused(BOTH, "deploy-run gamma -- id")


def test_push_role_looks_but_does_not_change():
    assert argv(VIEWER, "git-upload-pack 'alpha.git'")[1][1] == "upload-pack"
    for line in ("deploy-config alpha", "deploy-version --previous alpha", "deploy-run alpha -- id",
                 "deploy-cleanup --app alpha"):
        assert "role push runs git-receive-pack, git-upload-pack, deploy-status, deploy-logs" in refused(VIEWER, line)


def test_fleet_role_runs_a_fleet_deploys_commands_only():
    assert argv(FLEET, "deploy-version --prepare alpha " + "a" * 40)[0] == "deploy-version"
    assert argv(FLEET, "deploy-version --no-setup alpha 0123456789ab")[0] == "deploy-version"
    assert argv(FLEET, "deploy-status alpha --json")[0] == "deploy-status"
    for line in ("deploy-run alpha -- sh -c id", "sh", "deploy-config alpha", "git-upload-pack 'alpha.git'",
                 "deploy-logs alpha"):
        assert "key fleet (fleet) may not run" in refused(FLEET, line)


def test_controller_role_runs_deploy_fleet_and_fleet_status_of_its_apps_only():
    controller = Scope.checked("primary", "controller", ["alpha"])
    assert argv(controller, "deploy-fleet alpha " + "a" * 40 + " --batch 1")[1] == [
        "deploy-fleet", "alpha", "a" * 40, "--batch", "1"]
    assert argv(controller, "deploy-fleet alpha " + "a" * 40 + " --ref refs/heads/main")[1] == [
        "deploy-fleet", "alpha", "a" * 40, "--ref", "refs/heads/main"]
    assert argv(controller, "deploy-fleet alpha " + "a" * 40 + " --start-by 1765000000")[1] == [
        "deploy-fleet", "alpha", "a" * 40, "--start-by", "1765000000"]
    assert argv(controller, "deploy-status --fleet --json") == ("deploy-status",
                                                                ["deploy-status", "--fleet", "--json", "alpha"])
    assert argv(controller, "git-receive-pack 'alpha.git'")[1] == ["git", "receive-pack", f"{HOME}/alpha.git"]
    for line in ("deploy-fleet beta " + "a" * 40, "deploy-version --previous alpha", "deploy-run alpha -- id",
                 "git-upload-pack 'alpha.git'"):
        assert "key primary (controller) may not run" in refused(controller, line)


def test_the_key_a_deploy_records_is_validated():
    assert gate.key_of({}) is None
    assert gate.key_of({"DEPLOY_KEY": "alice"}) == "alice"
    with pytest.raises(DeployError):
        gate.key_of({"DEPLOY_KEY": "alice commit=evil"})


# -- deploy-keys' lines ----------------------------------------------------------------
def test_lines_are_written_parsed_back_and_an_unscoped_line_is_narrowed(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    home = tmp_path
    os.makedirs(home / ".ssh")
    other = PUBLIC.replace("AAAAIGzR", "AAAAIGzS")
    (home / ".ssh" / "authorized_keys").write_text(f"# admin's\n{PUBLIC}\nno-pty {other} hand-made\n")
    out = io.StringIO()
    keys.main("add", "alice", "push", ["alpha", "beta"], "10.0.0.0/8", home=str(home),
              stdin=io.StringIO(PUBLIC + "\n"), out=out)
    assert "added key alice: role push, apps alpha, beta, from 10.0.0.0/8" in out.getvalue()
    assert "replaced its unscoped line" in out.getvalue()
    lines = (home / ".ssh" / "authorized_keys").read_text().splitlines()
    assert lines[0] == "# admin's" and lines[2] == f"no-pty {other} hand-made"
    assert lines[1] == ('restrict,command="deploy-gate --key alice --role push --app alpha --app beta",'
                        'from="10.0.0.0/8" ' + " ".join(PUBLIC.split()[:2]) + " deploy-key:alice")
    assert oct(os.stat(home / ".ssh" / "authorized_keys").st_mode & 0o777) == "0o600"
    listed = keys.listing(keys.AuthorizedKeys(str(home)))
    assert listed[0].startswith("alice  role=push  apps=alpha,beta  from=10.0.0.0/8  SHA256:")
    assert listed[1].startswith("(unscoped)  every command, every app  SHA256:") and listed[1].endswith("hand-made")
    # the same again changes nothing; the same key under another name is refused
    out = io.StringIO()
    keys.main("add", "alice", "push", ["alpha", "beta"], "10.0.0.0/8", home=str(home),
              stdin=io.StringIO(PUBLIC), out=out)
    assert out.getvalue().startswith("unchanged key alice")
    with pytest.raises(DeployError, match="already key alice"):
        keys.main("add", "bob", "push", ["alpha"], home=str(home), stdin=io.StringIO(PUBLIC), out=out)
    with pytest.raises(DeployError, match="exists with another public key"):
        keys.main("add", "alice", "push", ["alpha"], home=str(home), stdin=io.StringIO(other), out=out)
    keys.main("remove", "alice", home=str(home), out=out)
    assert len(keys.listing(keys.AuthorizedKeys(str(home)))) == 1
    with pytest.raises(DeployError, match="no key alice"):
        keys.main("remove", "alice", home=str(home), out=out)


@pytest.mark.parametrize("text, why", [
    ('command="sh" ' + PUBLIC, "not a public key"),
    (PUBLIC + "\n" + PUBLIC, "expected one public key line"),
    ("ssh-ed25519 AAAA!!!", "does not decode"),
    ("ssh-rsa " + PUBLIC.split()[1], "not a ssh-rsa key"),
])
def test_only_a_public_key_is_read_from_stdin(text, why):
    with pytest.raises(DeployError, match=why):
        keys.PublicKey.parse(text)


@pytest.mark.parametrize("name, role, apps, source, why", [
    ("a b", "push", ["alpha"], None, "invalid key name"),
    ("alice", "admin", ["alpha"], None, "unknown role"),
    ("alice", "push", ["../x"], None, "invalid app name"),
    ("alice", "push", ["alpha"], 'x",command="sh', "--from"),
])
def test_bad_arguments_are_refused_before_anything_is_read(tmp_path, monkeypatch, name, role, apps, source, why):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(DeployError, match=why):
        keys.main("add", name, role, apps, source, home=str(tmp_path), stdin=io.StringIO(PUBLIC))
    assert not os.path.exists(tmp_path / ".ssh" / "authorized_keys")
