#!/bin/sh
# Set up uwsgi-deploy on this machine. As root: the system packages, the
# toolkit, and the deploy account's layout. Otherwise: the toolkit into $HOME.
# Safe to run again: it only does what is not done yet.
set -eu

usage() {
    cat <<USAGE
usage: ./install.sh [--user NAME] [--wheels DIR]

As root: install git, uWSGI (python3 plugin), nginx, sshd, python3-venv and
ansible-core 2.14 (pinned: Ansible drives fleets), vendor the tools' pinned
requirements, and install the tools into the home of the deploy account NAME
(default www-data), with its vassals/, run/ and log/ directories and ~/git-shell-commands (the operator commands it runs over
ssh). As another user: install the tools into \$HOME only. Either way the
home and those directories are made private: mode 0750, or tighter if they
already were. --wheels DIR: the requirements from the wheels in DIR only,
without PyPI (a host that cannot reach it; \`make wheels\` fetches them).
USAGE
}

deploy_user=www-data
wheels=
while [ $# -gt 0 ]; do
    case "$1" in
        --user) [ $# -ge 2 ] || { echo "install.sh: --user needs a name" >&2; exit 2; }
                deploy_user=$2; shift 2 ;;
        --wheels) [ $# -ge 2 ] || { echo "install.sh: --wheels needs a directory" >&2; exit 2; }
                  wheels=$(cd "$2" 2>/dev/null && pwd) || {
                      echo "install.sh: --wheels: no directory '$2'" >&2; exit 2; }
                  shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")"
say() { echo "-----> $*"; }

# private_dir DIR [OWNER]: the deploy home and its layout directories hold
# secrets and code. Create DIR with mode 0750, or tighten an existing one to
# at most 0750 (never loosen it: a 0700 home stays 0700).
private_dir() {
    if [ -d "$1" ]; then
        mode=$(stat -c %a "$1")
        tightened=$(printf '%o' $(( 0$mode & 07750 )))
        if [ "$mode" != "$tightened" ]; then
            chmod "$tightened" "$1"
            say "tightened $1 from mode $mode to $tightened"
        fi
    else
        install -d -m 0750 "$1"
    fi
    if [ $# -ge 2 ]; then chown "$2" "$1"; fi
}

PACKAGES="git make uwsgi-core uwsgi-plugin-python3 nginx-light openssh-server python3-venv"
ANSIBLE_SERIES=2.14   # ansible-core, Debian 12's: for fleets

if [ "$(id -u)" -ne 0 ]; then
    say "not root: skipping system packages ($PACKAGES) and the deploy account"
    say "installing the tools into $HOME"
    make install PREFIX="$HOME" WHEELS="$wheels"
    for dir in "$HOME" "$HOME/vassals" "$HOME/run" "$HOME/log"; do private_dir "$dir"; done
    exit 0
fi

missing=""
for package in $PACKAGES; do
    dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'ok installed' \
        || missing="$missing $package"
done
if [ -n "$missing" ]; then
    say "installing system packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
else
    say "system packages already installed"
fi

# A fleet (share/fleet) is driven by Ansible: Debian's ansible-core, which runs
# on the system Python like the toolkit, pinned to the 2.14 series the
# playbooks are written and tested for, without the community collections
# (the playbooks use ansible.builtin only).
ansible_pin=/etc/apt/preferences.d/uwsgi-deploy-ansible-core
printf 'Package: ansible-core\nPin: version %s\nPin-Priority: 1001\n' "$ANSIBLE_SERIES.*" > "$ansible_pin.tmp.$$"
if ! cmp -s "$ansible_pin.tmp.$$" "$ansible_pin" 2>/dev/null; then
    mv "$ansible_pin.tmp.$$" "$ansible_pin"
    say "pinned ansible-core to $ANSIBLE_SERIES.* ($ansible_pin)"
else
    rm -f "$ansible_pin.tmp.$$"
fi
if ! dpkg-query -W -f '${Status} ${Version}' ansible-core 2>/dev/null | grep -q "ok installed $ANSIBLE_SERIES\."; then
    say "installing ansible-core $ANSIBLE_SERIES (for fleets)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible-core
fi
ansible-playbook --version | head -n 1 | grep -q "core $ANSIBLE_SERIES\." || {
    echo "install.sh: ansible-playbook is not ansible-core $ANSIBLE_SERIES: $(ansible-playbook --version | head -n 1)" >&2
    exit 1; }

entry=$(getent passwd "$deploy_user") || {
    echo "install.sh: no account '$deploy_user' (create it, or pass --user NAME)" >&2; exit 1; }
home=$(echo "$entry" | cut -d: -f6)
group=$(id -gn "$deploy_user")

say "vendoring the tools' pinned requirements (build/site)${wheels:+ from the wheels in $wheels}"
make site PYTHON=/usr/bin/python3 WHEELS="$wheels"
say "installing the tools into $home for $deploy_user"
make install PREFIX="$home" PYTHON=/usr/bin/python3 MANDIR=/usr/local/share/man

# The deploy account writes versions, links and deploy.log into its home,
# which no other account may read.
for dir in "$home" "$home/vassals" "$home/run" "$home/log"; do
    private_dir "$dir" "$deploy_user:$group"
done

# Operator commands over ssh with the push key (deploy-status, deploy-logs, ...):
# git-shell runs only what ~/git-shell-commands holds. deploy-init does the same.
say "operator commands over ssh: $home/git-shell-commands"
runuser -u "$deploy_user" -- "$home/bin/deploy-commands" --install

# Pushes arrive over ssh; git-shell lets the account run git and nothing else.
git_shell=$(command -v git-shell)
grep -qx "$git_shell" /etc/shells || echo "$git_shell" >> /etc/shells
if [ "$(getent passwd "$deploy_user" | cut -d: -f7)" != "$git_shell" ]; then
    say "setting $deploy_user's login shell to $git_shell"
    usermod -s "$git_shell" "$deploy_user"
fi

unit=/etc/systemd/system/uwsgi-deploy-emperor@.service
# Written beside and renamed: two installs at once (accounts of one machine)
# must not fail on each other's half-written unit.
unit_tmp=$(mktemp "$(dirname "$unit")/.uwsgi-deploy-emperor.XXXXXX")
install -m 644 share/uwsgi-deploy-emperor.service "$unit_tmp"
mv -f "$unit_tmp" "$unit"
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now "uwsgi-deploy-emperor@$deploy_user.service"
    say "the Emperor runs as uwsgi-deploy-emperor@$deploy_user.service"
else
    say "no systemd here: start the Emperor with: runuser -u $deploy_user -- $home/bin/deploy-emperor"
fi
say "done: tools in $home/bin, layout in $home/{vassals,run,log}, ssh commands in $home/git-shell-commands"
say "next: put your ssh key in $home/.ssh/authorized_keys, then: runuser -u $deploy_user -- $home/bin/deploy-init APP"
