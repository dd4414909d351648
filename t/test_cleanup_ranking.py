"""What deploy-cleanup keeps and why (cleanup.Cleanup over inventory.AppState):
the ranking by latest deploy, the protected versions, failed deploys. Pure
logic over the files of a deploy home (directories, deploy.log, links, the
lock's holder): no Emperor, no git. t/test_cleanup.py runs the same against
a real server."""
import datetime
import io
import os
import re

import pytest

from conftest import write
from uwsgi_deploy.cleanup import Cleanup
from uwsgi_deploy.deploylog import LogEntry
from uwsgi_deploy.layout import App
from uwsgi_deploy.lock import Holder
from uwsgi_deploy.settings import load

T0 = datetime.datetime(2026, 12, 1, 12, 0, 0)


class Home:
    """A deploy home of app `app`: rev(n) is version n's rev."""

    def __init__(self, root):
        self.app = App(load({"HOME": root}), "app")
        self.settings = self.app.settings
        for directory in (self.settings.run_dir, self.settings.vassals_dir, self.settings.log_dir):
            os.makedirs(directory, exist_ok=True)
        self.mtime = 1_000_000

    def version(self, n):
        return self.app.version(f"{n:012x}")

    def check_out(self, *numbers):
        """Directories in this order: each newer than the one before."""
        for n in numbers:
            os.makedirs(self.version(n).workdir)
            self.mtime += 10
            os.utime(self.version(n).workdir, (self.mtime, self.mtime))

    def log(self, *deploys):
        """deploy.log lines: (n, seconds after T0, previous n or None)."""
        with open(self.settings.log_file, "a") as stream:
            for n, seconds, previous in deploys:
                fields = {"commit": "-", "via": "push", "seconds": "1.0",
                          "previous": self.version(previous).name if previous else "-"}
                stream.write(LogEntry(self.version(n).name, T0 + datetime.timedelta(seconds=seconds),
                                      fields).line())

    def go_live(self, n):
        os.symlink(os.path.basename(self.version(n).socket), self.app.live_socket)
        os.symlink(self.version(n).name, self.app.home_link)

    def cleanup(self, keep, holder=None, dry_run=True):
        """{version number: what cleanup said about it}, and the versions removed."""
        out = io.StringIO()
        removing = Cleanup(self.app, keep, holder, dry_run=dry_run, out=out).run()
        said = {}
        for line in out.getvalue().splitlines():
            about = VERSION_LINE.match(line)    # a line about one version (not the bytes freed)
            if about:
                verb, name, why = about.groups()
                said[int(name, 16)] = f"{verb}: {why}"
        return said, {int(v.rev, 16) for v in removing}


VERSION_LINE = re.compile(r"(kept|removed|would remove) app-([0-9a-f]{12}): (.*)")


@pytest.fixture
def home(world):
    return Home(world)


def test_the_n_most_recent_are_kept_and_the_older_removed_newest_first(home):
    home.check_out(1, 2, 3, 4, 5, 6)
    home.log(*[(n, 60 * n, n - 1 or None) for n in range(1, 7)])
    home.go_live(6)
    said, removing = home.cleanup(keep=3)
    assert said == {6: "kept: live", 5: "kept: previous (rollback target)", 4: "kept: among the 3 most recent",
                    3: "would remove: older than the 3 most recent", 2: "would remove: older than the 3 most recent",
                    1: "would remove: older than the 3 most recent"}
    assert removing == {1, 2, 3}
    assert all(os.path.isdir(home.version(n).workdir) for n in range(1, 7))   # a dry run


def test_the_rank_is_the_latest_deploy_not_the_first(home):
    home.check_out(1, 2, 3, 4)
    # 1, 2, 3, 4, then a rollback to 2 and a redeploy of 1: newest first 1, 2, 4, 3
    home.log((1, 0, None), (2, 60, 1), (3, 120, 2), (4, 180, 3), (2, 240, 4), (1, 300, 2))
    home.go_live(1)
    said, removing = home.cleanup(keep=2)
    assert said[1] == "kept: live" and said[2] == "kept: previous (rollback target)"
    assert said[4] == said[3] == "would remove: older than the 2 most recent"
    said, removing = home.cleanup(keep=3)
    assert said[4] == "kept: among the 3 most recent" and removing == {3}


def test_deploys_within_one_second_rank_by_their_place_in_the_log(home):
    home.check_out(3, 2, 1)         # directory times say the opposite of the log
    home.log((1, 0, None), (2, 0, 1), (3, 0, 2))
    home.go_live(3)
    said, removing = home.cleanup(keep=0)
    assert said[2] == "kept: previous (rollback target)" and removing == {1}


def test_whatever_n_live_previous_and_a_version_with_a_vassal_stay(home):
    home.check_out(1, 2, 3, 4)
    home.log((1, 0, None), (2, 60, 1), (3, 120, 2), (4, 180, 3))
    home.go_live(4)
    restarted = home.version(1).restart(1)      # a restart's vassal counts too
    write(restarted.vassal_ini, "[uwsgi]\n")
    write(restarted.log, "its log\n")
    said, removing = home.cleanup(keep=0)
    assert said == {4: "kept: live", 3: "kept: previous (rollback target)", 2: "would remove: old, and N is 0",
                    1: "kept: has a vassal"}
    assert said.keys() == {1, 2, 3, 4} and removing == {2}


def test_a_version_never_logged_is_a_failed_deploy_whatever_its_age(home):
    home.check_out(1, 2, 3)
    home.log((1, 0, None), (2, 60, 1))
    home.go_live(2)
    said, removing = home.cleanup(keep=10)
    assert said[3] == "would remove: failed deploy" and removing == {3}


def test_while_a_deploy_holds_the_lock_its_version_and_unlogged_ones_stay(home):
    home.check_out(1, 2, 3, 4)
    home.log((1, 0, None), (2, 60, 1))
    home.go_live(2)
    deploying = Holder(f"{home.version(3).name} (push)", 42, "now")
    said, removing = home.cleanup(keep=0, holder=deploying)
    assert said[3] == "kept: being deployed" and said[4] == "would remove: failed deploy"
    unknown = Holder("unknown holder")       # a holder that names no version: keep every unlogged one
    said, removing = home.cleanup(keep=0, holder=unknown)
    assert said[3] == said[4] == "kept: not in deploy.log while the deploy lock is held (unknown holder)"
    assert removing == set()


def test_an_app_that_lost_its_log_ranks_by_directory_time(home):
    home.check_out(2, 1, 4, 3)      # oldest first
    home.go_live(1)
    said, removing = home.cleanup(keep=2)
    assert said[1] == "kept: live" and said[3] == "kept: among the 2 most recent"
    assert said[4] == "kept: among the 2 most recent" and said[2] == "would remove: older than the 2 most recent"
    assert removing == {2}


def test_a_real_run_removes_exactly_what_the_dry_run_named(home):
    home.check_out(1, 2, 3, 4, 5)
    home.log(*[(n, 60 * n, n - 1 or None) for n in range(1, 5)])
    home.go_live(4)
    write(home.version(1).log, "its log\n")
    dry, would = home.cleanup(keep=1)
    said, removed = home.cleanup(keep=1, dry_run=False)
    assert removed == would == {1, 2, 5}
    assert {n: why.replace("removed", "would remove") for n, why in said.items()} == dry
    assert sorted(os.listdir(home.settings.home)) == sorted(
        ["app", home.version(3).name, home.version(4).name, "deploy.log", "log", "run", "vassals"])
    assert not os.path.exists(home.version(1).log)
