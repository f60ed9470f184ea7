"""`python -m daemons.deploy.wake SOCKET`: has a supervisord that has just started start its programs now.

supervisord starts its programs from its event loop, and the loop first waits up to a second for
something to happen on its sockets (supervisor's runforever: poll(timeout=1) comes before the
first transition). A connection to its control socket ends that wait. Measured 2026-11-30 on a
first start: the programs were spawned 1.1 s after supervisord was launched, 0.1 s with this.
"""

from __future__ import annotations

import socket
import sys


def wake_supervisord(socket_path: str) -> bool:
    """Connects to supervisord's unix socket and hangs up; False if nothing listens there (then
    supervisord starts its programs a second later all the same)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(1.0)
            connection.connect(socket_path)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    wake_supervisord(sys.argv[1])
