"""Waking a supervisord that has just started (daemons/deploy/wake.py): a connection to its
control socket, and nothing worse than a second's wait when nothing listens there."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

from daemons.deploy.wake import wake_supervisord


def test_a_listening_socket_is_connected_to():
    with tempfile.TemporaryDirectory(prefix="wk", dir="/tmp") as folder:
        path = str(Path(folder) / "s.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(path)
            listener.listen(1)
            assert wake_supervisord(path)
            listener.settimeout(5)
            accepted, _ = listener.accept()  # the connection that ends supervisord's first wait
            accepted.close()


def test_nothing_listening_is_no_error():
    with tempfile.TemporaryDirectory(prefix="wk", dir="/tmp") as folder:
        assert not wake_supervisord(str(Path(folder) / "absent.sock"))
