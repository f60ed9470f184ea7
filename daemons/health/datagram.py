"""HealthCheck over UDP: the contract's HealthRequest and HealthResponse, one datagram each way.

A unary gRPC call costs a Python daemon about 2.5 ms of CPU on each side at idle (dozens of
thread handoffs); a datagram costs a few tens of microseconds. Frequent probes therefore travel
as datagrams, to the same port number as the daemon's gRPC server, and gRPC HealthCheck is kept
for confirming a suspicion, where it proves the request path itself works (as memberlist pairs
cheap UDP probes with TCP checks). A hung daemon answers neither; a busy one answers both late,
as its Python waits for the interpreter lock (liveness.py tells the two apart).

Both halves live here: DatagramResponder answers on threads of its own, DatagramProber sends
a monitor's probes and hands back the replies on the monitor's event loop. With a cluster key,
every datagram is sealed and checked (seal.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import time
from collections.abc import Callable
from typing import cast

from daemons.config import Address
from daemons.health.seal import MAX_DATAGRAM, MISDIRECTED, UNSEALED, DropCounts, Dropped, Kind, RequestFreshness, Seal
from daemons.rpc import airquality_pb2 as pb

PORT_RETRY_SECONDS = 1.0  # how often a held UDP port is tried again


def bind_datagram_sockets(address: Address) -> list[socket.socket]:
    """UDP sockets on every address the gRPC server listens on (both families for "localhost", or
    the one this host has: gRPC's server too listens where it can). Raises the first OSError when
    none could be bound, and at once when the port is in use."""
    sockets: list[socket.socket] = []
    unusable: list[OSError] = []
    try:
        for family, kind, proto, _, where in socket.getaddrinfo(address.host, address.port, type=socket.SOCK_DGRAM):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as error:  # a family this host does not have (IPv6 disabled)
                unusable.append(error)
                continue
            sockets.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(where)
            except OSError as error:
                if error.errno != errno.EADDRNOTAVAIL:
                    raise
                unusable.append(error)
                sockets.remove(sock)
                sock.close()
        if not sockets:
            raise unusable[0] if unusable else OSError(errno.EADDRNOTAVAIL, f"no address for {address}")
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class DatagramResponder:
    """Answers HealthRequest datagrams, one thread per socket; datagrams that fail their seal
    (seal.py) are dropped and counted.

    Each thread sleeps in recvfrom, which holds no lock, so a request waits for the interpreter
    lock once, when it arrives, before its answer is sent. Waiting in a selector instead cost a
    second and a third wait (after select, after recvfrom), each as long as the queue of threads
    ahead for the lock: p99 1.1 s on a leader under 200 concurrent full scans (2026-11-30).

    A port another process holds does not stop the daemon: its gRPC server serves on, the
    conflict is logged (`on_held`), and the port is tried again every PORT_RETRY_SECONDS until it
    is free (`on_bound`). Meanwhile its watchers' datagrams reach the other process, whose
    answers they drop: they see the daemon by its HealthChecks and HTTP/2 PINGs only.
    """

    def __init__(self, address: Address, answer: Callable[[pb.HealthRequest, str | None], pb.HealthResponse],
                 seal: Seal = UNSEALED, window_seconds: float = 30.0, name: str = "",
                 on_held: Callable[[str], None] = lambda error: None, on_bound: Callable[[], None] = lambda: None,
                 wall: Callable[[], float] = time.time):
        self.address = address
        self.answer = answer
        self.seal = seal
        self.name = name  # the daemon's: a sealed probe must name it
        # Timestamps are checked only when sealed: unsealed, anyone may write any of them anyway.
        self._freshness = RequestFreshness(window_seconds) if seal.key is not None else None
        self._freshness_lock = threading.Lock()
        self.dropped = DropCounts()
        self._on_held = on_held
        self._on_bound = on_bound
        self._wall = wall
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _sockets and _threads against stop() during a retry

    def start(self) -> None:
        """Binds and starts answering; when the port is held, says so and keeps trying. Raises
        OSError for any other reason it cannot bind (an address not of this host)."""
        try:
            self._bind()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            self._on_held(error.strerror or str(error))
            thread = threading.Thread(target=self._retry, name="health-datagram-port", daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _bind(self) -> None:
        sockets = bind_datagram_sockets(self.address)
        threads = [threading.Thread(target=self._serve, args=(sock,), name="health-datagrams", daemon=True)
                   for sock in sockets]
        with self._lock:  # started under it: stop() joins only threads that have started
            if self._stop.is_set():
                for sock in sockets:
                    sock.close()
                return
            self._sockets += sockets
            self._threads += threads
            for thread in threads:
                thread.start()

    def _retry(self) -> None:
        while not self._stop.wait(PORT_RETRY_SECONDS):
            try:
                self._bind()
            except OSError:
                continue
            if not self._stop.is_set():
                self._on_bound()
            return

    @property
    def bound(self) -> bool:
        with self._lock:
            return bool(self._sockets)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            # Wakes the thread blocked in recvfrom (Linux does so even for an unconnected socket,
            # though it reports ENOTCONN).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout=2)
        for sock in sockets:
            sock.close()

    def _serve(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            self._reply(sock)

    def _reply(self, sock: socket.socket) -> None:
        try:
            data, sender = sock.recvfrom(MAX_DATAGRAM + 1)  # one byte more: to tell an oversized one
        except OSError:
            return
        if sender is None:  # shut down (stop)
            return
        try:
            request = self.seal.open_request(data)
            if self.seal.key is not None and request.target != self.name:
                raise Dropped(MISDIRECTED)  # recorded on its way to another daemon
        except Dropped as dropped:
            self.dropped.add(dropped.reason)
            return
        # A stale or replayed probe is still answered: its reply echoes a timestamp no prober awaits
        # unless the probe is its own (pings.py), so answering costs nothing, while dropping it would
        # turn clock skew between hosts, or one reordered pair, into a neighbour that never answers.
        # What it may not do is register anything: as if it came over gRPC, without a sender.
        fresh = self._fresh(request)
        with contextlib.suppress(OSError):  # the prober is gone; it will see a timeout or nothing at all
            sock.sendto(self.seal.seal(Kind.REPLY, self.answer(request, sender[0] if fresh else None)), sender)

    def _fresh(self, request: pb.HealthRequest) -> bool:
        if self._freshness is None:
            return True
        try:
            with self._freshness_lock:
                self._freshness.admit(request, int(self._wall() * 1e6))
        except Dropped as dropped:
            self.dropped.add(dropped.reason)
            return False
        return True


class DatagramProber(asyncio.DatagramProtocol):
    """The probing half: sends HealthRequests to one neighbour and reports what comes back.

    Replies that fail their seal, or that come from another daemon than `neighbor`, are dropped
    and counted (`on_dropped`). An ICMP error is only reported (`on_icmp_error`): anyone can send
    one, so it is a reason to ask the neighbour over an authenticated path, never an answer.
    """

    def __init__(self, neighbor: str, kind: Kind, seal: Seal, on_reply: Callable[[pb.HealthResponse], None],
                 on_dropped: Callable[[str], None], on_icmp_error: Callable[[str], None]):
        self.neighbor = neighbor
        self.kind = kind  # what this socket hears: replies from the neighbour's port, or its gasp
        self.seal = seal
        self._on_reply = on_reply
        self._on_dropped = on_dropped
        self._on_icmp_error = on_icmp_error
        self._transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def connect(cls, neighbor: str, address: Address, seal: Seal,
                      on_reply: Callable[[pb.HealthResponse], None], on_dropped: Callable[[str], None],
                      on_icmp_error: Callable[[str], None]) -> DatagramProber:
        loop = asyncio.get_running_loop()
        _, prober = await loop.create_datagram_endpoint(
            lambda: cls(neighbor, Kind.REPLY, seal, on_reply, on_dropped, on_icmp_error),
            remote_addr=(address.host, address.port))
        return prober

    @classmethod
    async def listen(cls, neighbor: str, family: int, seal: Seal, on_reply: Callable[[pb.HealthResponse], None],
                     on_dropped: Callable[[str], None]) -> tuple[DatagramProber, int]:
        """An unconnected endpoint on a port of its own, for the neighbour's dying gasp, which does
        not come from the port probed (gasp.py); returns it and its port."""
        loop = asyncio.get_running_loop()
        wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
        transport, listener = await loop.create_datagram_endpoint(
            lambda: cls(neighbor, Kind.GASP, seal, on_reply, on_dropped, lambda error: None),
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
            self._transport.sendto(self.seal.seal(Kind.REQUEST, request))

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            answer = self.seal.open_response(self.kind, data)
            if answer.daemon != self.neighbor:
                raise Dropped(MISDIRECTED)
        except Dropped as dropped:
            self._on_dropped(dropped.reason)
            return
        self._on_reply(answer)

    def error_received(self, exc: Exception) -> None:
        self._on_icmp_error(f"{exc.strerror or exc}" if isinstance(exc, OSError) else str(exc))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
