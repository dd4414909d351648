"""Reading the text files the tools are handed (uwsgi.ini, environment
files, deploy.conf, ~/APP.env): a regular file of bounded size, as UTF-8 text
with its line ends untouched, or one line saying why not."""
import os
import stat

from . import DeployError

MAX_BYTES = 1 << 20   # far beyond any real uwsgi.ini or environment file
KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
         stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def read_text(path, max_bytes=MAX_BYTES):
    """The text of path. Opened non-blocking, so a FIFO (say, one a setup
    script left) is refused instead of hanging the deploy that holds the lock.
    No newline translation: a lone CR is not a line break for uWSGI either."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DeployError(f"{path}: no such file") from None
    except OSError as err:
        raise DeployError(f"{path}: {err.strerror}") from None
    with os.fdopen(fd, "rb") as stream:
        kind = stat.S_IFMT(os.fstat(fd).st_mode)
        if kind != stat.S_IFREG:
            raise DeployError(f"{path}: not a regular file ({KINDS.get(kind, 'unknown kind')})")
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DeployError(f"{path}: larger than {max_bytes // 1024} KiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DeployError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_text_if_exists(path, max_bytes=MAX_BYTES):
    """read_text, or None when path does not exist."""
    if not os.path.lexists(path):
        return None
    return read_text(path, max_bytes)
