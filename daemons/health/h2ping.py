"""HTTP/2 PINGs to a neighbour's gRPC port, on a connection of their own: the liveness witness's wire.

gRPC's core answers a PING frame itself, on its own threads and without the interpreter lock, so
the answer comes in milliseconds however busy the daemon's Python is, and never from a stopped
process (see liveness.py for the measurements). grpcio offers no call that sends one: its
keepalive pings go at most once a second, and only close the connection when unanswered. This
module speaks the few frames of HTTP/2 (RFC 9113) that a PING needs: the client preface with an
empty SETTINGS, SETTINGS ACK, PING and its ACK, and GOAWAY. It opens no stream, so the server
runs none of our code for it.

The server must let an idle connection ping: gRPC's default answers the third PING without data
in between with GOAWAY "too_many_pings", so daemons serve with SERVER_OPTIONS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass

from daemons.config import Address, TlsConfig

# For the daemons' gRPC servers: accept PINGs on idle connections however often they come (0: no
# limit on "ping strikes"). Without it the liveness connection is closed after three PINGs.
SERVER_OPTIONS: list[tuple[str, int]] = [("grpc.http2.max_ping_strikes", 0)]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, PING, GOAWAY = 0x4, 0x6, 0x7
ACK = 0x1
HEADER = struct.Struct(">I B B I")  # 24-bit length in the first 4 bytes' low 3, type, flags, stream id
MAX_FRAME = 16_384  # the protocol's default maximum frame size; nothing larger is expected without streams
# Pauses between connection attempts after a loss: the first attempt goes at once, then the pause
# doubles up to the longest, which bounds the cost of a neighbour that stays down.
RECONNECT_SECONDS = (0.02, 0.2)
# Refusals reported after a lost connection: those of the first attempts confirm a killed
# neighbour's death within milliseconds; later ones are not, since a neighbour that stays away
# is reported by its datagrams at their own pace (refusals every 0.2 s would be a storm of
# failed probes against a neighbour that has not started yet).
REFUSALS_REPORTED_AFTER_A_LOSS = 2


def frame(kind: int, flags: int, payload: bytes = b"") -> bytes:
    """One frame on stream 0 (the connection itself)."""
    header = HEADER.pack(len(payload), kind, flags, 0)[1:]  # drop the first byte: the length is 24 bits
    return header + payload


class PingProtocol(asyncio.Protocol):
    """One HTTP/2 connection that only pings. Answers to our PINGs go to `on_answer` (the stamp
    that was sent); the connection ending, for any reason, sets `closed`."""

    def __init__(self, on_answer: Callable[[int], None]):
        self._on_answer = on_answer
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(PREFACE + frame(SETTINGS, 0))

    def ping(self, stamp: int) -> bool:
        if self._transport is None or self._transport.is_closing():
            return False
        self._transport.write(frame(PING, 0, stamp.to_bytes(8, "big")))
        return True

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if length > MAX_FRAME:
                self.close()  # not a gRPC server, or not HTTP/2 at all
                return
            if len(self._buffer) < 9 + length:
                return
            kind, flags, payload = self._buffer[3], self._buffer[4], self._buffer[9:9 + length]
            self._buffer = self._buffer[9 + length:]
            self._frame(kind, flags, payload)

    def _frame(self, kind: int, flags: int, payload: bytes) -> None:
        assert self._transport is not None
        if kind == SETTINGS and not flags & ACK:
            self._transport.write(frame(SETTINGS, ACK))
        elif kind == PING and flags & ACK:
            self._on_answer(int.from_bytes(payload, "big"))
        elif kind == PING:
            self._transport.write(frame(PING, ACK, payload))  # the server's own keepalive
        elif kind == GOAWAY:
            self.close()  # a stopping server: the next connection will be refused or answered anew
        # Anything else (WINDOW_UPDATE, SETTINGS ACK) needs nothing from a connection without streams.

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def close(self) -> None:
        if self._transport is not None:
            # Aborted, not closed: nothing still unsent matters (PINGs), and closing a TLS transport
            # waits for the peer's close_notify, which a stopping gRPC server does not send; the
            # connection then held every daemon's stop for its whole shutdown grace (5 s, 2026-11-30).
            self._transport.abort()


@dataclass(frozen=True)
class LivenessTls:
    """How the PING connection speaks mutual TLS to the daemon `peer`: as gRPC's channels do, HTTP/2
    (by ALPN) inside TLS, checking the peer's certificate names its program."""

    context: ssl.SSLContext
    peer: str


def liveness_tls(tls: TlsConfig, peer: str) -> LivenessTls:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=tls.ca_pem.decode("ascii"))
    context.load_cert_chain(tls.cert_file, tls.key_file)
    context.set_alpn_protocols(["h2"])
    return LivenessTls(context, peer)


class PingConnection:
    """Keeps one PingProtocol connected to `address`, reconnecting after every loss; runs on the
    monitor's event loop. The first refused attempts after a loss go to `on_refused`; `lost()`
    waits for a loss."""

    def __init__(self, address: Address, on_answer: Callable[[int], None], on_refused: Callable[[str], None],
                 tls: LivenessTls | None = None):
        self.address = address
        self.tls = tls
        self._on_answer = on_answer
        self._on_refused = on_refused
        self._protocol: PingProtocol | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def lost(self) -> None:
        """Returns when an established connection is lost (at once if one was since the last call)."""
        await self._lost.wait()
        self._lost.clear()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._stay_connected())

    def ping(self, stamp: int) -> bool:
        """Sends a PING; False when there is no connection to send it on."""
        return self._protocol is not None and self._protocol.ping(stamp)

    async def _stay_connected(self) -> None:
        loop = asyncio.get_running_loop()
        pause = RECONNECT_SECONDS[0]
        to_report = 0  # refusals still to report: none before a first connection
        while True:
            try:
                _, protocol = await loop.create_connection(
                    lambda: PingProtocol(self._on_answer), self.address.host, self.address.port,
                    ssl=None if self.tls is None else self.tls.context,
                    server_hostname=None if self.tls is None else self.tls.peer)
            except OSError as error:
                if isinstance(error, ConnectionRefusedError) and to_report:
                    to_report -= 1
                    self._on_refused("HTTP/2 PING: connection refused")
                await asyncio.sleep(pause)
                pause = min(pause * 2, RECONNECT_SECONDS[1])
                continue
            self._protocol, pause = protocol, RECONNECT_SECONDS[0]
            try:
                await protocol.closed.wait()
            finally:
                self._protocol = None
                protocol.close()
                self._lost.set()
                to_report = REFUSALS_REPORTED_AFTER_A_LOSS

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
