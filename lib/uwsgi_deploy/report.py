"""What the pusher sees (on stderr, through git): a line per stage, indented
lines under it, failures and warnings marked ` !`. The prefixes are the
output's vocabulary, written here once; tools that read the output back (the
fleet's primary reading each host's phases) match the same constants."""
import sys

STAGE = "-----> "   # a stage begins, or a deploy's outcome
SAY = "       "     # a line under a stage
WARN = " !     "    # a failure or a warning


class Indented:
    """A binary stream that writes each line it is given under a stage:
    SAY first (an empty line stays empty). Lines may come in any pieces."""

    def __init__(self, stream):
        self.stream = stream
        self.at_line_start = True

    def write(self, data):
        out = bytearray()
        for piece in data.splitlines(keepends=True):
            if self.at_line_start and piece not in (b"\n", b"\r\n"):
                out += SAY.encode()
            out += piece
            self.at_line_start = piece.endswith(b"\n")
        self.stream.write(bytes(out))

    def flush(self):
        self.stream.flush()


class Reporter:
    """Writes the lines; keeps each stage's duration (durations[name], s).
    A pusher that went away (EPIPE) stops the output, never the deploy."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.durations = {}
        self.client_gone = False
        self.indented = Indented(getattr(self.stream, "buffer", self.stream))

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
        """Where the output of what a stage runs (setup, the installer) goes:
        the pusher, each line indented like the stage's own; None once gone."""
        return None if self.client_gone else self.indented

    def stage(self, text):
        self.line(STAGE + text)

    def say(self, text):
        self.line(SAY + text)

    def warn(self, text):
        self.line(WARN + text)
