"""uwsgi-deploy: push-to-deploy for Python apps under a uWSGI Emperor."""
import os
import traceback


class DeployError(Exception):
    """A failure the tools report as one line on stderr and a non-zero exit.

    The message must name what failed and where (file, line, option) and
    never contain an environment value.
    """


class FailedWithOutput(DeployError):
    """A failure that the last lines of some output explain: `tail` holds the
    last lines of `tail_of` (a command's output, a vassal's log)."""

    def __init__(self, message, tail, tail_of):
        super().__init__(message)
        self.tail, self.tail_of = list(tail), tail_of


def error_line(error):
    """One line for any exception, never a traceback: a DeployError's
    message; an OSError's file and reason; for anything else (a bug) its
    kind, its text and where in this package it was raised."""
    if isinstance(error, DeployError):
        text = str(error)
    elif isinstance(error, OSError) and error.strerror:
        files = " -> ".join(str(f) for f in (error.filename, error.filename2) if f is not None)
        text = f"{files}: {error.strerror}" if files else error.strerror
    else:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        ours = [frame for frame in traceback.extract_tb(error.__traceback__)
                if os.path.dirname(frame.filename) == os.path.dirname(__file__)]
        if ours:
            text += f" (at {os.path.basename(ours[-1].filename)}:{ours[-1].lineno})"
    return " ".join(text.split("\n"))
