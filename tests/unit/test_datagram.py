"""Health probes as datagrams, both halves over real UDP on the loopback interface, sealed with
a cluster key as the daemons run with TLS (what a seal accepts is test_seal.py's)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from daemons.config import Address
from daemons.health.datagram import DatagramProber, DatagramResponder
from daemons.health.seal import MAX_DATAGRAM, MISDIRECTED, OVERSIZED, REPLAYED, STALE, UNAUTHENTICATED, Kind, Seal
from daemons.rpc import airquality_pb2 as pb

WAIT_SECONDS = 5.0  # only ever reached when something is broken
GARBAGE = b"\xff" * 10  # not a protobuf message (DecodeError)
SEAL = Seal(b"cluster key of the test, 32 byte")
NEIGHBOR = "worker_c"


def free_udp_port() -> int:
    """A UDP port nothing listens on (the responder binds an Address, so port 0 will not do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def answer(request: pb.HealthRequest, sender_host: str | None) -> pb.HealthResponse:
    return pb.HealthResponse(healthy=True, status="SERVING", process_id=os.getpid(), role=f"asked from {sender_host}",
                             daemon=NEIGHBOR, request_timestamp=request.timestamp)


def health_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "health-datagrams"}


def now_us() -> int:
    return int(time.time() * 1e6)


def request(timestamp: int | None = None, target: str = NEIGHBOR) -> pb.HealthRequest:
    return pb.HealthRequest(requester_id="leader_b", timestamp=now_us() if timestamp is None else timestamp,
                            gasp_token=b"t" * 16, target=target)


@pytest.fixture
def responder() -> Iterator[DatagramResponder]:
    responder = DatagramResponder(Address("127.0.0.1", free_udp_port()), answer, SEAL, name=NEIGHBOR)
    responder.start()
    try:
        yield responder
    finally:
        responder.stop()


