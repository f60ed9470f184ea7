"""airquality.v1.AirQuality: the client-facing service, answered by the gateway alone.

The gateway holds no data. For each query it plans which copy of each partition serves it (one
live copy each, so replicas never duplicate rows), relays chunks as they arrive and, when a copy
fails mid-stream, moves the partition to another copy that starts after the last row delivered:
scans run in a fixed order on every copy, so the client sees each row exactly once.

A chunk received from a leader is sent on as the same bytes with the gateway's header fields
appended (in the protobuf wire format a later occurrence of a scalar field overrides an earlier
one). Each chunk carries a resume token, so a client whose gateway restarts can continue the
answer where it stopped. The last chunk says whether every partition answered.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field

import grpc

from daemons import events
from daemons.config import DaemonConfig
from daemons.health.view import ClusterHealthView
from daemons.fanout.merge import FairMerge
from daemons.servicers.node import ActiveRequests, Fanout, Progress, abort_invalid, deadline_of
from daemons.planning.paths import Path, choose_path
from daemons.query.filter import InvalidQuery, parse_chunk_size, parse_filter, parse_group_by, parse_request_id
from daemons.rpc import airquality_pb2 as pb
from daemons.query.wire import decode_rows


@dataclass
class _Answer:
    """What a query has delivered so far: for its resume tokens and the event logged at its end."""

    filter_digest: bytes
    chunks: int = 0
    delivered: dict[str, int] = field(default_factory=dict)  # partition -> rows sent to the client
    outcome: str = "client_gone"  # until the last chunk is sent
    progress: Progress = field(default_factory=lambda: Progress(()))

    @property
    def rows(self) -> int:
        return sum(self.delivered.values())

    def token(self) -> bytes:
        complete = [p for p, status in self.progress.statuses.items() if status.complete]
        return pb.ResumeToken(filter_digest=self.filter_digest, chunks=self.chunks, delivered=self.delivered,
                              complete=complete).SerializeToString()


def filter_digest(query_filter: pb.QueryFilter) -> bytes:
    return hashlib.sha256(query_filter.SerializeToString(deterministic=True)).digest()[:16]


def parse_resume_token(token: bytes, digest: bytes) -> pb.ResumeToken:
    try:
        state = pb.ResumeToken.FromString(token)
    except Exception:
        raise InvalidQuery("resume_token: not a token this service issued") from None
    if state.filter_digest != digest:
        raise InvalidQuery("resume_token: it belongs to a query with another filter")
    return state


class GatewayServicer:
    def __init__(self, config: DaemonConfig, fanout: Fanout, serving: threading.Event, requests: ActiveRequests,
                 health: ClusterHealthView, log):
        self.config = config
        self.fanout = fanout
        self.serving = serving
        self.requests = requests
        self.health = health
        self.log = log
        self._lock = threading.Lock()
        self._running: dict[str, FairMerge] = {}
        self._cancelled: set[str] = set()

    # -- planning ----------------------------------------------------------------------------------

    def _route(self, partition: str, path: Path, skip: int = 0) -> pb.PartitionRoute:
        return pb.PartitionRoute(partition=partition, path=[self.config.name, *path], skip_rows=skip)

    def _plan(self, partitions, progress: Progress, tried: dict[str, list[Path]],
              skips: dict[str, int]) -> list[pb.PartitionRoute]:
        """Routes for the partitions; those with no live copy are recorded as failed."""
        statuses = self.health.statuses()
        routes = []
        for partition in partitions:
            path = choose_path(self.config.routes[partition], lambda d: statuses.get(d, "unknown"),
                               tried.setdefault(partition, []))
            if path is None:
                down = sorted({hop for p in self.config.routes[partition] for hop in p
                               if statuses.get(hop) == "unavailable"})
                progress.fail([partition], f"no live copy (unavailable: {', '.join(down) or 'none'})")
                continue
            tried[partition].append(path)
            routes.append(self._route(partition, path, skips.get(partition, 0)))
        return routes

    def _fail_over(self, request_id: str, failure: pb.PartitionStatus, progress: Progress,
                   tried: dict[str, list[Path]], skips: dict[str, int]) -> list[pb.PartitionRoute]:
        """A copy failed: routes the partition to the next live copy, or records it as missing."""
        partition = failure.partition
        failed = tried[partition][-1]
        routes = self._plan([partition], Progress((partition,)), tried, skips)
        if not routes:
            progress.fail([partition], f"{failure.error}; no other live copy")
            return []
        events.PARTITION_FAILOVER.emit(self.log, **{
            "request_id": request_id, "partition": partition, "from": failed[-1], "to": tried[partition][-1][-1],
            "reason": failure.error, "skip_rows": skips.get(partition, 0)})
        return routes

    # -- requests ----------------------------------------------------------------------------------

    def _admit(self, request_id: str, merge: FairMerge, context) -> None:
        if not self.serving.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.config.name} is not serving (starting or stopping)")
        with self._lock:
            if request_id in self._running:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"request_id {request_id!r} is already running")
            if len(self._running) >= self.config.query.max_concurrent_requests:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{len(self._running)} requests are running; retry shortly")
            self._running[request_id] = merge
        self.requests.enter()

    def _release(self, request_id: str) -> bool:
        """Forgets the request; True when it ended because of a CancelRequest."""
        with self._lock:
            self._running.pop(request_id)
            cancelled = request_id in self._cancelled
            self._cancelled.discard(request_id)
        self.requests.leave()
        return cancelled

    def Query(self, request: pb.QueryRequest, context):
        started = time.perf_counter()
        try:
            request_id = parse_request_id(request.request_id)
            query = parse_filter(request.filter)
            chunk_size = parse_chunk_size(request.chunk_size if request.HasField("chunk_size") else None,
                                          self.config.query.default_chunk_size)
            if request.encoding not in pb.RowEncoding.values():
                raise InvalidQuery(f"encoding: unknown value {request.encoding}")
            digest = filter_digest(request.filter)
            resumed = parse_resume_token(request.resume_token, digest) if request.resume_token else None
        except InvalidQuery as error:
            abort_invalid(context, error)
        merge = FairMerge()
        self._admit(request_id, merge, context)
        answer = _Answer(digest, progress=Progress(tuple(self.config.routes)))
        if resumed is not None:
            answer.chunks, answer.delivered = resumed.chunks, dict(resumed.delivered)
            answer.progress.record(pb.PartitionStatus(partition=p, complete=True, rows=answer.delivered.get(p, 0))
                                   for p in resumed.complete)

        def finished():
            merge.close()
            cancelled = self._release(request_id)
            outcome = "cancelled" if cancelled else answer.outcome
            events.QUERY_FINISHED.emit(self.log, request_id=request_id, kind="query", rows=answer.rows,
                                       seconds=round(time.perf_counter() - started, 6), complete=outcome == "complete",
                                       missing_partitions=answer.progress.missing, outcome=outcome)

        if not context.add_callback(finished):  # the client is already gone
            finished()
            return
        tried: dict[str, list[Path]] = {}
        pending = [p for p in self.config.routes if p not in answer.progress.statuses]
        scan = pb.ScanRequest(request_id=request_id, filter=request.filter, chunk_size=chunk_size,
                              routes=self._plan(pending, answer.progress, tried, answer.delivered))
        session = self.fanout.scan(scan, query, deadline_of(context), merge)
        for payload, message in session:
            for status in message.partitions:
                if status.complete:
                    answer.progress.record([status])
                else:
                    session.route(self._fail_over(request_id, status, answer.progress, tried, answer.delivered))
            if message.HasField("columns"):
                answer.delivered[message.partition] = message.partition_offset + message.columns.row_count
                answer.chunks += 1
                yield self._relay(request, answer, payload, message)
        if self._was_cancelled(request_id):
            context.abort(grpc.StatusCode.CANCELLED, f"request {request_id} was cancelled")
        missing = answer.progress.missing
        answer.outcome = "partial" if missing else "complete"
        statuses = answer.progress.all_statuses()
        for status in statuses:
            status.rows = answer.delivered.get(status.partition, 0)
        yield pb.QueryResponse(request_id=request_id, chunk_number=answer.chunks, is_last_chunk=True,
                               total_results=answer.rows, partitions=statuses, complete=not missing,
                               missing_partitions=missing, resume_token=answer.token())

    @staticmethod
    def _relay(request: pb.QueryRequest, answer: _Answer, payload, message: pb.QueryResponse):
        header = dict(request_id=request.request_id, chunk_number=answer.chunks - 1, resume_token=answer.token())
        if request.encoding == pb.ROW_ENCODING_MEASUREMENTS:
            return pb.QueryResponse(partition=message.partition, partition_offset=message.partition_offset,
                                    measurements=decode_rows(message.columns).to_measurements(), **header)
        body = payload if isinstance(payload, bytes) else payload.SerializeToString()
        return body + pb.QueryResponse(**header).SerializeToString()

    def Aggregate(self, request: pb.AggregateRequest, context):
        started = time.perf_counter()
        try:
            request_id = parse_request_id(request.request_id)
            query = parse_filter(request.filter)
            group_by = parse_group_by(tuple(request.group_by))
        except InvalidQuery as error:
            abort_invalid(context, error)
        if not self.serving.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.config.name} is not serving (starting or stopping)")
        progress = Progress(tuple(self.config.routes))
        tried: dict[str, list[Path]] = {}
        total = None
        routes = self._plan(self.config.routes, progress, tried, {})
        while routes:
            scan = pb.ScanRequest(request_id=request_id, filter=request.filter, group_by=group_by, routes=routes)
            answered, table = self.fanout.aggregate(scan, query, group_by, deadline_of(context))
            if total is None:
                total = table
            else:
                total.merge_proto(table.to_proto(final=False))
            routes = []
            for status in answered.all_statuses():
                if status.complete:
                    progress.record([status])
                else:
                    routes += self._fail_over(request_id, status, progress, tried, {})
        missing = progress.missing
        groups = total.to_proto(final=True) if total is not None else []
        events.QUERY_FINISHED.emit(self.log, request_id=request_id, kind="aggregate", rows=sum(g.rows for g in groups),
                                   seconds=round(time.perf_counter() - started, 6), complete=not missing,
                                   missing_partitions=missing, outcome="partial" if missing else "complete")
        return pb.AggregateResponse(request_id=request_id, groups=groups, complete=not missing,
                                    partitions=progress.all_statuses(), missing_partitions=missing)

    def _was_cancelled(self, request_id: str) -> bool:
        with self._lock:
            return request_id in self._cancelled

    def Cancel(self, request: pb.CancelRequest, context):
        with self._lock:
            merge = self._running.get(request.request_id)
            if merge is not None:
                self._cancelled.add(request.request_id)
        if merge is None:
            return pb.CancelResponse(cancelled=False)
        merge.close()
        return pb.CancelResponse(cancelled=True)

