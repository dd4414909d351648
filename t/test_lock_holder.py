"""What a lock file says about its holder (lock.Holder): read back exactly
as written, and whatever else the file holds is still a holder to name."""
import pytest
from hypothesis import given, strategies as st

from uwsgi_deploy.lock import Holder


def test_a_written_holder_reads_back():
    holder = Holder.parse("app-0123456789ab (push), pid 4242, since 2026-12-06 03:00:00\n")
    assert holder == Holder("app-0123456789ab (push)", 4242, "2026-12-06 03:00:00")
    assert str(holder) == "app-0123456789ab (push), pid 4242, since 2026-12-06 03:00:00"


@pytest.mark.parametrize("text, what", [
    ("", "unknown holder"),
    ("  \n", "unknown holder"),
    ("deploy-cleanup", "deploy-cleanup"),
    ("x, pid notanumber, since now", "x, pid notanumber, since now"),
])
def test_a_file_that_does_not_say_pid_and_since_is_named_as_it_is(text, what):
    holder = Holder.parse(text)
    assert holder == Holder(what) and holder.pid is None and holder.since is None
    assert str(holder) == what


def test_the_last_pid_and_since_win_in_a_name_that_contains_them():
    holder = Holder.parse("a, pid 1, since then, pid 2, since now")
    assert (holder.what, holder.pid, holder.since) == ("a, pid 1, since then", 2, "now")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1).map(str.strip)
       .filter(bool), st.integers(1, 2 ** 31), st.text(alphabet="0123456789-: ", min_size=1).map(str.strip)
       .filter(bool))
def test_any_holder_round_trips_through_its_line(what, pid, since):
    holder = Holder(what, pid, since)
    assert Holder.parse(str(holder) + "\n") == holder
