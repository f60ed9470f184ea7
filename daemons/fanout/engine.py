"""The fan-out: scan what this daemon holds, forward the rest to its children, merge the answers.

Each daemon scans the partitions routed to itself, forwards the others to the next hop, and
streams everything back as it arrives; child chunks are forwarded as the bytes received. Every
routed partition ends in exactly one PartitionStatus, complete or saying why not. Children are
reached through the `Child` protocol (children.py), so all of this runs in tests without sockets.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import NamedTuple

import grpc
import numpy as np

from daemons import events
from daemons.cancel import Cancellation
from daemons.deadline import Deadline
from daemons.errors import describe_error, error_parts, status_code
from daemons.events import EventLog
from daemons.fanout.children import Child, ScanCall, UnaryCall
from daemons.fanout.merge import FairMerge, SourceEnded
from daemons.fanout.routes import Progress, RouteSplit, split_routes
from daemons.query.aggregate import DEFAULT_MAX_GROUPS, AggregateTable
from daemons.query.filter import Filter, InvalidQuery
from daemons.query.wire import ChunkEncoder
from daemons.rpc import airquality_pb2 as pb
from daemons.storage.partition import Partition

Payload = bytes | pb.QueryResponse  # a child's chunk as received, or one made here
ReportFailure = Callable[[str], None]  # a health monitor's query_call_failed(reason)


def _rechunk(blocks: Iterator[np.ndarray], size: int) -> Iterator[tuple[np.ndarray, bool]]:
    """(rows, whether they are the last) in chunks of `size`; each full chunk goes as soon as it is
    full, so only the rest after the last block is known to be the last."""
    pending: list[np.ndarray] = []
    pending_rows = 0
    for block in blocks:
        rest = block
        while len(rest):
            take = rest[: size - pending_rows]
            pending.append(take)
            pending_rows += len(take)
            rest = rest[len(take):]
            if pending_rows == size:
                yield np.concatenate(pending), False
                pending, pending_rows = [], 0
    if pending_rows:
        yield np.concatenate(pending), True


def scan_partition(partition: Partition, query: Filter, chunk_size: int, daemon: str,
                   skip: int = 0) -> Iterator[pb.QueryResponse]:
    """The partition's matching rows in partition order after the first `skip`, its status on the
    last chunk (alone when no row is left, or when the last chunk was full: a full chunk is sent
    before the scan knows whether more rows match, so that rows never wait for the next ones).

    The order is the same on every copy with the same fingerprint (day, file, line), which is what
    lets a replica take over a stream at the row where a failed copy stopped. A copy with gaps
    (days missing on disk, unreadable files) ends incomplete, naming them. The status rides on the
    last chunk because most partitions of a small query answer in one chunk, and a message more
    costs every hop a send, a receive and a handoff (0.2 ms of gRPC alone, measured 2026-12-01).
    """
    offset = skip
    encoder = ChunkEncoder(partition)
    last = False
    for indices, last in _rechunk(query.matcher(partition).selected(skip), chunk_size):
        response = pb.QueryResponse(partition=partition.name, partition_offset=offset,
                                    fingerprint=partition.fingerprint)
        encoder.encode(indices, response.columns)
        offset += len(indices)
        if last:
            response.partitions.append(finished_status(partition, offset - skip, daemon))
        yield response
    if not last:
        yield pb.QueryResponse(partitions=[finished_status(partition, offset - skip, daemon)])


def finished_status(partition: Partition, rows: int, daemon: str) -> pb.PartitionStatus:
    """The status of a partition scanned to its end here: complete unless this copy has gaps."""
    gaps = partition.gaps
    return pb.PartitionStatus(partition=partition.name, complete=not gaps, rows=rows, served_by=daemon,
                              fingerprint=partition.fingerprint, gaps=gaps,
                              error=f"{daemon}'s copy is incomplete: {'; '.join(gaps)}" if gaps else "")


def fingerprint_mismatch(partition: Partition, expected: str, daemon: str) -> pb.PartitionStatus | None:
    """A failed status when the route expects another copy's content than the one held here."""
    if not expected or expected == partition.fingerprint:
        return None
    return pb.PartitionStatus(partition=partition.name, served_by=daemon, fingerprint=partition.fingerprint,
                              error=f"replica mismatch: {daemon} holds {partition.fingerprint}, expected {expected}")


class _ScanSource(NamedTuple):
    child: str  # "" for a scan of a partition held here
    call: ScanCall | None  # None for a local scan
    unreported: set[str]  # partitions routed to it that have no status yet


