"""Failed TLS handshakes, each kind as one clear line in the daemon's event log.

Why this way: a connection whose handshake fails never reaches a handler, and gRPC's Python API
has no hook for it; gRPC's core writes it on the process's stderr, measured with grpcio 1.85
for a client presenting an expired certificate:

    I1130 17:59:48.765473 19228 ssl_transport_security.cc:2563] Handshake failed with error
    SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:
    certificate has expired

(one line). So a daemon with TLS sends its stderr through a pipe to a small process of its own
(StderrTap, `python -m daemons.security.handshakes`), which passes every line on unchanged to
where stderr went before (supervisord's log) and turns a handshake failure into a
`tls_handshake_failed` event saying what it means (HandshakeReports): the first of each kind at
once, the repeats counted into the next line of that kind, at most one every REPEAT_SECONDS, so
a peer retrying all day with its expired certificate writes a line a minute, and a stranger
cannot flood the log. A process, not a thread of the daemon's: gRPC's core writes from its own
threads, and a full pipe would block them until a thread of a busy daemon got the interpreter
lock to read it (strangers' failed handshakes could stall the threads that answer the watchers'
PINGs); and the reader must outlive the daemon, to pass on what it wrote as it died.

The parsing and the pacing are pure; the pipe and the process are StderrTap's.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from daemons import eventlog, events
from daemons.companions import start_companion
from daemons.events import EventLog

REPEAT_SECONDS = 60.0
MAX_KINDS = 64  # kinds of failure paced at once; OpenSSL has far fewer reasons than this
PIPE_BYTES = 1 << 20  # the pipe's room: thousands of lines, should the tap fall behind
HANDSHAKE_FAILED = re.compile(
    r"ssl_transport_security\.cc:\d+\] Handshake failed with error (?P<code>\w+): (?P<detail>.*)")
# What an OpenSSL reason means to an operator, by the words that end gRPC's line.
MEANINGS = (
    ("certificate has expired", "the peer's certificate has expired: issue new ones with bin/gen-certs --rotate"),
    ("certificate is not yet valid", "the peer's certificate is not valid yet: check the clocks of both hosts"),
    ("unable to get local issuer certificate", "the peer's certificate is not from this cluster's CA"),
    ("CERTIFICATE_VERIFY_FAILED", "the peer's certificate was not accepted"),
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "the peer presented no certificate (a client without one)"),
    ("WRONG_VERSION_NUMBER", "the peer does not speak TLS (a plaintext client or daemon)"),
)


@dataclass(frozen=True)
class HandshakeFailure:
    error: str  # OpenSSL's words, as gRPC's core logged them
    meaning: str  # what to do about it

    @classmethod
    def of_line(cls, line: str) -> HandshakeFailure | None:
        match = HANDSHAKE_FAILED.search(line)
        if match is None:
            return None
        detail = match["detail"].strip()
        error = detail.rsplit("OPENSSL_internal:", 1)[-1]
        meaning = next((meaning for words, meaning in MEANINGS if words.lower() in detail.lower()),
                       "the TLS handshake failed")
        return cls(error, meaning)


class HandshakeReports:
    """Which failures to log: each kind (its error) once per REPEAT_SECONDS, with the repeats since."""

    def __init__(self, repeat_seconds: float = REPEAT_SECONDS):
        self.repeat_seconds = repeat_seconds
        self._next: dict[str, float] = {}
        self._repeats: dict[str, int] = {}

    def note(self, failure: HandshakeFailure, now: float) -> int | None:
        """The repeats to report with this failure now, or None when it is only counted."""
        if now < self._next.get(failure.error, -math.inf):
            self._repeats[failure.error] = self._repeats.get(failure.error, 0) + 1
            return None
        if failure.error not in self._next and len(self._next) >= MAX_KINDS:
            oldest = min(self._next, key=self._next.__getitem__)  # its minute is long over, most likely
            del self._next[oldest]
            self._repeats.pop(oldest, None)
        self._next[failure.error] = now + self.repeat_seconds
        return self._repeats.pop(failure.error, 0)


class StderrTap:
    """Sends this process's stderr (fd 2: Python's and gRPC's core's alike) to a tap process, which
    passes it on and logs the handshake failures to `log_file` as `daemon`. `original` is where
    stderr went before, for child processes that must write there directly."""

    def __init__(self, daemon: str, log_file: Path):
        reading, writing = os.pipe()
        with contextlib.suppress(OSError):  # room for bursts, where the kernel allows it
            fcntl.fcntl(writing, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        # It passes on what the daemon writes as it ends, and ends itself when the pipe does.
        self.process = start_companion("daemons.security.handshakes", daemon, str(log_file), stdin=reading)
        os.close(reading)
        self.original = os.dup(2)
        os.dup2(writing, 2)
        os.close(writing)

    def close(self) -> None:
        """Puts stderr back; the tap passes on what is left in the pipe, and ends."""
        os.dup2(self.original, 2)
        os.close(self.original)


def pass_on(lines: BinaryIO, log: EventLog, out: BinaryIO, clock: Callable[[], float] = time.monotonic) -> None:
    """The tap process's life: every line to `out` (stderr), unchanged; the handshake failures,
    paced, to the event log."""
    reports = HandshakeReports()
    for line in lines:
        with contextlib.suppress(OSError):
            out.write(line)
            out.flush()
        failure = HandshakeFailure.of_line(line.decode(errors="replace"))
        if failure is None:
            continue
        repeats = reports.note(failure, clock())
        if repeats is not None:
            events.TLS_HANDSHAKE_FAILED.emit(log, error=failure.error, meaning=failure.meaning, repeats=repeats)


if __name__ == "__main__":
    _daemon, _log_file = sys.argv[1:]
    pass_on(sys.stdin.buffer, eventlog.configure(_daemon, Path(_log_file), echo=True), sys.stderr.buffer)
