"""What the pusher sees (on stderr, through git): a line per stage, indented
lines under it, failures and warnings marked ` !`. The prefixes are the
output's vocabulary, written here once; tools that read the output back (the
fleet's primary reading each host's phases) match the same constants."""
import sys

STAGE = "-----> "   # a stage begins, or a deploy's outcome
SAY = "       "     # a line under a stage
WARN = " !     "    # a failure or a warning


class Reporter:
    """Writes the lines; keeps each stage's duration (durations[name], s).
    A pusher that went away (EPIPE) stops the output, never the deploy."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.durations = {}
        self.client_gone = False

    def line(self, text):
        """Write a line; if the pusher has gone away, the deploy carries on."""
        if self.client_gone:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except OSError:     # EPIPE: the client disconnected
            self.client_gone = True

    def binary_stream(self):
        """Where setup's raw output goes (the pusher), or None once gone."""
        return None if self.client_gone else getattr(self.stream, "buffer", self.stream)

    def stage(self, text):
        self.line(STAGE + text)

    def say(self, text):
        self.line(SAY + text)

    def warn(self, text):
        self.line(WARN + text)
