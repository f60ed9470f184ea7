"""Failed TLS handshakes as event lines (security/handshakes.py): what gRPC's core writes, read
back into what it means, one line per kind a minute; and the client tools' --tls checked when the
command line is read."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemons.cli.query import main as query_main
from daemons.healthlog.cli import main as healthlog_main
from daemons.security.handshakes import HandshakeFailure, HandshakeReports

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


def test_the_tap_passes_stderr_on_and_reads_its_lines(tmp_path: Path) -> None:
    """In a process of its own: the tap takes over fd 2."""
    script = textwrap.dedent(f"""
        import os, sys
        from daemons.security.handshakes import StderrTap
        seen = []
        tap = StderrTap(seen.append)
        os.write(2, b"first line\\n{EXPIRED}\\n")
        print("from python", file=sys.stderr, flush=True)
        tap.close()
        print(repr(seen))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ, "PYTHONPATH": "."})
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"first line\n{EXPIRED}\nfrom python\n"
    assert ast.literal_eval(done.stdout) == ["first line", EXPIRED, "from python"]


@pytest.mark.parametrize("command", [[query_main, ["count"]], [healthlog_main, ["status"]], [healthlog_main, []]])
def test_the_client_tools_say_which_tls_file_is_missing_and_exit_2(tmp_path: Path, command) -> None:
    main, arguments = command
    (tmp_path / "ca.pem").write_text("a CA")
    result = CliRunner().invoke(main, [*arguments[:1], "--tls", str(tmp_path), *arguments[1:]])
    assert result.exit_code == 2, result.output
    assert f"cannot read {tmp_path / 'cert.pem'}" in result.output
