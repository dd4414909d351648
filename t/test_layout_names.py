"""Temporary names are defined once (layout.TemporaryName): every name a
deploy or cleanup builds is recognised as its app's by the same definition,
and never as another app's. Pure logic, no server."""
import os

from uwsgi_deploy.layout import (App, hidden_temporary, hidden_work_file_version, temporary_link,
                                 venv_build_temporary, venv_lock, venv_removal_temporary, venv_temporary_key)
from uwsgi_deploy.settings import load

SETTINGS = load({"HOME": "/srv/deploy"})
REV = "0123456789ab"


def test_each_hidden_work_file_is_its_versions_and_no_other_apps():
    app, other = App(SETTINGS, "shop"), App(SETTINGS, "shop-admin")
    version = app.version(REV)
    restarted = version.restart(3)
    built = [version.checkout_temporary(42), version.checkout_archive(42), version.removal_temporary(42),
             hidden_temporary(version.vassal_ini), hidden_temporary(restarted.vassal_ini)]
    assert [os.path.basename(p) for p in built] == [
        f".shop-{REV}.tmp-42", f".shop-{REV}.tmp-42.tar", f".shop-{REV}.tmp-cleanup-42",
        f".shop-{REV}.ini.tmp", f".shop-{REV}.3.ini.tmp"]
    found = [hidden_work_file_version(app, os.path.basename(p)) for p in built]
    assert [(v.name, v.run) for v in found] == [(version.name, 0)] * 4 + [(version.name, 3)]
    assert [hidden_work_file_version(other, os.path.basename(p)) for p in built] == [None] * 5
    for name in (f"shop-{REV}", f".shop-{REV}.tmp-x", f".shop-{REV}.ini", f".shop-{REV}.tmp-42.tar.gz"):
        assert hidden_work_file_version(app, name) is None, name


def test_temporary_links_are_recognised_for_their_own_link_only():
    app = App(SETTINGS, "shop")
    for link in (app.home_link, app.live_socket):
        directory, name = os.path.split(temporary_link(link, 7))
        patterns = [pattern for where, pattern in app.temporary_links() if where == directory]
        assert [bool(p.match(name)) for p in patterns].count(True) == 1
    other = App(SETTINGS, "shop-admin")
    assert not any(p.match(os.path.basename(temporary_link(other.home_link, 7)))
                   for _, p in app.temporary_links())


def test_venv_temporaries_give_their_key():
    key = "0123456789abcdef0123"
    assert venv_temporary_key(os.path.basename(venv_build_temporary("/v", key, 9))) == key
    assert venv_temporary_key(os.path.basename(venv_removal_temporary("/v", key, 9))) == key
    assert venv_temporary_key(key) is None
    assert venv_temporary_key(os.path.basename(venv_lock("/v", key))) is None
