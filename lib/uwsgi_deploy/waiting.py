"""Waiting for a condition, bounded: the one loop every wait uses."""
import time

POLL = 0.02   # seconds between looks; each look is cheap (a stat, a socket connect)


def wait_until(condition, timeout, interval=POLL):
    """Call condition() until it returns something true, for at most timeout
    seconds (at least once); return that value, or the last false one."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return result
        time.sleep(min(interval, remaining))
