"""Generated reference: a man page per tool from its own --help, and the
settings reference from SETTINGS; what is committed is what the code says."""
import os
import re
import subprocess
import sys

import pytest

from conftest import BIN, ROOT

sys.path.insert(0, os.path.join(ROOT, "dev"))
import docgen  # noqa: E402
from uwsgi_deploy.settings import SETTINGS  # noqa: E402

TOOLS = sorted(os.listdir(BIN))


def render(source):
    """What `man` shows for a page, and groff's warnings about it."""
    result = subprocess.run(["man", "--warnings", "-l", "-"], input=source, capture_output=True, text=True,
                            env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0"), timeout=30)
    assert result.returncode == 0, result.stderr
    return re.sub(r".\x08", "", result.stdout), result.stderr


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_has_a_man_page_with_its_usage_and_every_option(tool):
    help_text = docgen.help_text(os.path.join(BIN, tool))
    shown, warnings = render(docgen.man_page(os.path.join(BIN, tool)))
    assert warnings == ""
    assert re.search(rf"^NAME\n\s+{re.escape(tool)}\s+-\s+\S", shown, re.M), shown[:400]
    assert "SYNOPSIS" in shown and "DESCRIPTION" in shown and "uwsgi-deploy-settings(7)" in shown
    options = set(re.findall(r"^  (-[-\w]+)", help_text.partition("\noptions:\n")[2], re.M))
    assert options, help_text   # every tool has at least --help
    for option in options:
        assert re.search(rf"^\s+{re.escape(option)}(?![-\w])", shown, re.M), (tool, option)
    first_line = help_text.split("\n\n")[1].split("\n")[0].strip()
    assert " ".join(first_line.split()[:4]) in " ".join(shown.split()), (tool, first_line)


def test_parse_help_keeps_an_options_wrapped_help_with_it():
    usage, description, sections = docgen.parse_help(
        "usage: t [-h] [--long-one X]\n\nDoes t.\n\n  t a   example\n\noptions:\n"
        "  -h, --help    show this help message and exit\n  --long-one X  first half\n"
        "                second half\n  --a-very-long-option-name VALUE\n                what it does\n")
    assert usage == ["t [-h] [--long-one X]"]
    assert description == ["Does t.", "", "  t a   example", ""]
    assert sections["OPTIONS"] == [["-h, --help", "show this help message and exit"],
                                   ["--long-one X", "first half second half"],
                                   ["--a-very-long-option-name VALUE", "what it does"]]


def test_roff_escapes_what_would_be_a_request_or_an_escape():
    assert docgen.roff(".TH x") == "\\&.TH x"
    assert docgen.roff("a\\b-c") == "a\\eb\\-c"


def test_the_settings_reference_in_docs_is_what_the_code_says():
    with open(os.path.join(ROOT, "docs", "settings.md"), encoding="utf-8") as stream:
        committed = stream.read()
    assert committed == docgen.settings_markdown(), "docs/settings.md is stale: run `make docs`"
    for setting in SETTINGS:
        assert f"`{setting.variable}`" in committed


def test_the_settings_man_page_lists_every_setting():
    shown, warnings = render(docgen.settings_man())
    assert warnings == ""
    for setting in SETTINGS:
        assert setting.variable in shown
