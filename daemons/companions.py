"""A daemon's companion processes (its monitor process, its TLS handshake tap): the same
interpreter running one of the package's modules, whatever the working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


def start_companion(module: str, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """`python -m module args` in a session of its own: supervisord signals the daemon's process
    group, and a companion is to end in its own way (when what ties it to the daemon closes), not
    of a SIGTERM meant for the daemon, maybe while it is still importing."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", module, *args], env=environment, start_new_session=True, **popen)
