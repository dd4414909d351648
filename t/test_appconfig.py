"""The per-app variables file deploy-config writes: what it writes reads back
byte for byte through the same reader the pipeline uses, the rest of the file
is kept as the operator wrote it, and ~/git-shell-commands is set up once."""
import io
import os
import stat

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from conftest import write
from uwsgi_deploy import DeployError
from uwsgi_deploy.appconfig import Change, check_value, read_value, with_value, without, write_private
from uwsgi_deploy.envfile import read_env_file
from uwsgi_deploy.layout import App
from uwsgi_deploy.report import Reporter
from uwsgi_deploy.settings import load
from uwsgi_deploy.shell_commands import COMMANDS, install_shell_commands

HAND_WRITTEN = """# the operator's own notes
export DATABASE_URL="postgres://db/app"   # primary

GREETING='hello'
LATER=${GREETING} world
"""


@pytest.fixture
def app(world):
    return App(load({"HOME": world}), "app")


MARKER = "Zq9-"   # begins every value, so a message that showed one would show it


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_a_value_is_stored_exactly_or_refused_without_showing_it(tmp_path_factory, rest):
    value = MARKER + rest
    home = str(tmp_path_factory.mktemp("h"))
    change = Change(App(load({"HOME": home}), "app"), "VALUE", value, Reporter(io.StringIO()))
    try:
        check_value("VALUE", value)
        text = with_value(HAND_WRITTEN, "VALUE", value)
        change.verify(text)
    except DeployError as refused:
        assert str(refused).startswith("VALUE: ") and MARKER not in str(refused)
        # only what uWSGI or python-dotenv cannot carry is refused
        assert any(bad in value for bad in ("\n", "\0", "%(", "${")) or value[-1] in " \t\r\v\f", value
        return
    path = write(os.path.join(home, "app.env"), text)
    assert {e.name: e.value for e in read_env_file(path)}["VALUE"] == value
    assert text.startswith(HAND_WRITTEN)


def test_set_replaces_in_place_and_keeps_the_rest(world):
    text = with_value(HAND_WRITTEN, "GREETING", "it's \\ here")
    assert text == HAND_WRITTEN.replace("GREETING='hello'", "GREETING='it\\'s \\\\ here'")
    path = write(os.path.join(world, "app.env"), text)
    values = {e.name: e.value for e in read_env_file(path)}
    assert values["GREETING"] == "it's \\ here"
    assert values["LATER"] == "it's \\ here world"       # the operator's reference still works
    assert values["DATABASE_URL"] == "postgres://db/app"


def test_unset_removes_every_binding_of_the_name_only(world):
    text = without(HAND_WRITTEN + "GREETING=again\n", "GREETING")
    assert "GREETING=" not in text and "# the operator's own notes" in text and "LATER=" in text


def test_written_file_is_private_from_its_first_byte(world):
    path = os.path.join(world, "app.env")
    write(os.path.join(world, ".app.env.tmp-1"), "left by a killed run\n")
    old_umask = os.umask(0)
    try:
        write_private(path, "A='1'\n")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(world)) == ["app.env"]


def test_value_from_a_pipe_drops_one_trailing_newline():
    class Pipe(io.BytesIO):
        def isatty(self):
            return False
    assert read_value("X", Pipe(b"two\n\n")) == "two\n"
    assert read_value("X", Pipe(b"none")) == "none"
    with pytest.raises(DeployError, match="X: the value on stdin is not UTF-8 text"):
        read_value("X", Pipe(b"\xff\n"))


def test_git_shell_commands_are_links_to_the_tools_and_set_up_once(world):
    bin_dir = os.path.join(world, "bin")
    names = [name for name, _, _ in COMMANDS] + ["deploy-commands"]
    for name in names:
        write(os.path.join(bin_dir, name), "#!/bin/sh\n", 0o755)
    assert sorted(install_shell_commands(world, bin_dir)) == sorted([n for n, _, _ in COMMANDS] + ["help"])
    directory = os.path.join(world, "git-shell-commands")
    assert os.readlink(os.path.join(directory, "help")) == os.path.join(bin_dir, "deploy-commands")
    assert install_shell_commands(world, bin_dir) == []            # idempotent
    os.unlink(os.path.join(directory, "deploy-logs"))
    os.symlink("/elsewhere/deploy-logs", os.path.join(directory, "deploy-logs"))
    assert install_shell_commands(world, bin_dir) == ["deploy-logs"]   # repaired
    os.unlink(os.path.join(directory, "deploy-run"))
    write(os.path.join(directory, "deploy-run"), "#!/bin/sh\n# the operator's own\n", 0o755)
    with pytest.raises(DeployError, match="deploy-run exists and is not a link to the toolkit"):
        install_shell_commands(world, bin_dir)