class ScanSession:
    """One request's scan at this daemon: local scans and child calls feeding one FairMerge.

    Iterating yields (payload to forward, parsed message). Every routed partition ends in one
    status from whoever scanned it, or in a failure status made here when its source stops
    without one. Routes can be added while the session runs: the gateway's failovers.
    """

    def __init__(self, fanout: Fanout, request: pb.ScanRequest, query: Filter, deadline: Deadline,
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
        split = fanout.split(routes)
        skips = {route.partition: route.skip_rows for route in routes}
        expected = {route.partition: route.fingerprint for route in routes}
        self._failures.extend(pb.PartitionStatus(partition=p, error=why) for p, why in split.unroutable.items())
        for name in split.local:
            mismatch = fingerprint_mismatch(fanout.partitions[name], expected[name], fanout.name)
            if mismatch is not None:
                self._failures.append(mismatch)
                continue
            source = f"{name}#{next(self._calls)}"
            self._sources[source] = _ScanSource("", None, {name})
            self.merge.add_inline(source, scan_partition(fanout.partitions[name], self.query, request.chunk_size,
                                                         fanout.name, skips[name]))
        for child, child_routes in split.by_child.items():
            down = fanout.unavailable_reason(child)
            if down is not None:
                self._failures.extend(pb.PartitionStatus(partition=r.partition, error=down) for r in child_routes)
                continue
            forwarded = pb.ScanRequest(request_id=request.request_id, filter=request.filter,
                                       chunk_size=request.chunk_size, routes=child_routes)
            call = fanout.children[child].scan(forwarded, timeout=fanout.child_timeout(self.deadline))
            source = f"{child}#{next(self._calls)}"
            self._sources[source] = _ScanSource(child, call, {r.partition for r in child_routes})
            fanout.call_started(child, call)
            # Not a method of this session: the merge would hold the session that holds the merge,
            # and that cycle (chunks and all) would wait for the cyclic garbage collector.
            self.merge.add(source, call, cancel=functools.partial(fanout.call_abandoned, child, call))

    def __iter__(self) -> Iterator[tuple[Payload, pb.QueryResponse]]:
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

    def _source_ended(self, source: _ScanSource, error: BaseException | None) -> None:
        unreported = sorted(source.unreported)
        if source.call is not None:
            self.fanout.call_ended(source.child, source.call, error, self.request.request_id, unreported)
        if not unreported:
            return
        name = source.child or self.fanout.name
        why = f"{name}: {describe_error(error)}" if error is not None else f"{name} ended without a status"
        self._failures.extend(pb.PartitionStatus(partition=p, error=why) for p in unreported)
        source.unreported.clear()


class Fanout:
    """Answers routed scans and aggregates over this daemon's partitions and its children.

    Locking: `_lock` guards `_calls`, which request threads add to and the health monitor's
    thread drains when it declares a child unavailable.
    """

    def __init__(self, name: str, children: Mapping[str, Child], call_timeout_seconds: float, log: EventLog,
                 monitors: Mapping[str, ReportFailure] | None = None, max_aggregate_groups: int = DEFAULT_MAX_GROUPS,
                 unavailable: Callable[[str], bool] = lambda child: False):
        self.name = name
        self.children = dict(children)
        self.call_timeout_seconds = call_timeout_seconds
        self.max_aggregate_groups = max_aggregate_groups
        self.log = log
        self.partitions: dict[str, Partition] = {}
        self._report = dict(monitors or {})  # child -> its health monitor's observe(ok, reason)
        self._unavailable = unavailable  # whether the child's health monitor here declared it unavailable
        self._lock = threading.Lock()
        self._calls: dict[str, set[ScanCall | UnaryCall]] = {}  # child -> calls in flight to it

    def split(self, routes: Iterable[pb.PartitionRoute]) -> RouteSplit:
        return split_routes(self.name, self.children, self.partitions, routes)

    def scan(self, request: pb.ScanRequest, query: Filter, deadline: Deadline, merge: FairMerge) -> ScanSession:
        """Starts scanning the request's routes; closing `merge` cancels the scan."""
        session = ScanSession(self, request, query, deadline, merge)
        session.route(request.routes)
        return session

    def child_timeout(self, deadline: Deadline) -> float:
        return deadline.child_timeout(self.call_timeout_seconds)

    def unavailable_reason(self, child: str) -> str | None:
        """Why a call to `child` is not even tried: its health monitor here has declared it
        unavailable. Calls in flight then are cancelled (cancel_calls_to); one started after it
        would wait out its deadline on a hung child, or one behind a cut link (measured
        2026-11-30: a full scan held for its whole 300 s), while its partitions have other copies."""
        if self._unavailable(child):
            return f"{child}: unavailable, as {self.name}'s health monitor sees it"
        return None

    def call_started(self, child: str, call: ScanCall | UnaryCall) -> None:
        with self._lock:
            self._calls.setdefault(child, set()).add(call)
        if self._unavailable(child):  # declared unavailable between the check and now: as if in flight
            self.cancel_calls_to(child)

    def call_abandoned(self, child: str, call: ScanCall) -> None:
        """A scan's merge closed before its consumer saw the call end: the request is over (cancelled,
        its reader gone), and the call is cancelled and forgotten with it. Kept, each such call held
        the last chunk it had received: 0.3 MB per abandoned full scan at leader_e, for good
        (measured 2026-12-01)."""
        call.cancel()
        self.call_ended(child, call, None, "", [])  # no error: nothing to report, only forgotten

    def call_ended(self, child: str, call: ScanCall | UnaryCall, error: object | None, request_id: str,
                   partitions: list[str]) -> None:
        """Forgets a finished call; a failed one counts against the child and names what it lost."""
        with self._lock:
            self._calls.get(child, set()).discard(call)
        if error is None:
            return
        self._report_failure(child, error)
        if partitions:
            code, details = error_parts(error)
            events.CHILD_CALL_FAILED.emit(self.log, request_id=request_id, child=child, code=code, message=details,
                                          partitions=partitions)

    def _report_failure(self, child: str, error: object) -> None:
        """Passive detection: a child whose connection fails a query is asked at once how it is.
        Other errors (a deadline that ran out, a cancel) say nothing of its health."""
        if status_code(error) is grpc.StatusCode.UNAVAILABLE and child in self._report:
            self._report[child](f"query call failed: {describe_error(error)}")

    def cancel_calls_to(self, child: str) -> None:
        """Cancels every call in flight to a child the health monitor found unavailable: a hung
        child would otherwise hold its partitions until the request's deadline."""
        with self._lock:
            calls = self._calls.pop(child, set())
        for call in calls:
            call.cancel()

    def aggregate(self, request: pb.ScanRequest, query: Filter, group_by: tuple[str, ...], deadline: Deadline,
                  cancellation: Cancellation) -> tuple[Progress, AggregateTable]:
        """Counts, sums, minima and maxima per group over the routed partitions; a cancellation
        stops the child calls and the local partitions not yet counted. Raises InvalidQuery when
        the groups exceed the limit, here or at a child (which says so with INVALID_ARGUMENT)."""
        split = self.split(request.routes)
        progress = Progress(tuple(r.partition for r in request.routes))
        table = AggregateTable(group_by, self.max_aggregate_groups)
        calls: dict[str, UnaryCall] = {}
        for child, routes in split.by_child.items():
            down = self.unavailable_reason(child)
            if down is not None:
                progress.fail([r.partition for r in routes], down)
                continue
            forwarded = pb.ScanRequest(request_id=request.request_id, filter=request.filter, group_by=group_by,
                                       routes=routes)
            calls[child] = call = self.children[child].aggregate(forwarded, timeout=self.child_timeout(deadline))
            self.call_started(child, call)
            cancellation.on_cancel(call.cancel)
        for partition, why in split.unroutable.items():
            progress.fail([partition], why)
        expected = {route.partition: route.fingerprint for route in request.routes}
        for name in split.local:
            held = self.partitions[name]
            mismatch = fingerprint_mismatch(held, expected[name], self.name)
            if mismatch is not None:
                progress.record([mismatch])
            elif cancellation.cancelled:
                progress.fail([name], "CANCELLED: the request was cancelled")
            else:
                rows = table.add_partition(query.matcher(held))
                progress.record([finished_status(held, rows, self.name)])
        for child, call in calls.items():
            routed = [r.partition for r in split.by_child[child]]
            try:
                answer: pb.AggregateResponse = call.result()
            except Exception:  # the call itself carries the code
                if call.code() is grpc.StatusCode.INVALID_ARGUMENT:  # the request's fault: no copy can answer it
                    self.call_ended(child, call, None, request.request_id, [])
                    raise InvalidQuery(call.details() or "invalid request") from None
                failed = progress.fail(routed, f"{child}: {describe_error(call)}")
                self.call_ended(child, call, call, request.request_id, [s.partition for s in failed])
                continue
            self.call_ended(child, call, None, request.request_id, [])
            table.merge_proto(answer.groups)
            progress.record(answer.partitions)
            progress.fail(routed, f"{child} answered without the partition")
        return progress, table
