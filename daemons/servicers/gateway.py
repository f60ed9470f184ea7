"""airquality.v1.AirQuality: the client-facing service, answered by the gateway alone.

The gateway holds no data. For each request a RequestPlan (planning/failover.py) picks one
live copy of each partition (so replicas never duplicate rows) among the copies the replica
catalog (servicers/replicas.py) knows to agree and, when a copy fails mid-stream, the next one
with the same content, which starts after the last row delivered; this module relays chunks and
turns the plan's decisions into routes and events.

A chunk received from a leader is sent on as the same bytes with the gateway's header fields
appended (in the protobuf wire format a later occurrence of a scalar field overrides an earlier
one). Each chunk carries a resume token, so a client whose gateway restarts can continue the
answer where it stopped. The last chunk says whether every partition answered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Protocol

import grpc

from daemons import events
from daemons.config import DaemonConfig
from daemons.events import EventLog
from daemons.fanout.engine import Fanout, Payload
from daemons.fanout.merge import FairMerge
from daemons.health.view import HealthView
from daemons.planning.failover import Assignment, RequestPlan
from daemons.planning.paths import StatusOf
from daemons.planning.replicas import PartitionChoice
from daemons.query.aggregate import AggregateTable
from daemons.query.filter import InvalidQuery, parse_chunk_size, parse_filter, parse_group_by, parse_request_id
from daemons.query.wire import RowDecoder
from daemons.rpc import airquality_pb2 as pb
from daemons.security.identity import caller_of
from daemons.servicers.node import abort_invalid
from daemons.servicers.requests import CallContext, NotOwner, RequestRegistry
from daemons.servicers.tokens import ResumeTokens


def filter_digest(query_filter: pb.QueryFilter) -> bytes:
    return hashlib.sha256(query_filter.SerializeToString(deterministic=True)).digest()[:16]


class Replicas(Protocol):
    """What the gateway knows of the copies' contents (servicers/replicas.py)."""

    def choices(self) -> dict[str, PartitionChoice]: ...

    def learn_status(self, status: pb.PartitionStatus) -> None: ...


