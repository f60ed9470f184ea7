"""Health probes as datagrams, both halves over real UDP on the loopback interface."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from daemons.config import Address
from daemons.health.datagram import DatagramProber, DatagramResponder
from daemons.rpc import airquality_pb2 as pb

WAIT_SECONDS = 5.0  # only ever reached when something is broken
GARBAGE = b"\xff" * 10  # not a protobuf message (DecodeError)


def free_udp_port() -> int:
    """A UDP port nothing listens on (the responder binds an Address, so port 0 will not do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def answer(request: pb.HealthRequest, sender_host: str) -> pb.HealthResponse:
    return pb.HealthResponse(healthy=True, status="SERVING", process_id=os.getpid(), role="worker",
                             daemon=f"worker_c (asked from {sender_host})", request_timestamp=request.timestamp)


def health_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "health-datagrams"}


@pytest.fixture
def responder() -> Iterator[DatagramResponder]:
    responder = DatagramResponder(Address("127.0.0.1", free_udp_port()), answer)
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
        data, _ = sock.recvfrom(2048)
    return pb.HealthResponse.FromString(data)


def test_a_probe_gets_the_responders_answer_with_its_timestamp_echoed(responder: DatagramResponder) -> None:
    async def probe() -> list[pb.HealthResponse]:
        replies: list[pb.HealthResponse] = []
        refusals: list[str] = []
        arrived = asyncio.Event()

        def on_reply(reply: pb.HealthResponse) -> None:
            replies.append(reply)
            arrived.set()

        prober = await DatagramProber.connect(responder.address, on_reply, refusals.append)
        try:
            prober.send(pb.HealthRequest(requester_id="leader_b", timestamp=1_600_000_123_456_789))
            await asyncio.wait_for(arrived.wait(), WAIT_SECONDS)
        finally:
            prober.close()
        assert refusals == []
        return replies

    [reply] = asyncio.run(probe())
    assert (reply.request_timestamp, reply.daemon, reply.status, reply.healthy, reply.process_id) == (
        1_600_000_123_456_789, "worker_c (asked from 127.0.0.1)", "SERVING", True, os.getpid())


def test_a_listener_hears_replies_sent_to_its_own_port_from_anywhere() -> None:
    """Where a prober hears a neighbour's dying gasp, which comes from the neighbour's monitor
    process, not from the port it probes (a connected endpoint would drop it)."""
    async def listen() -> list[pb.HealthResponse]:
        replies: list[pb.HealthResponse] = []
        arrived = asyncio.Event()

        def on_reply(reply: pb.HealthResponse) -> None:
            replies.append(reply)
            arrived.set()

        listener, port = await DatagramProber.listen(socket.AF_INET, on_reply)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.sendto(pb.HealthResponse(status="ENDED", process_id=7).SerializeToString(), ("127.0.0.1", port))
            await asyncio.wait_for(arrived.wait(), WAIT_SECONDS)
        finally:
            listener.close()
        return replies

    [reply] = asyncio.run(listen())
    assert (reply.status, reply.process_id) == ("ENDED", 7)


def test_undecodable_datagrams_are_dropped_and_the_responder_answers_the_next(responder: DatagramResponder) -> None:
    reply = ask(responder.address, GARBAGE, b"\x0a\xff", pb.HealthRequest(timestamp=42).SerializeToString())
    assert reply.request_timestamp == 42  # the first answer is the valid request's: garbage got none
    assert ask(responder.address, pb.HealthRequest(timestamp=43).SerializeToString()).request_timestamp == 43


def test_the_prober_drops_undecodable_replies() -> None:
    async def probe() -> list[int]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as neighbour:
            neighbour.bind(("127.0.0.1", 0))
            neighbour.setblocking(False)
            loop = asyncio.get_running_loop()
            replies: list[int] = []
            arrived = asyncio.Event()

            def on_reply(reply: pb.HealthResponse) -> None:
                replies.append(reply.request_timestamp)
                arrived.set()

            prober = await DatagramProber.connect(Address("127.0.0.1", neighbour.getsockname()[1]), on_reply,
                                                  lambda why: None)
            try:
                prober.send(pb.HealthRequest(timestamp=7))
                data, sender = await asyncio.wait_for(loop.sock_recvfrom(neighbour, 2048), WAIT_SECONDS)
                assert pb.HealthRequest.FromString(data).timestamp == 7
                neighbour.sendto(GARBAGE, sender)
                neighbour.sendto(pb.HealthResponse(request_timestamp=7).SerializeToString(), sender)
                await asyncio.wait_for(arrived.wait(), WAIT_SECONDS)
            finally:
                prober.close()
            return replies

    assert asyncio.run(probe()) == [7]


def test_a_probe_to_a_closed_port_is_reported_as_refused() -> None:
    async def probe() -> list[str]:
        refusals: list[str] = []
        refused = asyncio.Event()

        def on_refused(why: str) -> None:
            refusals.append(why)
            refused.set()

        prober = await DatagramProber.connect(Address("127.0.0.1", free_udp_port()), lambda reply: None, on_refused)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_SECONDS
        try:
            while not refused.is_set():  # the ICMP error may only show on a later send
                assert loop.time() < deadline, "no refusal from a closed port"
                prober.send(pb.HealthRequest(timestamp=1))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(refused.wait(), 0.1)
        finally:
            prober.close()
        return refusals

    refusals = asyncio.run(probe())
    assert refusals and all("refused" in why.lower() for why in refusals)


def test_stop_ends_the_responders_thread_and_frees_its_port() -> None:
    before = health_threads()
    address = Address("127.0.0.1", free_udp_port())
    responder = DatagramResponder(address, answer)
    responder.start()
    try:
        [thread] = health_threads() - before
        assert thread.is_alive()
        assert ask(address, pb.HealthRequest(timestamp=5).SerializeToString()).request_timestamp == 5
    finally:
        responder.stop()
    assert not thread.is_alive()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((address.host, address.port))
