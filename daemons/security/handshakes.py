"""Failed TLS handshakes, each kind as one clear line in the daemon's event log.

Why this way: a connection whose handshake fails never reaches a handler, and gRPC's Python API
has no hook for it; gRPC's core writes it on the process's stderr, measured with grpcio 1.85
for a client presenting an expired certificate:

    I1130 17:59:48.765473 19228 ssl_transport_security.cc:2563] Handshake failed with error
    SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:
    certificate has expired

(one line). So a daemon with TLS sends its stderr through a pipe that a thread reads
(StderrTap): every line goes on unchanged to where stderr went before (supervisord's log), and a
handshake failure becomes a `tls_handshake_failed` event saying what it means (HandshakeReports):
the first of each kind at once, the repeats counted into the next line of that kind, at most one
every REPEAT_SECONDS, so a peer retrying all day with its expired certificate writes a line a
minute, and a stranger cannot flood the log.

The parsing and the pacing are pure; the pipe and the thread are StderrTap's.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

REPEAT_SECONDS = 60.0
HANDSHAKE_FAILED = re.compile(r"Handshake failed with error (?P<code>\w+): (?P<detail>.*)")
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
        self._next[failure.error] = now + self.repeat_seconds
        return self._repeats.pop(failure.error, 0)


class StderrTap:
    """Reads everything written to this process's stderr (fd 2: Python's and gRPC's core's alike),
    passes it on unchanged, and hands each line to `on_line`. `original` is the stderr it passes
    on to, for child processes, which must not write into a pipe that dies with this process."""

    def __init__(self, on_line: Callable[[str], None]):
        self._on_line = on_line
        self.original = os.dup(2)
        reading, writing = os.pipe()
        os.dup2(writing, 2)
        os.close(writing)
        self._reading = reading
        self._thread = threading.Thread(target=self._pass_on, name="stderr-tap", daemon=True)
        self._thread.start()

    def _pass_on(self) -> None:
        pending = b""
        while chunk := os.read(self._reading, 65536):
            with contextlib.suppress(OSError):
                os.write(self.original, chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                with contextlib.suppress(Exception):  # whatever a line holds, stderr keeps flowing
                    self._on_line(line.decode(errors="replace"))

    def close(self) -> None:
        """Puts stderr back and passes on what is left in the pipe."""
        os.dup2(self.original, 2)  # the pipe's last writer here: the reader sees its end
        self._thread.join(timeout=2)
        os.close(self._reading)
        os.close(self.original)
