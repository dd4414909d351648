"""What every bin/ tool shares: error reporting and exit status."""
import sys

from . import DeployError

EXIT_FAILURE = 1


def run(prog, main, *args):
    """Call main(*args); turn a DeployError into `prog: message` and exit 1."""
    try:
        status = main(*args)
    except DeployError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0 if status is None else status
