"""The internal Node service every daemon runs: scan what it holds, fan out the rest, merge.

A request carries routes: for each partition, the path from this daemon down to the daemon that
scans it. A daemon scans the partitions routed to itself, forwards the others to the next hop,
and streams everything back as it arrives; child chunks are forwarded as the bytes received.
Every routed partition ends in exactly one PartitionStatus, complete or saying why not, so an
answer that lost a partition can never look complete.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import grpc
import numpy as np

from daemons import events
from daemons.query.aggregate import AggregateTable
from daemons.config import DaemonConfig
from daemons.fanout.merge import FairMerge, SourceEnded
from daemons.storage.partition import Partition
from daemons.query.filter import Filter, InvalidQuery, parse_chunk_size, parse_filter, parse_group_by, parse_request_id
from daemons.rpc import airquality_pb2 as pb
from daemons.query.wire import encode_rows

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # The default reconnect backoff (1 s growing to 120 s) would hide a restarted child for minutes.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
NODE_SERVICE = "airquality.v1.Node"


class ChildLink:
    """Calls to one child; Scan responses stay serialized so they can be forwarded untouched."""

    def __init__(self, name: str, address: str):
        self.name = name
        self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.scan = self.channel.unary_stream(f"/{NODE_SERVICE}/Scan", request_serializer=pb.ScanRequest.SerializeToString)
        self.aggregate = self.channel.unary_unary(f"/{NODE_SERVICE}/ScanAggregate",
                                                  request_serializer=pb.ScanRequest.SerializeToString,
                                                  response_deserializer=pb.AggregateResponse.FromString)
        self.health_status = self.channel.unary_unary(f"/{NODE_SERVICE}/GetHealthStatus",
                                                      request_serializer=pb.HealthStatusRequest.SerializeToString,
                                                      response_deserializer=pb.HealthStatusResponse.FromString)

    def close(self) -> None:
        self.channel.close()


def describe_error(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError) and isinstance(error, grpc.Call):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"


@dataclass
class Progress:
    """The fate of each partition routed in one request."""

    expected: tuple[str, ...]
    statuses: dict[str, pb.PartitionStatus] = field(default_factory=dict)

    def record(self, statuses: Iterable[pb.PartitionStatus]) -> None:
        for status in statuses:
            if status.partition in self.expected and status.partition not in self.statuses:
                self.statuses[status.partition] = status

    def fail(self, partitions: Iterable[str], error: str) -> list[pb.PartitionStatus]:
        """Marks the given partitions that have no status yet as failed; returns the new statuses."""
        failed = [pb.PartitionStatus(partition=p, complete=False, error=error)
                  for p in partitions if p not in self.statuses]
        self.record(failed)
        return failed

    @property
    def missing(self) -> list[str]:
        return [p for p in self.expected if not (p in self.statuses and self.statuses[p].complete)]

    def all_statuses(self) -> list[pb.PartitionStatus]:
        return [self.statuses.get(p) or pb.PartitionStatus(partition=p, error="no answer") for p in self.expected]


@dataclass
class RouteSplit:
    local: list[str]
    by_child: dict[str, list[pb.PartitionRoute]]  # routes with this daemon removed from the path
    unroutable: dict[str, str]  # partition -> why


def split_routes(config: DaemonConfig, held: dict[str, Partition], routes: Iterable[pb.PartitionRoute]) -> RouteSplit:
    split = RouteSplit([], {}, {})
    children = {link.name for link in config.children}
    for route in routes:
        path = list(route.path)
        if not path or path[0] != config.name:
            split.unroutable[route.partition] = f"misrouted: path {path} does not start at {config.name}"
        elif len(path) == 1:
            if route.partition in held:
                split.local.append(route.partition)
            else:
                split.unroutable[route.partition] = f"{config.name} does not hold partition {route.partition}"
        elif path[1] not in children:
            split.unroutable[route.partition] = f"{config.name} has no link to {path[1]}"
        else:
            split.by_child.setdefault(path[1], []).append(pb.PartitionRoute(partition=route.partition, path=path[1:], skip_rows=route.skip_rows))
    return split


def _rechunk(blocks: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    pending: list[np.ndarray] = []
    pending_rows = 0
    for block in blocks:
        while len(block):
            take = block[: size - pending_rows]
            pending.append(take)
            pending_rows += len(take)
            block = block[len(take):]
            if pending_rows == size:
                yield np.concatenate(pending)
                pending, pending_rows = [], 0
    if pending_rows:
        yield np.concatenate(pending)


def scan_partition(partition: Partition, query: Filter, chunk_size: int, daemon: str,
                   skip: int = 0) -> Iterator[pb.QueryResponse]:
    """The partition's matching rows in partition order after the first `skip`, then its status.

    The order is the same on every daemon holding the partition (day, file, line), which is what
    lets a replica take over a stream at the row where a failed copy stopped.
    """
    offset = skip
    for indices in _rechunk(query.matcher(partition).selected(skip), chunk_size):
        response = pb.QueryResponse(partition=partition.name, partition_offset=offset)
        encode_rows(partition, indices, response.columns)
        offset += len(indices)
        yield response
    yield pb.QueryResponse(partitions=[pb.PartitionStatus(partition=partition.name, complete=True,
                                                          rows=offset - skip, served_by=daemon)])


def remaining_seconds(deadline: float | None, cap: float) -> float:
    return cap if deadline is None else max(0.0, min(cap, deadline - time.monotonic()))


class _ScanSource(NamedTuple):
    child: str  # "" for a scan of a partition held here
    call: Any  # the child call, None for a local scan
    unreported: set[str]  # partitions routed to it that have no status yet


class ScanSession:
    """One request's scan at this daemon: local scans and child calls feeding one FairMerge.

    Iterating yields (payload to forward, parsed message). Every routed partition ends in one
    status from whoever scanned it, or in a failure status made here when its source stops
    without one. Routes can be added while the session runs: the gateway's failovers.
    """

    def __init__(self, fanout: "Fanout", request: pb.ScanRequest, query: Filter, deadline: float | None,
                 merge: FairMerge):
        self.fanout = fanout
        self.request = request
        self.query = query
        self.deadline = deadline
        self.merge = merge
        self._sources: dict[str, _ScanSource] = {}
        self._failures: list[pb.PartitionStatus] = []  # made here, not yet yielded
        self._calls = itertools.count()

    def route(self, routes: Iterable[pb.PartitionRoute]) -> None:
        fanout, request = self.fanout, self.request
        routes = list(routes)
        split = split_routes(fanout.config, fanout.partitions, routes)
        skips = {route.partition: route.skip_rows for route in routes}
        self._failures.extend(pb.PartitionStatus(partition=p, error=why) for p, why in split.unroutable.items())
        for name in split.local:
            source = f"{name}#{next(self._calls)}"
            self._sources[source] = _ScanSource("", None, {name})
            self.merge.add(source, scan_partition(fanout.partitions[name], self.query, request.chunk_size,
                                                  fanout.config.name, skips[name]))
        for child, child_routes in split.by_child.items():
            forwarded = pb.ScanRequest(request_id=request.request_id, filter=request.filter,
                                       chunk_size=request.chunk_size, routes=child_routes)
            call = fanout.links[child].scan(forwarded, timeout=fanout.call_timeout(self.deadline))
            source = f"{child}#{next(self._calls)}"
            self._sources[source] = _ScanSource(child, call, {r.partition for r in child_routes})
            fanout.calls_started(child, call)
            self.merge.add(source, call, cancel=call.cancel)

    def __iter__(self) -> Iterator[tuple[bytes | pb.QueryResponse, pb.QueryResponse]]:
        items = iter(self.merge)
        while True:
            if self._failures:
                message = pb.QueryResponse(partitions=self._failures)
                self._failures = []
                yield message, message
                continue
            try:
                source, item = next(items)
            except StopIteration:
                if self._failures:
                    continue
                return
            if isinstance(item, SourceEnded):
                self._source_ended(self._sources[source], item.error)
                continue
            message = item if isinstance(item, pb.QueryResponse) else pb.QueryResponse.FromString(item)
            self._sources[source].unreported.difference_update(status.partition for status in message.partitions)
            yield item, message

    def _source_ended(self, source: "_ScanSource", error: BaseException | None) -> None:
        unreported = sorted(source.unreported)
        if source.call is not None:
            self.fanout.calls_ended(source.child, source.call, error, self.request.request_id, unreported)
        if not unreported:
            return
        name = source.child or self.fanout.config.name
        why = f"{name}: {describe_error(error)}" if error is not None else f"{name} ended without a status"
        self._failures.extend(pb.PartitionStatus(partition=p, error=why) for p in unreported)
        source.unreported.clear()


class Fanout:
    """Answers routed scans and aggregates over this daemon's partitions and its children."""

    def __init__(self, config: DaemonConfig, log, links: dict[str, ChildLink],
                 monitors: dict[str, Callable[[bool, str], None]] | None = None):
        self.config = config
        self.log = log
        self.links = links
        self.partitions: dict[str, Partition] = {}
        self._report = monitors or {}  # child -> its health monitor's observe(ok, reason)
        self._lock = threading.Lock()
        self._calls: dict[str, set] = {}  # child -> calls in flight to it

    def scan(self, request: pb.ScanRequest, query: Filter, deadline: float | None, merge: FairMerge) -> ScanSession:
        """Starts scanning the request's routes; closing `merge` cancels the scan."""
        session = ScanSession(self, request, query, deadline, merge)
        session.route(request.routes)
        return session

    def calls_started(self, child: str, call) -> None:
        with self._lock:
            self._calls.setdefault(child, set()).add(call)

    def calls_ended(self, child: str, call, error: BaseException | None, request_id: str,
                    partitions: list[str]) -> None:
        """Forgets a finished call; a failed one counts against the child and names what it lost."""
        with self._lock:
            self._calls.get(child, set()).discard(call)
        if error is None:
            return
        self._report_failure(child, error)
        if partitions:
            self._log_child_failure(request_id, child, error, partitions)

    def _report_failure(self, child: str, error: BaseException) -> None:
        """Passive detection: a child whose connection fails a query is not treated as healthy until
        a probe says so. Other errors (a deadline that ran out, a cancel) say nothing of its health."""
        if isinstance(error, grpc.Call) and error.code() is grpc.StatusCode.UNAVAILABLE and child in self._report:
            self._report[child](False, f"query call failed: {describe_error(error)}")

    def call_timeout(self, deadline: float | None) -> float:
        """A child call's timeout: what is left of the request's, less a margin, so that a child
        that never answers still leaves time to report a partial answer before the client gives up."""
        remaining = remaining_seconds(deadline, self.config.query.call_timeout_seconds)
        return max(0.01, remaining - min(1.0, 0.1 * remaining))

    def cancel_calls_to(self, child: str) -> None:
        """Cancels every call in flight to a child the health monitor found unavailable: a hung
        child would otherwise hold its partitions until the request's deadline."""
        with self._lock:
            calls = self._calls.pop(child, set())
        for call in calls:
            call.cancel()

    def aggregate(self, request: pb.ScanRequest, query: Filter, group_by: tuple[str, ...],
                  deadline: float | None) -> tuple[Progress, AggregateTable]:
        split = split_routes(self.config, self.partitions, request.routes)
        progress = Progress(tuple(r.partition for r in request.routes))
        table = AggregateTable(group_by)
        calls = {child: self.links[child].aggregate.future(
                     pb.ScanRequest(request_id=request.request_id, filter=request.filter, group_by=group_by,
                                    routes=routes), timeout=self.call_timeout(deadline))
                 for child, routes in split.by_child.items()}
        for child, call in calls.items():
            self.calls_started(child, call)
        for partition, why in split.unroutable.items():
            progress.fail([partition], why)
        for name in split.local:
            rows = table.add_partition(query.matcher(self.partitions[name]))
            progress.record([pb.PartitionStatus(partition=name, complete=True, rows=rows, served_by=self.config.name)])
        for child, call in calls.items():
            routed = [r.partition for r in split.by_child[child]]
            try:
                answer = call.result()
            except (grpc.RpcError, grpc.FutureCancelledError):  # the call itself carries the code
                failed = progress.fail(routed, f"{child}: {describe_error(call)}")
                self.calls_ended(child, call, call, request.request_id, [s.partition for s in failed])
                continue
            self.calls_ended(child, call, None, request.request_id, [])
            table.merge_proto(answer.groups)
            progress.record(answer.partitions)
            progress.fail(routed, f"{child} answered without the partition")
        return progress, table

    def _log_child_failure(self, request_id: str, child: str, error: BaseException, partitions: list[str]) -> None:
        code = error.code().name if isinstance(error, grpc.Call) else type(error).__name__
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        events.CHILD_CALL_FAILED.emit(self.log, request_id=request_id, child=child, code=code, message=details,
                                      partitions=partitions)


