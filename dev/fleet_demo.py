"""make fleet-demo: from one server to three, all or nothing.

Three deploy accounts on this machine stand in for three hosts, each with its
own home, sshd (port, host key), Emperor and nginx. As an administrator and a
developer would, it runs, printing each command and each host's live version
after each step (a request loop runs against every host that serves):

  1. one server      install.yml on h1 alone; git push v1: h1 serves it
  2. three servers   install.yml on h1, h2, h3, h1 the primary; git push v2:
                     every host goes live with it
  3. push v3, whose setup fails on h2: refused, no host changes
  4. push v4, which crashes on h3 once live: refused, h3 switches back, h1
     and h2 are rolled back: every host ends on v2

It exits non-zero if the fleet ever ended split (hosts on different
versions) or a step ended otherwise than planned. It needs root (accounts,
sshd) and stops everything it started, whatever happens.

    make fleet-demo        (python3 dev/fleet_demo.py, with lib and dev on PYTHONPATH)
"""
import os
import shlex
import sys
import time

from fleet_world import APP, FleetWorld
from load import LoadLoop

VERSIONS = ["v1", "v2", "v3", "v4"]


def say(text):
    print(f"fleet-demo: {text}", flush=True)


def command(argv, who):
    print(f"\n{who}$ {' '.join(shlex.quote(a) for a in argv)}", flush=True)


def indented(lines):
    for line in lines:
        print(f"    {line}", flush=True)


def story_lines(text):
    """A push's or playbook's lines, shortened to the ones that tell the story."""
    in_status = False   # the fleet's closing table of each host's live version is kept whole
    for line in text.splitlines():
        line = line.removeprefix("remote: ").rstrip()
        if line.startswith("-----> "):
            in_status = line == "-----> What every host serves now"
        if line.startswith(("-----> ", " !     ", "pre-receive: ", "To ", " ! [", " * [", "   ")) \
                or "switched back" in line or " is live: " in line or "is prepared" in line:
            if "-----> Checking out" in line or (line.startswith("       ") and not in_status):
                continue
            yield line


class Demo:
    def __init__(self, world):
        self.world = world
        self.split = self.wrong = False

    def install(self, hosts, primary):
        world = self.world
        world.write_inventory(hosts, primary)
        with open(world.inventory) as stream:
            say(f"the administrator's inventory, {world.inventory}:")
            indented(stream.read().splitlines())
        command(world.install_command(), "admin")
        output = world.install(hosts, primary)
        indented(line for line in output.splitlines() if line.startswith(("-----> ", " !     ")))

    def push(self, version, environment, loaded):
        world = self.world
        world.commit(version, environment)
        loops = [LoadLoop(h.url, VERSIONS, clients=2, max_seconds=120) for h in loaded]
        for loop in loops:
            loop.__enter__()
            loop.wait_for(20)
        primary = world.primary
        command(["git", "push", f"{primary.user}@127.0.0.1:{APP}.git", "main"], "developer")
        began = time.monotonic()
        result = world.push()
        took = time.monotonic() - began
        for loop in loops:
            loop.wait_for(loop.total + 20)
            loop.__exit__(None, None, None)
        indented(story_lines(result.stderr))
        say(f"the push was {'accepted' if result.returncode == 0 else 'refused'} in {took:.1f} s")
        if loops:
            say("what the clients saw:")
            for host, loop in zip(loaded, loops):
                failed = sum(n for s, n in loop.statuses.items() if s != 200) + sum(loop.errors.values())
                answers = ", ".join(f"{v} {n}" for v, n in loop.versions.items())
                indented([f"{host.name} (nginx on port {host.box.nginx_port}): {loop.total} requests, "
                          f"{failed} failed; answered: {answers}"])
                if failed:
                    self.wrong = True
        return result.returncode == 0

    def show(self, fleet):
        """Each host's live version: deploy-status --fleet on the primary once
        there is a fleet; before, deploy-status on the one server."""
        primary = self.world.primary
        remote = f"deploy-status --fleet {APP}" if fleet else f"deploy-status {APP}"
        command(["ssh", f"{primary.user}@127.0.0.1", remote], "developer")
        result = primary.ssh(remote)
        indented(result.stdout.splitlines() if fleet else
                 [line for line in result.stdout.splitlines() if line.strip().startswith(("live", APP))])
        say("each host's live version: " + ", ".join(f"{h.name} {h.live() or 'none'}" for h in self.world.hosts))
        if fleet and result.returncode != 0:
            self.split = True
            say("the fleet ended SPLIT")

    def expect(self, accepted, wanted, ends_on, hosts):
        served = {h.name: h.served() for h in hosts}
        if accepted != wanted or set(served.values()) != {ends_on}:
            self.wrong = True
            say(f"UNEXPECTED: the push {'was accepted' if accepted else 'was refused'}; the hosts serve {served}")

    def run(self):
        world = self.world
        world.create_hosts()
        one, every = world.hosts[:1], world.hosts

        say("step 1: one server. The administrator installs uwsgi-deploy on h1 (install.yml runs install.sh there)")
        self.install(one, primary=False)
        world.start_servers(one)
        say("the developer pushes v1 to h1, as to any single server")
        self.expect(self.push("v1", "", []), True, "v1", one)
        self.show(fleet=False)

        say("step 2: three servers. The same playbook, the inventory now naming h1, h2, h3, with h1 the primary:")
        say("h2 and h3 get the toolkit; h1 gets the fleet key, every host's key in known_hosts, and "
            f"~/{APP}.inventory, which makes a push there a fleet deploy")
        self.install(every, primary=True)
        world.start_servers(every[1:])
        say("the developer pushes v2, exactly as before (h2 and h3 serve nothing yet: the loop runs on h1)")
        self.expect(self.push("v2", "", one), True, "v2", every)
        self.show(fleet=True)

        say("step 3: v3's setup fails on h2 (BREAK_SETUP_ON=h2 in its environment.sh)")
        self.expect(self.push("v3", "BREAK_SETUP_ON=h2\n", every), False, "v2", every)
        self.show(fleet=True)

        say("step 4: v4 crashes on h3 once it is live there (CRASH_ON=h3)")
        self.expect(self.push("v4", "CRASH_ON=h3\n", every), False, "v2", every)
        self.show(fleet=True)


def main():
    if os.geteuid() != 0:
        sys.exit("fleet-demo: run it as root: it creates three deploy accounts and runs sshd for them")
    world = FleetWorld(say=say)
    demo = Demo(world)
    try:
        demo.run()
    finally:
        say("stopping everything it started")
        world.stop()
    if demo.split or demo.wrong:
        say("FAILED: the fleet ended split, a request failed, or a step ended otherwise than planned")
        return 1
    say("every step ended with every host on the same version, and no request failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
