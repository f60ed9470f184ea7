"""A daemon's children as the fan-out sees them: a small protocol, and its gRPC implementation.

The fan-out only starts calls, iterates them and cancels them; `Child` is all it needs, so tests
stand a fake child in for the network (tests/unit/fakes.py), down to a whole overlay in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from daemons.channels import NODE_SERVICE, ReadStream, daemon_channel
from daemons.config import Address, TlsConfig
from daemons.errors import RpcStatus, describe_error
from daemons.rpc import airquality_pb2 as pb


class ScanCall(Protocol):
    """A Scan in flight: its responses as received (serialized, so they can be forwarded untouched);
    iterating raises when the call fails."""

    def __iter__(self) -> Iterator[bytes | pb.QueryResponse]: ...

    def cancel(self) -> bool: ...


class UnaryCall(RpcStatus, Protocol):
    """A unary call in flight (a gRPC future): `result()` raises when the call fails, and the call
    then says why through `code()` and `details()` (RpcStatus)."""

    def result(self, timeout: float | None = None) -> Any: ...

    def cancel(self) -> bool: ...

    def add_done_callback(self, callback: Callable[[Any], None]) -> None: ...


def answers(calls: Mapping[str, UnaryCall]) -> Iterator[tuple[str, Any, str]]:
    """(name, answer, "") for each call that answered, (name, None, why) for each that failed,
    waiting for each in turn: calls started together cost the slowest, not their sum."""
    for name, call in calls.items():
        try:
            yield name, call.result(), ""
        except Exception:  # the call itself says why
            yield name, None, describe_error(call)


class Child(Protocol):
    name: str

    def scan(self, request: pb.ScanRequest, timeout: float) -> ScanCall: ...

    def aggregate(self, request: pb.ScanRequest, timeout: float) -> UnaryCall: ...

    def health_status(self, request: pb.HealthStatusRequest, timeout: float) -> UnaryCall: ...

    def status(self, request: pb.StatusRequest, timeout: float) -> UnaryCall: ...

    def close(self) -> None: ...


class GrpcChild:
    """A child over gRPC; Scan responses stay serialized so they can be forwarded untouched."""

    def __init__(self, name: str, address: Address, tls: TlsConfig | None = None):
        self.name = name
        self._channel = daemon_channel(str(address), name, tls)
        self._scan = self._channel.unary_stream(f"/{NODE_SERVICE}/Scan",
                                                request_serializer=pb.ScanRequest.SerializeToString)
        self._aggregate = self._channel.unary_unary(f"/{NODE_SERVICE}/ScanAggregate",
                                                    request_serializer=pb.ScanRequest.SerializeToString,
                                                    response_deserializer=pb.AggregateResponse.FromString)
        self._health_status = self._channel.unary_unary(f"/{NODE_SERVICE}/GetHealthStatus",
                                                        request_serializer=pb.HealthStatusRequest.SerializeToString,
                                                        response_deserializer=pb.HealthStatusResponse.FromString)
        self._status = self._channel.unary_unary(f"/{NODE_SERVICE}/GetStatus",
                                                 request_serializer=pb.StatusRequest.SerializeToString,
                                                 response_deserializer=pb.StatusResponse.FromString)

    def scan(self, request: pb.ScanRequest, timeout: float) -> ScanCall:
        return ReadStream(self._scan(request, timeout=timeout))  # however its reader stops, nothing is left behind

    def aggregate(self, request: pb.ScanRequest, timeout: float) -> UnaryCall:
        call: UnaryCall = self._aggregate.future(request, timeout=timeout)
        return call

    def health_status(self, request: pb.HealthStatusRequest, timeout: float) -> UnaryCall:
        call: UnaryCall = self._health_status.future(request, timeout=timeout)
        return call

    def status(self, request: pb.StatusRequest, timeout: float) -> UnaryCall:
        call: UnaryCall = self._status.future(request, timeout=timeout)
        return call

    def close(self) -> None:
        self._channel.close()
