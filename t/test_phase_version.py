"""Which version `deploy-version --commit/--abort APP REV` acts on
(phases.phase_version): a prepared candidate, else the live version, else the
one a whole rev names. Pure logic over the files of a deploy home: no
Emperor, no git."""
import os

import pytest

from uwsgi_deploy import DeployError
from uwsgi_deploy.candidates import write_record
from uwsgi_deploy.layout import App
from uwsgi_deploy.phases import phase_version
from uwsgi_deploy.settings import load

LIVE = "1111aaaa2222bbbb3333cccc4444dddd5555eeee"
PREPARED = "abcd00001111222233334444555566667777aaaa"
TWIN = "abcd00009999888877776666555544443333bbbb"   # shares PREPARED's first 8 digits


@pytest.fixture
def app(world):
    app = App(load({"HOME": world}), "app")
    os.makedirs(app.settings.run_dir)
    live = app.version(LIVE).restart(2)       # live after two config restarts
    os.symlink(os.path.basename(live.socket), app.live_socket)
    write_record(app.version(PREPARED), PREPARED, "fleet")
    return app


def test_a_prepared_candidate_is_found_by_any_prefix_in_any_case(app):
    for rev in (PREPARED[:4], PREPARED[:12].upper(), PREPARED):
        assert phase_version(app, rev) == app.version(PREPARED)


def test_the_live_version_is_found_when_nothing_prepared_matches(app):
    version = phase_version(app, LIVE[:6])
    assert version == app.version(LIVE) and version.run == 0     # the version, not its restart


def test_a_whole_rev_names_its_version_even_when_nothing_runs(app):
    other = "9" * 40
    assert phase_version(app, other) == app.version(other)
    assert phase_version(app, other[:12]) == app.version(other)


def test_a_short_rev_nothing_matches_is_refused(app):
    with pytest.raises(DeployError, match=r"^no prepared candidate of app matches '9999'$"):
        phase_version(app, "9999")


def test_a_prefix_two_prepared_candidates_share_is_ambiguous(app):
    write_record(app.version(TWIN), TWIN, "fleet")
    with pytest.raises(DeployError, match=r"^'abcd0000' is ambiguous: app-abcd00001111, app-abcd00009999 are"):
        phase_version(app, "abcd0000")
    assert phase_version(app, TWIN[:9]) == app.version(TWIN)


@pytest.mark.parametrize("rev", ["abc", "xyz123", "abcd 123", "-abcd", "a" * 41, ""])
def test_what_is_not_4_to_40_hex_digits_is_refused(app, rev):
    with pytest.raises(DeployError, match="is not a commit: give 4 to 40 hex digits"):
        phase_version(app, rev)