def abort_invalid(context: grpc.ServicerContext, error: InvalidQuery):
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


def deadline_of(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class ActiveRequests:
    """Counts the requests in flight, for the status view and the stop event."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.count += 1

    def leave(self) -> None:
        with self._lock:
            self.count -= 1

    @contextlib.contextmanager
    def held(self):
        self.enter()
        try:
            yield
        finally:
            self.leave()


class NodeServicer:
    """airquality.v1.Node: what a parent asks of this daemon."""

    def __init__(self, config: DaemonConfig, fanout: Fanout, serving: threading.Event, requests: ActiveRequests,
                 started: float, probes_received: Callable[[], dict[str, int]]):
        self.config = config
        self.probes_received = probes_received
        self.fanout = fanout
        self.serving = serving
        self.requests = requests
        self.started = started

    def _check_serving(self, context) -> None:
        if not self.serving.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.config.name} is not serving (loading or stopping)")

    def _parse(self, request: pb.ScanRequest, context) -> Filter:
        try:
            parse_request_id(request.request_id)
            parse_group_by(tuple(request.group_by))
            return parse_filter(request.filter)
        except InvalidQuery as error:
            abort_invalid(context, error)

    def Scan(self, request: pb.ScanRequest, context):
        self._check_serving(context)
        query = self._parse(request, context)
        try:
            request.chunk_size = parse_chunk_size(request.chunk_size or None, self.config.query.default_chunk_size)
        except InvalidQuery as error:
            abort_invalid(context, error)
        merge = FairMerge()
        self._track(context, merge.close)
        for payload, _ in self.fanout.scan(request, query, deadline_of(context), merge):
            yield payload

    def ScanAggregate(self, request: pb.ScanRequest, context):
        self._check_serving(context)
        query = self._parse(request, context)
        with self.requests.held():
            progress, table = self.fanout.aggregate(request, query, tuple(request.group_by), deadline_of(context))
        return pb.AggregateResponse(request_id=request.request_id, groups=table.to_proto(final=False),
                                    partitions=progress.all_statuses())

    def GetStatus(self, request: pb.StatusRequest, context):
        partitions = [pb.PartitionInfo(name=p.name, days=p.days, rows=p.rows, skipped_lines=p.skipped_lines,
                                       loaded_from=p.loaded_from) for p in self.fanout.partitions.values()]
        return pb.StatusResponse(daemon=self.config.name, role=self.config.role, process_id=os.getpid(),
                                 uptime_seconds=time.monotonic() - self.started, serving=self.serving.is_set(),
                                 partitions=partitions, children=[link.name for link in self.config.children],
                                 active_requests=self.requests.count,
                                 health_checks_by_requester=self.probes_received())

    def _track(self, context, on_end) -> None:
        """Counts the call as active until it terminates, however it ends, then runs `on_end`.

        A cancelled streaming call's generator is simply never resumed, so cleanup cannot live in
        the generator: gRPC's termination callback is the one place every ending passes through.
        """
        self.requests.enter()

        def ended():
            self.requests.leave()
            on_end()

        if not context.add_callback(ended):  # the call is already over
            ended()
            context.abort(grpc.StatusCode.CANCELLED, "the call ended before it started")
