"""make fleet-demo: a fleet of three hosts on this machine, all or nothing.

Three deploy accounts stand in for three hosts, each with its own home, sshd,
Emperor and nginx; share/fleet/install.yml installs the toolkit on each over
ssh (as root, as an admin would) and makes host 1 the primary. Then, as a
developer would, with a request loop against every host's nginx:

  1. push v1                  every host goes live with it
  2. push v2                  every host moves to v2, no request fails
  3. push v3, whose setup     refused: no host changes, no candidate is left
     fails on h2
  4. push v4, which crashes   refused: h3 switches back, h1 and h2 are rolled
     on h3 once live          back: every host ends on v2

After each step it prints each host's live version (deploy-status --fleet,
over ssh, on the primary) and what the clients saw. It exits non-zero if the
fleet ever ended split (hosts on different versions) or a push ended
otherwise than this says. It needs root (accounts, sshd) and stops
everything it started, whatever happens.

    python3 dev/fleet_demo.py        (make fleet-demo)
"""
import os
import sys
import time

from fleet_world import APP, FleetWorld
from load import LoadLoop

STEPS = [
    # (what, version, the commit's environment.sh, the push succeeds, who ends live)
    ("push v1: every host goes live with it", "v1", "", True, "v1"),
    ("push v2: every host moves to it", "v2", "", True, "v2"),
    ("push v3, whose setup fails on h2: refused everywhere", "v3", "BREAK_SETUP_ON=h2\n", False, "v2"),
    ("push v4, which crashes on h3 once live: every host rolled back", "v4", "CRASH_ON=h3\n", False, "v2"),
]


def say(text):
    print(f"fleet-demo: {text}", flush=True)


def show_push(result):
    """The pusher's lines, shortened to the ones that tell the story."""
    for line in result.stderr.splitlines():
        line = line.removeprefix("remote: ").rstrip()
        if line.startswith(("-----> ", " !     ", "pre-receive: ")) or ": -----> Switching" in line \
                or "switched back" in line or "is prepared" in line or " is live: " in line:
            print(f"    {line}")


def main():
    if os.geteuid() != 0:
        sys.exit("fleet-demo: run it as root: it creates three deploy accounts and runs sshd for them")
    world = FleetWorld(say=say)
    split_seen = wrong = False
    try:
        started = time.monotonic()
        world.build()
        say(f"the fleet is up in {time.monotonic() - started:.0f} s: {len(world.hosts)} hosts, "
            f"{world.primary.name} is the primary (its ~/{APP}.inventory)")
        for number, (what, version, environment, succeeds, ends_on) in enumerate(STEPS, 1):
            say(f"step {number}: {what}")
            world.commit(version, environment)
            order = [step[1] for step in STEPS]    # versions, oldest first
            loops = [LoadLoop(h.url, order, clients=2, max_seconds=120) for h in world.hosts] if number > 1 else []
            for loop in loops:
                loop.__enter__()
                loop.wait_for(20)
            began = time.monotonic()
            result = world.push()
            took = time.monotonic() - began
            for loop in loops:
                loop.wait_for(loop.total + 20)
                loop.__exit__(None, None, None)
            show_push(result)
            say(f"the push {'was accepted' if result.returncode == 0 else 'was refused'} ({took:.1f} s)")
            status = world.primary.ssh(f"deploy-status --fleet {APP}")
            say("each host's live version (deploy-status --fleet, over ssh on the primary):")
            print("".join(f"    {line}\n" for line in status.stdout.splitlines()), end="", flush=True)
            if loops:
                say("what the clients saw:")
                for host, loop in zip(world.hosts, loops):
                    failed = sum(n for s, n in loop.statuses.items() if s != 200) + sum(loop.errors.values())
                    seen = ", ".join(f"{v} {n}" for v, n in loop.versions.items())
                    print(f"    {host.name} (port {host.box.nginx_port}): {loop.total} requests, "
                          f"{failed} failed; answers: {seen}", flush=True)
            if status.returncode != 0:
                split_seen = True
                say("the fleet ended SPLIT")
            texts = {h.name: h.served() for h in world.hosts}
            if (result.returncode == 0) != succeeds or set(texts.values()) != {ends_on}:
                wrong = True
                say(f"unexpected: the push {'succeeded' if result.returncode == 0 else 'failed'}, "
                    f"the hosts serve {texts}")
    finally:
        say("stopping everything it started")
        world.stop()
    if split_seen or wrong:
        say("FAILED: the fleet ended split, or a step ended otherwise than planned")
        return 1
    say("every step ended with every host on the same version")
    return 0


if __name__ == "__main__":
    sys.exit(main())
