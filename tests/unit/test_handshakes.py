"""Failed TLS handshakes as event lines (security/handshakes.py): what gRPC's core writes, read
back into what it means, one line per kind a minute; and the client tools' --tls checked when the
command line is read."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemons import events
from daemons.cli.query import main as query_main
from daemons.events import EventRecorder
from daemons.healthlog.cli import main as healthlog_main
from daemons.security.handshakes import HandshakeFailure, HandshakeReports, pass_on

# As grpcio 1.85 wrote them (the first: a client with an expired certificate; the second: a
# plaintext client at a TLS port).
EXPIRED = ("I1130 17:59:48.765473   19228 ssl_transport_security.cc:2563] Handshake failed with error SSL_ERROR_SSL: "
           "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate has expired")
PLAINTEXT = ("I1130 18:01:02.000001   19228 ssl_transport_security.cc:2563] Handshake failed with error SSL_ERROR_SSL: "
             "error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER")


def test_a_handshake_failure_says_what_it_means() -> None:
    expired = HandshakeFailure.of_line(EXPIRED)
    assert expired is not None
    assert expired.error == "CERTIFICATE_VERIFY_FAILED: certificate has expired"
    assert "bin/gen-certs --rotate" in expired.meaning
    plaintext = HandshakeFailure.of_line(PLAINTEXT)
    assert plaintext is not None and "does not speak TLS" in plaintext.meaning
    assert HandshakeFailure.of_line("W1130 something else entirely") is None


def test_each_kind_is_one_line_a_minute_with_the_repeats_counted_into_the_next() -> None:
    reports = HandshakeReports(repeat_seconds=60)
    expired, plaintext = HandshakeFailure.of_line(EXPIRED), HandshakeFailure.of_line(PLAINTEXT)
    assert expired is not None and plaintext is not None
    assert reports.note(expired, 0.0) == 0
    assert [reports.note(expired, t) for t in (1.0, 2.0, 59.0)] == [None, None, None]
    assert reports.note(plaintext, 3.0) == 0  # another kind has a line of its own
    assert reports.note(expired, 60.0) == 3
    assert reports.note(expired, 121.0) == 0


def test_the_tap_passes_every_line_on_and_logs_each_kind_of_failure_once_a_minute() -> None:
    log = EventRecorder()
    lines = io.BytesIO(f"first line\n{EXPIRED}\n{EXPIRED}\n{PLAINTEXT}\nno newline".encode())
    written = io.BytesIO()
    pass_on(lines, log, written, clock=lambda: 0.0)
    assert written.getvalue() == lines.getvalue()
    assert [(e["error"], e["repeats"]) for e in log.of(events.TLS_HANDSHAKE_FAILED)] == [
        ("CERTIFICATE_VERIFY_FAILED: certificate has expired", 0), ("WRONG_VERSION_NUMBER", 0)]


def test_a_process_tap_outlives_the_writer_and_passes_its_last_lines_on(tmp_path: Path) -> None:
    """In a process of its own, as a daemon runs it: the tap takes over fd 2, and what is written
    just before the process ends still arrives, and is logged."""
    script = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from daemons.security.handshakes import StderrTap
        tap = StderrTap("gateway_a", Path({str(tmp_path / "gateway_a.log")!r}))
        print(tap.process.pid, flush=True)
        os.write(2, b"first line\\n{EXPIRED}\\n")
        os._exit(0)  # as a daemon killed: no close
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONPATH": "."})
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"first line\n{EXPIRED}\n"  # it waited: the pipe's other end is closed only when the tap ends
    [line] = [json.loads(text) for text in (tmp_path / "gateway_a.log").read_text().splitlines()]
    assert (line["event"], line["daemon"], line["repeats"]) == ("tls_handshake_failed", "gateway_a", 0)


@pytest.mark.parametrize("command", [[query_main, ["count"]], [healthlog_main, ["status"]], [healthlog_main, []]])
def test_the_client_tools_say_which_tls_file_is_missing_and_exit_2(tmp_path: Path, command) -> None:
    main, arguments = command
    (tmp_path / "ca.pem").write_text("a CA")
    result = CliRunner().invoke(main, [*arguments[:1], "--tls", str(tmp_path), *arguments[1:]])
    assert result.exit_code == 2, result.output
    assert f"cannot read {tmp_path / 'cert.pem'}" in result.output
