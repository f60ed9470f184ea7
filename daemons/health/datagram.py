"""HealthCheck over UDP: the contract's HealthRequest and HealthResponse, one datagram each way.

A unary gRPC call costs a Python daemon about 2.5 ms of CPU on each side at idle (dozens of
thread handoffs); a datagram costs a few tens of microseconds. Frequent probes therefore travel
as datagrams, to the same port number as the daemon's gRPC server, and gRPC HealthCheck is kept
for confirming a suspicion, where it proves the request path itself works (as memberlist pairs
cheap UDP probes with TCP checks). A hung daemon answers neither; a busy one answers both late,
as its Python waits for the interpreter lock (liveness.py tells the two apart).

Both halves live here: DatagramResponder answers on threads of its own, DatagramProber sends
a monitor's probes and hands back the replies on the monitor's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable
from typing import cast

from google.protobuf.message import DecodeError

from daemons.config import Address
from daemons.rpc import airquality_pb2 as pb

MAX_DATAGRAM = 2048


def bind_datagram_sockets(address: Address) -> list[socket.socket]:
    """UDP sockets on every address the gRPC server listens on (both families for "localhost")."""
    sockets = []
    try:
        for family, kind, proto, _, where in socket.getaddrinfo(address.host, address.port, type=socket.SOCK_DGRAM):
            sock = socket.socket(family, kind, proto)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sockets.append(sock)
            sock.bind(where)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class DatagramResponder:
    """Answers HealthRequest datagrams, one thread per socket; undecodable datagrams are dropped.

    Each thread sleeps in recvfrom, which holds no lock, so a request waits for the interpreter
    lock once, when it arrives, before its answer is sent. Waiting in a selector instead cost a
    second and a third wait (after select, after recvfrom), each as long as the queue of threads
    ahead for the lock: p99 1.1 s on a leader under 200 concurrent full scans (2026-11-30).
    """

    def __init__(self, address: Address, answer: Callable[[pb.HealthRequest, str], pb.HealthResponse]):
        self.address = address
        self.answer = answer
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> None:
        """Binds (raising OSError when the UDP port is taken) and starts answering."""
        self._sockets = bind_datagram_sockets(self.address)
        self._threads = [threading.Thread(target=self._serve, args=(sock,), name="health-datagrams", daemon=True)
                         for sock in self._sockets]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping = True
        for sock in self._sockets:
            # Wakes the thread blocked in recvfrom (Linux does so even for an unconnected socket,
            # though it reports ENOTCONN).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in self._sockets:
            sock.close()

    def _serve(self, sock: socket.socket) -> None:
        while not self._stopping:
            self._reply(sock)

    def _reply(self, sock: socket.socket) -> None:
        try:
            data, sender = sock.recvfrom(MAX_DATAGRAM)
            if sender is None:  # shut down (stop)
                return
            request = pb.HealthRequest.FromString(data)
        except (OSError, DecodeError):
            return
        with contextlib.suppress(OSError):  # the prober is gone; it will see a timeout or nothing at all
            sock.sendto(self.answer(request, sender[0]).SerializeToString(), sender)


class DatagramProber(asyncio.DatagramProtocol):
    """The probing half: sends HealthRequests to one neighbour and reports what comes back.

    Undecodable replies are dropped. An ICMP error (the port is closed: the daemon is gone) is
    reported as a refusal, which no outstanding probe can outlive.
    """

    def __init__(self, on_reply: Callable[[pb.HealthResponse], None], on_refused: Callable[[str], None]):
        self._on_reply = on_reply
        self._on_refused = on_refused
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def connect(cls, address: Address, on_reply: Callable[[pb.HealthResponse], None],
                      on_refused: Callable[[str], None]) -> DatagramProber:
        loop = asyncio.get_running_loop()
        _, prober = await loop.create_datagram_endpoint(lambda: cls(on_reply, on_refused),
                                                        remote_addr=(address.host, address.port))
        return prober

    @classmethod
    async def listen(cls, family: int, on_reply: Callable[[pb.HealthResponse], None]) -> tuple[DatagramProber, int]:
        """An unconnected endpoint on a port of its own, for replies that do not come from the
        neighbour's port (its dying gasp, gasp.py); returns it and its port."""
        loop = asyncio.get_running_loop()
        wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
        transport, listener = await loop.create_datagram_endpoint(lambda: cls(on_reply, lambda why: None),
                                                                  local_addr=(wildcard, 0), family=family)
        return listener, transport.get_extra_info("sockname")[1]

    @property
    def family(self) -> int:
        assert self._transport is not None, "connected first"
        family: int = self._transport.get_extra_info("socket").family
        return family

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport (asyncio's selector transport is not a subclass of
        # DatagramTransport, though it implements it).
        self._transport = cast(asyncio.DatagramTransport, transport)

    def send(self, request: pb.HealthRequest) -> None:
        if self._transport is not None:
            self._transport.sendto(request.SerializeToString())

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            answer = pb.HealthResponse.FromString(data)
        except DecodeError:
            return
        self._on_reply(answer)

    def error_received(self, exc: Exception) -> None:
        self._on_refused(f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
