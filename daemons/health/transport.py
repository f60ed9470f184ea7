"""The network as a health monitor sees it: one neighbour, four ways to ask it how it is.

`ProbeTransport` is the seam (as memberlist's `Transport`): the monitor decides what to send and
when, a transport only carries it. `GrpcProbeTransport` is the real one, over a health channel of
its own (apart from the query traffic, so probes never queue behind big scans) and UDP
datagrams; tests/unit/fakes.py has an in-memory one whose neighbour can die, hang or stall.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemons.channels import HEALTH_CHANNEL_OPTIONS, NODE_SERVICE
from daemons.config import Address
from daemons.errors import describe_error
from daemons.health.datagram import DatagramProber
from daemons.rpc import airquality_pb2 as pb


class ProbeFailed(Exception):
    """A probe or a watch that got no decisive answer; `reason` reads as a health reason."""

    def __init__(self, reason: str, unimplemented: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.unimplemented = unimplemented  # the neighbour has no such service: asking again soon is pointless


class ProbeTransport(Protocol):
    async def start(self, on_ping_reply: Callable[[pb.HealthResponse], None],
                    on_ping_refused: Callable[[str], None]) -> None:
        """Opens the connections; replies to pings and refusals arrive through the callbacks."""

    def ping(self, request: pb.HealthRequest) -> None:
        """Sends one datagram probe; its reply, if any, comes to `on_ping_reply`."""

    async def check(self, request: pb.HealthRequest, timeout: float) -> pb.HealthResponse:
        """One gRPC HealthCheck; raises ProbeFailed."""

    async def connection_lost(self) -> None:
        """Returns when an established connection to the neighbour breaks or is told GOAWAY."""

    def watch(self) -> AsyncGenerator[str, None]:
        """The neighbour's serving status ("SERVING", "NOT_SERVING", ...) as it changes, waiting for
        the neighbour to be reachable first; raises ProbeFailed when the stream fails."""

    async def close(self) -> None: ...


class GrpcProbeTransport:
    def __init__(self, address: Address):
        self.address = address
        self._channel: grpc.aio.Channel | None = None
        self._datagrams: DatagramProber | None = None

    async def start(self, on_ping_reply: Callable[[pb.HealthResponse], None],
                    on_ping_refused: Callable[[str], None]) -> None:
        # Created here, on the monitor's event loop, which an aio channel is bound to.
        self._channel = grpc.aio.insecure_channel(str(self.address), options=HEALTH_CHANNEL_OPTIONS)
        self._check = self._channel.unary_unary(f"/{NODE_SERVICE}/HealthCheck",
                                                request_serializer=pb.HealthRequest.SerializeToString,
                                                response_deserializer=pb.HealthResponse.FromString)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._datagrams = await DatagramProber.connect(self.address, on_ping_reply, on_ping_refused)

    def ping(self, request: pb.HealthRequest) -> None:
        assert self._datagrams is not None, "start() first"
        self._datagrams.send(request)

    async def check(self, request: pb.HealthRequest, timeout: float) -> pb.HealthResponse:
        try:
            answer: pb.HealthResponse = await self._check(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            raise ProbeFailed(describe_error(error)) from None
        return answer

    async def connection_lost(self) -> None:
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
            raise ProbeFailed(describe_error(error), error.code() is grpc.StatusCode.UNIMPLEMENTED) from None
        finally:
            call.cancel()  # an idle stream left open would only cost wakeups

    async def close(self) -> None:
        if self._datagrams is not None:
            self._datagrams.close()
        if self._channel is not None:
            await self._channel.close()
