"""airquality.v1.AirQuality: the client-facing service, answered by the gateway alone.

The gateway holds no data. It validates a request, routes every partition to the daemon that
scans it, and relays chunks as they arrive, adding only its own numbering: a chunk received from
a leader is sent on as the same bytes with a few header fields appended (in the protobuf wire
format a later occurrence of a scalar field overrides an earlier one). The last chunk says whether
every partition answered and names those that did not.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import grpc

from daemons import events
from daemons.config import DaemonConfig
from daemons.merge import FairMerge
from daemons.node import ActiveRequests, Fanout, Progress, abort_invalid, deadline_of
from daemons.query import InvalidQuery, parse_chunk_size, parse_filter, parse_group_by, parse_request_id
from daemons.rpc import airquality_pb2 as pb
from daemons.wire import decode_rows


@dataclass
class _Answer:
    """What a query has delivered so far, for the event logged when it ends."""

    rows: int = 0
    outcome: str = "client_gone"  # until the last chunk is sent
    progress: Progress = field(default_factory=lambda: Progress(()))


class GatewayServicer:
    def __init__(self, config: DaemonConfig, fanout: Fanout, serving: threading.Event, requests: ActiveRequests, log):
        self.config = config
        self.fanout = fanout
        self.serving = serving
        self.requests = requests
        self.log = log
        self._lock = threading.Lock()
        self._running: dict[str, FairMerge] = {}
        self._cancelled: set[str] = set()

    def routes(self) -> list[pb.PartitionRoute]:
        return [pb.PartitionRoute(partition=partition, path=[self.config.name, *paths[0]])
                for partition, paths in self.config.routes.items()]

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
        except InvalidQuery as error:
            abort_invalid(context, error)
        merge = FairMerge()
        self._admit(request_id, merge, context)
        answer = _Answer()

        def finished():
            merge.close()
            cancelled = self._release(request_id)
            outcome = "cancelled" if cancelled else answer.outcome
            events.QUERY_FINISHED.emit(self.log, request_id=request_id, kind="query", rows=answer.rows,
                                       seconds=round(time.perf_counter() - started, 6), complete=outcome == "complete",
                                       missing_partitions=answer.progress.missing, outcome=outcome)

        context.add_callback(finished)
        scan = pb.ScanRequest(request_id=request_id, filter=request.filter, chunk_size=chunk_size, routes=self.routes())
        answer.progress, stream = self.fanout.scan(scan, query, deadline_of(context), merge)
        chunk_number = 0
        for payload, message in stream:
            if not message.HasField("columns"):
                continue  # partition statuses only; summed up in the last chunk
            yield self._relay(request, chunk_number, payload, message)
            chunk_number += 1
            answer.rows += message.columns.row_count
        if self._was_cancelled(request_id):
            context.abort(grpc.StatusCode.CANCELLED, f"request {request_id} was cancelled")
        missing = answer.progress.missing
        answer.outcome = "partial" if missing else "complete"
        yield pb.QueryResponse(request_id=request_id, chunk_number=chunk_number, is_last_chunk=True,
                               total_results=answer.rows, partitions=answer.progress.all_statuses(),
                               complete=not missing, missing_partitions=missing)

    @staticmethod
    def _relay(request: pb.QueryRequest, chunk_number: int, payload, message: pb.QueryResponse):
        if request.encoding == pb.ROW_ENCODING_MEASUREMENTS:
            batch = decode_rows(message.columns)
            return pb.QueryResponse(request_id=request.request_id, chunk_number=chunk_number,
                                    partition=message.partition, partition_offset=message.partition_offset,
                                    measurements=batch.to_measurements())
        header = pb.QueryResponse(request_id=request.request_id, chunk_number=chunk_number).SerializeToString()
        body = payload if isinstance(payload, bytes) else payload.SerializeToString()
        return body + header

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
        scan = pb.ScanRequest(request_id=request_id, filter=request.filter, group_by=group_by, routes=self.routes())
        progress, table = self.fanout.aggregate(scan, query, group_by, deadline_of(context))
        events.QUERY_FINISHED.emit(self.log, request_id=request_id, kind="aggregate",
                                   rows=sum(g.rows for g in table.groups.values()),
                                   seconds=round(time.perf_counter() - started, 6), complete=not progress.missing,
                                   missing_partitions=progress.missing,
                                   outcome="complete" if not progress.missing else "partial")
        return pb.AggregateResponse(request_id=request_id, groups=table.to_proto(final=True),
                                    complete=not progress.missing, partitions=progress.all_statuses(),
                                    missing_partitions=progress.missing)

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
