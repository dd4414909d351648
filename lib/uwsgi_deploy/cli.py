"""What every bin/ tool shares: a private umask, error reporting and exit status."""
import os
import sys

from . import DeployError, error_line

EXIT_FAILURE = 1
# The deploy home is private to its account: what a tool, git, setup or the
# Emperor (started by deploy-emperor) creates is not readable by other users.
PRIVATE_UMASK = 0o027


def run(prog, main, *args):
    """Call main(*args) with the private umask; turn a DeployError, or an
    OSError (a file or directory the tool could not use), into one line
    `prog: message` and exit 1."""
    os.umask(PRIVATE_UMASK)
    try:
        status = main(*args)
    except (DeployError, OSError) as err:
        print(f"{prog}: {error_line(err)}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else status
