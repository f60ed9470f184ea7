"""What a daemon and its monitor process import at start: every import is CPU that twelve interpreters
pay at once on a first start, so libraries that only some configs need are imported only for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.cluster import ETC

LEFT_OUT = ("cryptography", "daemons.dashboard.live")  # for TLS configs only; for the gateway only


def imported_of(statements: str) -> list[str]:
    """Which of LEFT_OUT a fresh interpreter holds after `statements`."""
    program = f"import json, sys\n{statements}\nprint(json.dumps([m for m in {LEFT_OUT!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_daemon_without_tls_imports_neither_the_certificate_library_nor_the_dashboard() -> None:
    assert "tls" not in json.loads((ETC / "worker_c.json").read_text())
    assert imported_of(f"from pathlib import Path\nimport daemons.server\nfrom daemons.config import load_config\n"
                       f"load_config(Path({str(ETC / 'worker_c.json')!r}))") == []


def test_a_monitor_process_imports_neither() -> None:
    assert imported_of("import daemons.health.process") == []


def test_a_daemon_runs_numpy_without_blas_threads() -> None:
    """OpenBLAS starts a spinning thread per further core when numpy is imported; a daemon never
    multiplies matrices, so its entry point asks for none (on one core there would be none anyway)."""
    program = ("import os, runpy, sys\n"
               "sys.argv = ['daemons', '/nonexistent/worker.json']\n"
               "try:\n"
               "    runpy.run_module('daemons', run_name='__main__', alter_sys=True)\n"
               "except SystemExit:\n"
               "    pass\n"
               "assert 'numpy' in sys.modules\n"
               "print(len(os.listdir('/proc/self/task')))")
    environment = {name: value for name, value in os.environ.items() if name != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                          env=environment)
    assert done.returncode == 0, done.stderr
    assert "cannot read" in done.stderr  # the daemon got as far as its config
    assert done.stdout.strip() == "1"
