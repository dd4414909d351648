#!/usr/bin/env python3
"""Reference documents generated from the code, so they cannot drift from it.

  docgen.py man TOOL_PATH          a man page (roff) built from TOOL --help:
                                   its usage, its docstring, its options
  docgen.py install-man MANDIR TOOL_PATH...
                                   every tool's page as MANDIR/man1/TOOL.1 and
                                   uwsgi-deploy-settings(7) as MANDIR/man7/,
                                   in one process (make install)
  docgen.py settings-md            docs/settings.md, from settings.SETTINGS
  docgen.py settings-man           uwsgi-deploy-settings(7), the same as a man page

Build-time only (make install, make docs): it is not installed."""
import contextlib
import io
import os
import re
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "lib")]

from uwsgi_deploy.settings import SETTINGS  # noqa: E402

SECTIONS = {"positional arguments:": "ARGUMENTS", "options:": "OPTIONS", "optional arguments:": "OPTIONS"}
ITEM = re.compile(r"  (\S.*?)(?:\s{2,}(\S.*))?\Z")   # argparse: `  NAME   help`, help may wrap
SEE_ALSO_PAGE = "uwsgi-deploy-settings"


def roff(text):
    """Text safe in a roff line: backslashes escaped, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text[:1] in (".", "'") else text


def help_text(tool_path):
    """What `TOOL --help` prints, 80 columns wide. Read in this process:
    each tool parses its arguments first thing, so running it with --help
    prints that and exits, having done nothing (a process per tool cost an
    install 20 times more)."""
    saved_argv, saved_columns = sys.argv, os.environ.get("COLUMNS")
    sys.argv, os.environ["COLUMNS"] = [tool_path, "--help"], "80"
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(tool_path, run_name="__main__")
        status = "no exit"
    except SystemExit as exit:
        status = exit.code
    finally:
        sys.argv = saved_argv
        if saved_columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved_columns
    if status not in (0, None) or not out.getvalue().startswith("usage:"):
        raise SystemExit(f"docgen: {tool_path} --help failed ({status}): {err.getvalue().strip()[-300:]}")
    return out.getvalue()


def parse_help(text):
    """(usage lines, description lines, {section: [(name, help)]}) from argparse's --help."""
    lines = text.rstrip("\n").split("\n")
    end = lines.index("") if "" in lines else len(lines)
    usage, rest = lines[:end], lines[end + 1:]
    description, sections, current = [], {}, None
    for line in rest:
        if line in SECTIONS:
            current = sections.setdefault(SECTIONS[line], [])
            continue
        if current is None:
            description.append(line)
            continue
        item = ITEM.match(line)
        if line.startswith("  ") and not line.startswith("   ") and item:
            current.append([item.group(1), item.group(2) or ""])
        elif line.strip() and current:
            current[-1][1] = (current[-1][1] + " " + line.strip()).strip()
    usage[0] = usage[0][len("usage: "):]
    return usage, description, sections


def paragraphs(lines):
    """Description lines as roff: plain paragraphs filled, indented blocks kept as they are."""
    out, block = [], []
    for line in lines + [""]:
        if line.startswith("  ") and line.strip():
            if not block:
                out += [".PP", ".nf", ".RS 4"]
            block.append(line.strip() and line[2:])
            continue
        if block:
            out += [roff(b) for b in block] + [".RE", ".fi"]
            block = []
        if not line.strip():
            if out and out[-1] != ".PP":
                out.append(".PP")
        else:
            out.append(roff(line.strip()))
    while out and out[-1] == ".PP":
        out.pop()
    return out


def summary(tool, description):
    """The NAME line's words: the description's first sentence."""
    words = " ".join(line.strip() for line in description).strip()
    first = re.split(r"(?<=[.:])\s", words, maxsplit=1)[0].rstrip(".:")
    return first or tool


def man_page(tool_path):
    tool = os.path.basename(tool_path)
    usage, description, sections = parse_help(help_text(tool_path))
    tools = sorted(t for t in os.listdir(os.path.dirname(tool_path)) if t != tool)
    lines = [f'.TH "{tool.upper()}" 1 "" "uwsgi-deploy" "uwsgi-deploy manual"',
             ".SH NAME", f"{roff(tool)} \\- {roff(summary(tool, description))}",
             ".SH SYNOPSIS", ".nf", *[roff(u.strip()) for u in usage], ".fi",
             ".SH DESCRIPTION", *paragraphs(description)]
    for title in ("ARGUMENTS", "OPTIONS"):
        if sections.get(title):
            lines.append(f".SH {title}")
            for name, text in sections[title]:
                lines += [".TP", f"\\fB{roff(name)}\\fR", roff(text)]
    lines += [".SH ENVIRONMENT",
              f"Settings are DEPLOY_* variables or lines of ~/deploy.conf: see \\fB{SEE_ALSO_PAGE}\\fR(7).",
              ".SH SEE ALSO",
              ", ".join(f"\\fB{roff(t)}\\fR(1)" for t in tools) + f", \\fB{SEE_ALSO_PAGE}\\fR(7)"]
    return "\n".join(lines) + "\n"


SETTINGS_INTRO = """Every setting is a variable DEPLOY_NAME, or a line DEPLOY_NAME=value in
the configuration file (~/deploy.conf, or the file DEPLOY_CONFIG names); a
variable wins over the file, the file over the default. A default in braces
names another setting ({home} is DEPLOY_HOME): moving the deploy root moves
everything under it. Every tool reads the same settings."""


def settings_markdown():
    out = ["# Settings", "",
           "<!-- generated by `make docs` from lib/uwsgi_deploy/settings.py: edit the code, not this file -->",
           "", SETTINGS_INTRO, "", "| variable | default | what it sets |", "| --- | --- | --- |"]
    for setting in SETTINGS:
        default = f"`{setting.default}`" if setting.default else "(empty)"
        text = setting.help.replace("|", "\\|")
        out.append(f"| `{setting.variable}` | {default} | {text} |")
    return "\n".join(out) + "\n"


def settings_man():
    out = ['.TH "UWSGI-DEPLOY-SETTINGS" 7 "" "uwsgi-deploy" "uwsgi-deploy manual"',
           ".SH NAME", "uwsgi\\-deploy\\-settings \\- the DEPLOY_* settings of every uwsgi\\-deploy tool",
           ".SH DESCRIPTION", *paragraphs(SETTINGS_INTRO.split("\n")), ".SH SETTINGS"]
    for setting in SETTINGS:
        default = setting.default or "(empty)"
        out += [".TP", f"\\fB{roff(setting.variable)}\\fR (default: {roff(default)})", roff(setting.help)]
    return "\n".join(out) + "\n"


def write_file(path, text):
    """path holds text, written beside and renamed: a reader never sees half."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    with open(tmp, "w") as stream:
        stream.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def install_man(mandir, tool_paths):
    for section in ("man1", "man7"):
        os.makedirs(os.path.join(mandir, section), exist_ok=True)
    for tool_path in tool_paths:
        write_file(os.path.join(mandir, "man1", os.path.basename(tool_path) + ".1"), man_page(tool_path))
    write_file(os.path.join(mandir, "man7", SEE_ALSO_PAGE + ".7"), settings_man())


def main(argv):
    if len(argv) == 2 and argv[0] == "man":
        sys.stdout.write(man_page(argv[1]))
    elif len(argv) >= 3 and argv[0] == "install-man":
        install_man(argv[1], argv[2:])
    elif argv == ["settings-md"]:
        sys.stdout.write(settings_markdown())
    elif argv == ["settings-man"]:
        sys.stdout.write(settings_man())
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
