"""The network as a health monitor sees it: one neighbour, five ways to ask it how it is.

`ProbeTransport` is the seam (as memberlist's `Transport`): the monitor decides what to send and
when, a transport only carries it. `GrpcProbeTransport` is the real one, over a health channel of
its own (apart from the query traffic, so probes never queue behind big scans), UDP datagrams and
HTTP/2 PINGs (h2ping.py); tests/unit/fakes.py has an in-memory one whose neighbour can die, hang,
stall or be busy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemons.channels import HEALTH_CHANNEL_OPTIONS, NODE_SERVICE, daemon_aio_channel
from daemons.config import Address, TlsConfig
from daemons.errors import describe_error
from daemons.health.datagram import DatagramProber
from daemons.health.h2ping import PingConnection, liveness_tls
from daemons.health.seal import datagram_seal
from daemons.rpc import airquality_pb2 as pb


class ProbeFailed(Exception):
    """A probe or a watch that got no decisive answer; `reason` reads as a health reason."""

    def __init__(self, reason: str, unimplemented: bool = False, *, timed_out: bool = False,
                 overloaded: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unimplemented = unimplemented  # the neighbour has no such service: asking again soon is pointless
        # No answer within the deadline: hung, or only waiting for its interpreter (liveness.py decides).
        self.timed_out = timed_out
        # The neighbour answered that it is too busy to take the call: it runs, so this is no failure.
        self.overloaded = overloaded

    @classmethod
    def of_rpc_error(cls, error: grpc.aio.AioRpcError) -> ProbeFailed:
        code = error.code()
        return cls(describe_error(error), code is grpc.StatusCode.UNIMPLEMENTED,
                   timed_out=code is grpc.StatusCode.DEADLINE_EXCEEDED,
                   overloaded=code is grpc.StatusCode.RESOURCE_EXHAUSTED)


class ProbeListener(Protocol):
    """Where a transport delivers what comes back from the neighbour (pings.py's PingRounds)."""

    def reply(self, answer: pb.HealthResponse) -> None:
        """A datagram reply, or a dying gasp, whose seal is good and which names the neighbour."""

    def drop(self, reason: str) -> None:
        """A datagram that came for this prober and is not believed (seal.py names the reasons)."""

    def icmp_error(self, reason: str) -> None:
        """An ICMP error for a datagram probe ("Connection refused"): a hint, anyone can send one."""

    def refused(self, reason: str) -> None:
        """The neighbour's port refused a connection (a health reason: "ping: Connection refused")."""

    def witness_answered(self, stamp: int) -> None:
        """The neighbour's process answered a liveness PING."""


class ProbeTransport(Protocol):
    async def start(self, listener: ProbeListener) -> None:
        """Opens the connections; what comes back goes to `listener`."""

    def ping(self, request: pb.HealthRequest) -> None:
        """Sends one datagram probe, adding where the neighbour's dying gasp reaches this transport;
        its reply, if any, and the gasp come to the listener's `reply`."""

    def liveness_ping(self, stamp: int) -> bool:
        """Sends one PING that the neighbour's process answers without its interpreter (h2ping.py);
        its answer, if any, comes to the listener's `witness_answered`. False when it could not be
        sent (no connection: nothing will answer it)."""

    async def check(self, request: pb.HealthRequest, timeout: float) -> pb.HealthResponse:
        """One gRPC HealthCheck; raises ProbeFailed."""

    async def connection_lost(self) -> None:
        """Returns when an established connection to the neighbour (the health channel's, or the
        liveness PINGs') breaks or is told GOAWAY."""

    def watch(self) -> AsyncGenerator[str, None]:
        """The neighbour's serving status ("SERVING", "NOT_SERVING", ...) as it changes, waiting for
        the neighbour to be reachable first; raises ProbeFailed when the stream fails."""

    async def close(self) -> None: ...


class GrpcProbeTransport:
    def __init__(self, neighbor: str, address: Address, tls: TlsConfig | None = None):
        self.neighbor = neighbor
        self.address = address
        self.tls = tls  # mutual TLS on the health channel and the PING connection; None: plaintext
        self.seal = datagram_seal(tls)  # the datagrams' (seal.py)
        self._channel: grpc.aio.Channel | None = None
        self._datagrams: DatagramProber | None = None
        self._gasps: DatagramProber | None = None
        self._gasp_port = 0
        self._liveness: PingConnection | None = None

    async def start(self, listener: ProbeListener) -> None:
        # Created here, on the monitor's event loop, which an aio channel is bound to.
        self._channel = daemon_aio_channel(str(self.address), self.neighbor, self.tls, HEALTH_CHANNEL_OPTIONS)
        self._check = self._channel.unary_unary(f"/{NODE_SERVICE}/HealthCheck",
                                                request_serializer=pb.HealthRequest.SerializeToString,
                                                response_deserializer=pb.HealthResponse.FromString)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._datagrams = await DatagramProber.connect(self.neighbor, self.address, self.seal, listener.reply,
                                                       listener.drop, listener.icmp_error)
        # A dying gasp comes from the neighbour's monitor process, not from the port probed.
        self._gasps, self._gasp_port = await DatagramProber.listen(self.neighbor, self._datagrams.family, self.seal,
                                                                   listener.reply, listener.drop)
        self._liveness = PingConnection(self.address, listener.witness_answered, listener.refused,
                                        None if self.tls is None else liveness_tls(self.tls, self.neighbor))
        self._liveness.start()

    def ping(self, request: pb.HealthRequest) -> None:
        assert self._datagrams is not None, "start() first"
        request.gasp_port = self._gasp_port  # where this transport hears the neighbour's dying gasp
        request.target = self.neighbor
        self._datagrams.send(request)

    def liveness_ping(self, stamp: int) -> bool:
        assert self._liveness is not None, "start() first"
        return self._liveness.ping(stamp)

    async def check(self, request: pb.HealthRequest, timeout: float) -> pb.HealthResponse:
        try:
            answer: pb.HealthResponse = await self._check(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise ProbeFailed.of_rpc_error(error) from None
        return answer

    async def connection_lost(self) -> None:
        assert self._liveness is not None, "start() first"
        # The liveness connection is a plain socket on the monitor's own loop, so its loss is seen
        # one loop turn after the kernel reports it; the channel's goes through gRPC's threads.
        either = [asyncio.ensure_future(self._channel_lost()), asyncio.ensure_future(self._liveness.lost())]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in either:
                waiter.cancel()

    async def _channel_lost(self) -> None:
        assert self._channel is not None, "start() first"
        state = self._channel.get_state(try_to_connect=True)
        while True:
            await self._channel.wait_for_state_change(state)
            previous, state = state, self._channel.get_state(try_to_connect=True)
            if previous is grpc.ChannelConnectivity.READY:
                return

    async def watch(self) -> AsyncGenerator[str, None]:
        call = self._health.Watch(health_pb2.HealthCheckRequest(service=""), wait_for_ready=True)
        try:
            async for update in call:
                yield health_pb2.HealthCheckResponse.ServingStatus.Name(update.status)
        except grpc.aio.AioRpcError as error:
            raise ProbeFailed.of_rpc_error(error) from None
        finally:
            call.cancel()  # an idle stream left open would only cost wakeups

    async def close(self) -> None:
        if self._liveness is not None:
            await self._liveness.close()
        for endpoint in (self._datagrams, self._gasps):
            if endpoint is not None:
                endpoint.close()
        if self._channel is not None:
            await self._channel.close()
