"""uWSGI stats sockets: the Emperor's (which vassals it runs, and a way to
make it rescan at once) and each vassal's own (its listen queue and workers)."""
import json
import socket


def read_stats(address, timeout=2.0):
    """The JSON a uWSGI stats socket (unix path) sends; None if nobody listens.

    Connecting to the Emperor's stats socket also wakes its loop, which then
    rescans the vassals directory at once instead of at the next tick."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        sock.close()
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return None


def poke(settings):
    """Make the Emperor rescan now; returns its stats (or None without one)."""
    return read_stats(settings.emperor_stats)


def vassal_state(stats, ini_name):
    """The Emperor's record of a vassal (by ini file name), or None."""
    for vassal in (stats or {}).get("vassals", []):
        if vassal.get("id") == ini_name:
            return vassal
    return None
