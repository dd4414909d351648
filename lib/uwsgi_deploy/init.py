"""deploy-init: a bare repository whose pre-receive hook deploys, the
operator commands over ssh (~/git-shell-commands), plus the lines the
operator needs next (the git remote, the nginx site)."""
import getpass
import math
import os
import socket

from . import DeployError
from .canary import follow as follow_canary_link
from .checkout import branch_names, deploy_branch_refs, git
from .layout import App, create_directories
from .paths import share
from .settings import load
from .shell_commands import DIRECTORY, account_home, install_shell_commands


def render_nginx_site(app, listen="80", server_name=None):
    """The site: an upstream of the live socket and the canary link, weighted
    by DEPLOY_CANARY_SHARE (canary.py), and a server passing every request to it."""
    with open(share("nginx-site.conf")) as stream:
        template = stream.read()
    share_ = app.settings.canary_share
    divisor = math.gcd(share_, 100)
    values = {"@APP@": app.name, "@CANARY_SOCKET@": app.canary_link, "@SOCKET@": app.live_socket,
              "@LIVE_WEIGHT@": str((100 - share_) // divisor), "@CANARY_WEIGHT@": str(share_ // divisor),
              "@CANARY_SHARE@": str(share_), "@LISTEN@": str(listen), "@SERVER_NAME@": server_name or app.name}
    for name, value in values.items():
        template = template.replace(name, value)
    return template


def wire_hook(repo, hook_source):
    """hooks/pre-receive -> the installed pre-receive (a symlink, so upgrading
    the toolkit upgrades every app's hook)."""
    hook = os.path.join(repo, "hooks", "pre-receive")
    if os.path.islink(hook) and os.path.realpath(hook) == os.path.realpath(hook_source):
        return False
    if os.path.exists(hook) and not os.path.islink(hook):
        raise DeployError(f"{hook} exists and is not ours; move it away first")
    if os.path.lexists(hook):
        os.unlink(hook)
    os.symlink(hook_source, hook)
    return True


def receive_limits(settings):
    """What git checks of a push before the hook runs: every object is
    verified (a malformed object is refused), the pack is bounded in size,
    and objects are written private whatever umask the ssh session has."""
    return {"receive.fsckObjects": "true", "core.sharedRepository": "0640",
            "receive.maxInputSize": f"{settings.push_max_mb}m",   # 0: no limit
            "receive.advertisePushOptions": "true"}   # git push -o canary (canary.py)


def init_app(name, branch, hook_source, out, environ=None):
    environ = os.environ if environ is None else environ
    settings = load(environ)
    app = App(settings, name)
    create_directories(settings)
    if not os.path.isdir(app.repo):
        git(app.repo, "init", "--quiet", "--bare", f"--initial-branch={branch}", app.repo)
        out.write(f"created {app.repo} (deploys {branch_names(deploy_branch_refs(app.repo, settings.branch))})\n")
    else:
        out.write(f"{app.repo} exists; keeping it\n")
    for key, value in receive_limits(settings).items():
        git(app.repo, "config", key, value)
    if os.path.lexists(app.live_socket) and not os.path.lexists(app.canary_link):
        follow_canary_link(app)   # an app deployed before the site had a canary server
    if wire_hook(app.repo, hook_source):
        out.write(f"wired {app.repo}/hooks/pre-receive -> {hook_source}\n")
    home = account_home(environ)
    changed = install_shell_commands(home, os.path.dirname(hook_source))
    if changed:
        out.write(f"wired {os.path.join(home, DIRECTORY)}: {', '.join(changed)} (over ssh, with the push key)\n")
    out.write("\nOn your machine, add the remote and push:\n\n"
              f"    git remote add deploy {getpass.getuser()}@{socket.getfqdn()}:{name}.git\n"
              f"    git push deploy {branch}\n\n"
              "nginx site (for example /etc/nginx/sites-enabled/" + name + "):\n\n")
    out.write(render_nginx_site(app))