class GatewayServicer:
    def __init__(self, config: DaemonConfig, fanout: Fanout, requests: RequestRegistry, health: HealthView,
                 log: EventLog, tokens: ResumeTokens, replicas: Replicas):
        self.config = config
        self.fanout = fanout
        self.requests = requests
        self.health = health
        self.log = log
        self.tokens = tokens
        self.replicas = replicas

    def _route(self, assignment: Assignment) -> pb.PartitionRoute:
        return pb.PartitionRoute(partition=assignment.partition, path=[self.config.name, *assignment.path],
                                 skip_rows=assignment.skip_rows, fingerprint=assignment.fingerprint)

    def _failed_over(self, request_id: str, assignment: Assignment) -> pb.PartitionRoute:
        assert assignment.replaces is not None
        events.PARTITION_FAILOVER.emit(self.log, **{
            "request_id": request_id, "partition": assignment.partition, "from": assignment.replaces[-1],
            "to": assignment.path[-1], "reason": assignment.reason, "skip_rows": assignment.skip_rows})
        return self._route(assignment)

    def _status_of(self) -> StatusOf:
        statuses = self.health.statuses()
        return lambda daemon: statuses.get(daemon, "unknown")

    def serving_copies(self, status_of: StatusOf) -> dict[str, tuple[tuple[str, ...], str]]:
        """partition -> (the path from this gateway a query would read it along, "") or, when no copy
        is in reach, ((), why): planned as a query is, with the daemons' statuses `status_of` gives."""
        plan = RequestPlan(self.replicas.choices())
        copies = {a.partition: ((self.config.name, *a.path), "") for a in plan.assign(status_of)}
        for partition, status in plan.progress.statuses.items():
            copies.setdefault(partition, ((), status.error))
        return copies

    def Query(self, request: pb.QueryRequest, context: CallContext) -> Iterator[Payload]:
        try:
            request_id = parse_request_id(request.request_id)
            query = parse_filter(request.filter)
            chunk_size = parse_chunk_size(request.chunk_size if request.HasField("chunk_size") else None,
                                          self.config.query.default_chunk_size)
            if request.encoding not in pb.RowEncoding.values():
                raise InvalidQuery(f"encoding: unknown value {request.encoding}")
            digest = filter_digest(request.filter)
            resumed = (self.tokens.parse(request.resume_token, digest, self.config.routes)
                       if request.resume_token else None)
        except InvalidQuery as error:
            abort_invalid(context, error)
        admitted = self.requests.admit(context, request_id, kind="query", limited=True)
        merge = FairMerge()
        admitted.cancellation.on_cancel(merge.close)
        choices = self.replicas.choices()
        if resumed is None:
            plan, chunks = RequestPlan(choices), 0
        else:
            plan = RequestPlan.resumed(choices, resumed.delivered, resumed.complete, resumed.fingerprints)
            chunks = resumed.chunks
        plan.prune(*query.minutes, self.health.process_ids().get)
        admitted.progress = plan.progress
        scan = pb.ScanRequest(request_id=request_id, filter=request.filter, chunk_size=chunk_size,
                              routes=[self._route(a) for a in plan.assign(self._status_of())])
        session = self.fanout.scan(scan, query, admitted.deadline, merge)
        decoder = RowDecoder() if request.encoding == pb.ROW_ENCODING_MEASUREMENTS else None
        for payload, message in session:
            if admitted.cancellation.cancelled:
                break  # sources cut short by the cancel are not failures to fail over from
            has_rows = message.HasField("columns")
            if has_rows:  # before the statuses: a partition's last chunk carries its own
                plan.rows_received(message.partition, message.partition_offset, message.columns.row_count,
                                   message.fingerprint)
                admitted.rows = plan.rows_delivered
            for status in message.partitions:
                self.replicas.learn_status(status)
                replacement = plan.settle(status, self._status_of())
                if replacement is not None:
                    session.route([self._failed_over(request_id, replacement)])
            if has_rows:
                chunks += 1
                header = pb.QueryResponse(request_id=request_id, chunk_number=chunks - 1,
                                          resume_token=self.tokens.issue(digest, chunks, plan))
                yield self._relay(decoder, header, payload, message)
        if admitted.cancellation.cancelled:
            context.abort(grpc.StatusCode.CANCELLED, f"request {request_id} was cancelled")
        missing = plan.progress.missing
        admitted.outcome = "partial" if missing else "complete"
        statuses = plan.progress.all_statuses()
        for status in statuses:
            status.rows = plan.delivered.get(status.partition, 0)
        yield pb.QueryResponse(request_id=request_id, chunk_number=chunks, is_last_chunk=True,
                               total_results=plan.rows_delivered, partitions=statuses, complete=not missing,
                               missing_partitions=missing, resume_token=self.tokens.issue(digest, chunks, plan))

    @staticmethod
    def _relay(decoder: RowDecoder | None, header: pb.QueryResponse, payload: Payload,
               message: pb.QueryResponse) -> Payload:
        """A chunk for the client: as the columns came, or (with a decoder) as FireMeasurement rows.
        Partition statuses stay here: the client's come together on the last chunk."""
        if decoder is not None:
            answer = pb.QueryResponse(partition=message.partition, partition_offset=message.partition_offset,
                                      measurements=decoder.decode(message.columns, message.partition).to_measurements())
            answer.MergeFrom(header)
            return answer
        if message.partitions:  # a partition's last chunk: its status cannot be cut from the bytes
            message.ClearField("partitions")
            payload = message
        body = payload if isinstance(payload, bytes) else payload.SerializeToString()
        return body + header.SerializeToString()

    def Aggregate(self, request: pb.AggregateRequest, context: CallContext) -> pb.AggregateResponse:
        try:
            request_id = parse_request_id(request.request_id)
            query = parse_filter(request.filter)
            group_by = parse_group_by(tuple(request.group_by))
        except InvalidQuery as error:
            abort_invalid(context, error)
        admitted = self.requests.admit(context, request_id, kind="aggregate", limited=True)
        plan = RequestPlan(self.replicas.choices())
        plan.prune(*query.minutes, self.health.process_ids().get)
        admitted.progress = plan.progress
        total = AggregateTable(group_by, self.fanout.max_aggregate_groups)
        routes = [self._route(a) for a in plan.assign(self._status_of())]
        while routes and not admitted.cancellation.cancelled:
            scan = pb.ScanRequest(request_id=request_id, filter=request.filter, group_by=group_by, routes=routes)
            try:
                answered, table = self.fanout.aggregate(scan, query, group_by, admitted.deadline,
                                                        admitted.cancellation)
                total.merge_proto(table.to_proto(final=False))
            except InvalidQuery as error:  # too many groups: no copy would answer otherwise
                admitted.outcome = "invalid"
                abort_invalid(context, error)
            routes = []
            if admitted.cancellation.cancelled:
                break
            for status in answered.all_statuses():
                self.replicas.learn_status(status)
                replacement = plan.settle(status, self._status_of())
                if replacement is not None:
                    routes.append(self._failed_over(request_id, replacement))
        if admitted.cancellation.cancelled:
            context.abort(grpc.StatusCode.CANCELLED, f"request {request_id} was cancelled")
        missing = plan.progress.missing
        groups = total.to_proto(final=True)
        admitted.rows = sum(group.rows for group in groups)
        admitted.outcome = "partial" if missing else "complete"
        return pb.AggregateResponse(request_id=request_id, groups=groups, complete=not missing,
                                    partitions=plan.progress.all_statuses(), missing_partitions=missing)

    def Cancel(self, request: pb.CancelRequest, context: CallContext) -> pb.CancelResponse:
        try:
            return pb.CancelResponse(cancelled=self.requests.cancel(request.request_id,
                                                                    caller_of(context.auth_context())))
        except NotOwner as refused:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(refused))