def ask(address: Address, *datagrams: bytes) -> pb.HealthResponse:
    """Sends the datagrams from one plain socket; returns the first answer that comes back."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(WAIT_SECONDS)
        for datagram in datagrams:
            sock.sendto(datagram, (address.host, address.port))
        data, _ = sock.recvfrom(MAX_DATAGRAM)
    return SEAL.open_response(Kind.REPLY, data)


class Heard:
    """What a DatagramProber hands back: replies, drops and ICMP errors, with a wait for each."""

    def __init__(self) -> None:
        self.replies: list[pb.HealthResponse] = []
        self.dropped: list[str] = []
        self.icmp_errors: list[str] = []
        self.changed = asyncio.Event()

    def _noting(self, into: list) -> Callable[[object], None]:
        def note(item: object) -> None:
            into.append(item)
            self.changed.set()
        return note

    @property
    def on_reply(self) -> Callable[[pb.HealthResponse], None]:
        return self._noting(self.replies)

    @property
    def on_dropped(self) -> Callable[[str], None]:
        return self._noting(self.dropped)

    @property
    def on_icmp_error(self) -> Callable[[str], None]:
        return self._noting(self.icmp_errors)

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), WAIT_SECONDS)


def test_a_probe_gets_the_responders_sealed_answer_with_its_timestamp_echoed(responder: DatagramResponder) -> None:
    async def probe() -> Heard:
        heard = Heard()
        prober = await DatagramProber.connect(NEIGHBOR, responder.address, SEAL, heard.on_reply, heard.on_dropped,
                                              heard.on_icmp_error)
        try:
            prober.send(request(timestamp=now_us()))
            await heard.until(lambda: bool(heard.replies))
        finally:
            prober.close()
        return heard

    heard = asyncio.run(probe())
    [reply] = heard.replies
    assert (reply.daemon, reply.role, reply.status, reply.process_id) == (NEIGHBOR, "asked from 127.0.0.1", "SERVING",
                                                                         os.getpid())
    assert heard.dropped == heard.icmp_errors == []


def test_a_listener_hears_sealed_gasps_from_anywhere_and_drops_the_rest() -> None:
    """Where a prober hears a neighbour's dying gasp, which comes from the neighbour's monitor
    process, not from the port it probes (a connected endpoint would drop it)."""
    async def listen() -> Heard:
        heard = Heard()
        listener, port = await DatagramProber.listen(NEIGHBOR, socket.AF_INET, SEAL, heard.on_reply, heard.on_dropped)
        gasp = pb.HealthResponse(status="ENDED", process_id=7, daemon=NEIGHBOR)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                for forged in (gasp.SerializeToString(), SEAL.seal(Kind.REPLY, gasp),
                               SEAL.seal(Kind.GASP, pb.HealthResponse(status="ENDED", daemon="worker_f")),
                               SEAL.seal(Kind.GASP, gasp)):
                    sender.sendto(forged, ("127.0.0.1", port))
            await heard.until(lambda: len(heard.replies) + len(heard.dropped) == 4)
        finally:
            listener.close()
        return heard

    heard = asyncio.run(listen())
    assert [(reply.status, reply.process_id) for reply in heard.replies] == [("ENDED", 7)]
    assert heard.dropped == [UNAUTHENTICATED, UNAUTHENTICATED, MISDIRECTED]


def test_the_responder_drops_and_counts_what_it_cannot_believe_and_answers_the_next(
        responder: DatagramResponder) -> None:
    fresh = request()
    reply = ask(responder.address,
                GARBAGE,
                fresh.SerializeToString(),  # unsealed
                Seal(b"another cluster's key, 32 bytes!").seal(Kind.REQUEST, fresh),
                SEAL.seal(Kind.REQUEST, fresh)[:-3],  # truncated
                SEAL.seal(Kind.REQUEST, fresh) + b"\0" * MAX_DATAGRAM,  # oversized
                SEAL.seal(Kind.REQUEST, request(target="worker_f")),  # recorded on its way to another daemon
                SEAL.seal(Kind.REQUEST, fresh))
    assert (reply.request_timestamp, reply.role) == (fresh.timestamp, "asked from 127.0.0.1")
    assert responder.dropped.snapshot() == {UNAUTHENTICATED: 4, OVERSIZED: 1, MISDIRECTED: 1}


def test_stale_and_replayed_probes_are_answered_but_register_nothing_and_are_counted(
        responder: DatagramResponder) -> None:
    """Their replies echo timestamps no prober awaits unless the probe is its own; dropping them
    would turn clock skew between hosts into a neighbour that never answers."""
    fresh = request()
    assert ask(responder.address, SEAL.seal(Kind.REQUEST, fresh)).role == "asked from 127.0.0.1"
    replayed = ask(responder.address, SEAL.seal(Kind.REQUEST, fresh))
    stale = ask(responder.address, SEAL.seal(Kind.REQUEST, request(timestamp=now_us() - 60_000_000)))
    assert replayed.role == stale.role == "asked from None"  # answered as if over gRPC: no gasp registered
    assert responder.dropped.snapshot() == {REPLAYED: 1, STALE: 1}


def test_the_prober_drops_and_counts_replies_it_cannot_believe() -> None:
    async def probe() -> Heard:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as neighbour:
            neighbour.bind(("127.0.0.1", 0))
            neighbour.setblocking(False)
            loop = asyncio.get_running_loop()
            heard = Heard()
            prober = await DatagramProber.connect(NEIGHBOR, Address("127.0.0.1", neighbour.getsockname()[1]), SEAL,
                                                  heard.on_reply, heard.on_dropped, heard.on_icmp_error)
            try:
                prober.send(request(timestamp=7))
                data, sender = await asyncio.wait_for(loop.sock_recvfrom(neighbour, 2048), WAIT_SECONDS)
                assert SEAL.open_request(data).timestamp == 7
                genuine = pb.HealthResponse(request_timestamp=7, daemon=NEIGHBOR)
                for datagram in (GARBAGE, genuine.SerializeToString(), data,  # the probe reflected back
                                 SEAL.seal(Kind.REPLY, pb.HealthResponse(request_timestamp=7, daemon="worker_f")),
                                 SEAL.seal(Kind.REPLY, genuine) + b"\0" * MAX_DATAGRAM,
                                 SEAL.seal(Kind.REPLY, genuine)):
                    neighbour.sendto(datagram, sender)
                await heard.until(lambda: bool(heard.replies))
            finally:
                prober.close()
            return heard

    heard = asyncio.run(probe())
    assert [reply.request_timestamp for reply in heard.replies] == [7]
    assert heard.dropped == [UNAUTHENTICATED, UNAUTHENTICATED, UNAUTHENTICATED, MISDIRECTED, OVERSIZED]


def test_a_probe_to_a_closed_port_reports_the_icmp_error() -> None:
    async def probe() -> list[str]:
        heard = Heard()
        prober = await DatagramProber.connect(NEIGHBOR, Address("127.0.0.1", free_udp_port()), SEAL, heard.on_reply,
                                              heard.on_dropped, heard.on_icmp_error)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        try:
            while not heard.icmp_errors:  # the ICMP error may only show on a later send
                assert loop.time() < deadline, "no ICMP error from a closed port"
                prober.send(request())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(heard.changed.wait(), 0.1)
        finally:
            prober.close()
        return heard.icmp_errors

    errors = asyncio.run(probe())
    assert errors and all("refused" in why.lower() for why in errors)


def test_a_held_port_is_logged_and_taken_once_it_is_free() -> None:
    address = Address("127.0.0.1", free_udp_port())
    held: list[str] = []
    bound = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((address.host, address.port))
        responder = DatagramResponder(address, answer, SEAL, name=NEIGHBOR, on_held=held.append, on_bound=bound.set)
        responder.start()  # does not raise: the daemon serves on without its datagrams
        try:
            assert held and "in use" in held[0].lower() and not responder.bound
            squatter.close()  # gone: the port is taken within a retry, and answered
            assert bound.wait(WAIT_SECONDS)
            assert responder.bound
            fresh = request()
            assert ask(address, SEAL.seal(Kind.REQUEST, fresh)).request_timestamp == fresh.timestamp
        finally:
            responder.stop()


def test_stop_ends_the_responders_thread_and_frees_its_port() -> None:
    before = health_threads()
    address = Address("127.0.0.1", free_udp_port())
    responder = DatagramResponder(address, answer, SEAL, name=NEIGHBOR)
    responder.start()
    try:
        [thread] = health_threads() - before
        assert thread.is_alive()
        fresh = request()
        assert ask(address, SEAL.seal(Kind.REQUEST, fresh)).request_timestamp == fresh.timestamp
    finally:
        responder.stop()
    assert not thread.is_alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((address.host, address.port))


def test_unsealed_the_bare_messages_are_answered_as_before() -> None:
    """The one-host system on loopback runs without a key: plaintext datagrams, no timestamps checked."""
    address = Address("127.0.0.1", free_udp_port())
    responder = DatagramResponder(address, answer)
    responder.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(WAIT_SECONDS)
            sock.sendto(GARBAGE, (address.host, address.port))
            sock.sendto(pb.HealthRequest(timestamp=42).SerializeToString(), (address.host, address.port))
            data, _ = sock.recvfrom(MAX_DATAGRAM)
        assert pb.HealthResponse.FromString(data).request_timestamp == 42
    finally:
        responder.stop()
