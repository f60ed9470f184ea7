"""airquality.v1.Node: what a parent asks of this daemon (scans, aggregates, its status).

Requests are validated here, admitted through the RequestRegistry and answered by the Fanout;
this module only translates between gRPC and those two.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import NoReturn

import grpc

from daemons.config import DaemonConfig
from daemons.deadline import Deadline
from daemons.fanout.children import UnaryCall, answers
from daemons.fanout.engine import Fanout, Payload
from daemons.fanout.merge import FairMerge
from daemons.fanout.routes import check_routes
from daemons.query.filter import Filter, InvalidQuery, parse_chunk_size, parse_filter, parse_group_by, parse_request_id
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.requests import CallContext, RequestRegistry
from daemons.storage.partition import Partition

STATUS_BELOW_TIMEOUT_SECONDS = 2.0


def abort_invalid(context: CallContext, error: InvalidQuery) -> NoReturn:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


class NodeServicer:
    def __init__(self, config: DaemonConfig, fanout: Fanout, requests: RequestRegistry, started: float,
                 serving: Callable[[], bool], probes_received: Callable[[], dict[str, int]],
                 datagrams_dropped: Callable[[], dict[str, int]] = dict):
        self.config = config
        self.fanout = fanout
        self.requests = requests
        self.started = started
        self.serving = serving
        self.probes_received = probes_received
        self.datagrams_dropped = datagrams_dropped  # health datagrams not believed, by where and why

    def _parse(self, request: pb.ScanRequest, context: CallContext) -> Filter:
        try:
            parse_request_id(request.request_id)
            parse_group_by(tuple(request.group_by))
            check_routes(self.config.name, request.routes)
            return parse_filter(request.filter)
        except InvalidQuery as error:
            abort_invalid(context, error)

    def Scan(self, request: pb.ScanRequest, context: CallContext) -> Iterator[Payload]:
        query = self._parse(request, context)
        try:
            request.chunk_size = parse_chunk_size(request.chunk_size or None, self.config.query.default_chunk_size)
        except InvalidQuery as error:
            abort_invalid(context, error)
        admitted = self.requests.admit(context, request.request_id)
        merge = FairMerge()
        admitted.cancellation.on_cancel(merge.close)
        for payload, _ in self.fanout.scan(request, query, admitted.deadline, merge):
            yield payload

    def ScanAggregate(self, request: pb.ScanRequest, context: CallContext) -> pb.AggregateResponse:
        query = self._parse(request, context)
        admitted = self.requests.admit(context, request.request_id)
        try:
            progress, table = self.fanout.aggregate(request, query, tuple(request.group_by), admitted.deadline,
                                                    admitted.cancellation)
        except InvalidQuery as error:
            abort_invalid(context, error)
        return pb.AggregateResponse(request_id=request.request_id, groups=table.to_proto(final=False),
                                    partitions=progress.all_statuses())

    def _info(self, partition: Partition) -> pb.PartitionInfo:
        info = pb.PartitionInfo(name=partition.name, days=partition.days, rows=partition.rows,
                                skipped_lines=partition.skipped_lines, loaded_from=partition.loaded_from,
                                fingerprint=partition.fingerprint, gaps=partition.gaps, daemon=self.config.name,
                                process_id=os.getpid())
        if partition.minutes is not None:
            info.first_minute, info.last_minute = partition.minutes
        return info

    def GetStatus(self, request: pb.StatusRequest, context: CallContext) -> pb.StatusResponse:
        answer = pb.StatusResponse(daemon=self.config.name, role=self.config.role, process_id=os.getpid(),
                                   uptime_seconds=time.monotonic() - self.started, serving=self.serving(),
                                   partitions=[self._info(p) for p in self.fanout.partitions.values()],
                                   children=[link.name for link in self.config.children],
                                   active_requests=self.requests.active,
                                   health_checks_by_requester=self.probes_received(),
                                   datagrams_dropped=self.datagrams_dropped())
        if request.cluster:
            self._add_copies_below(answer, Deadline.of_call(context).child_timeout(STATUS_BELOW_TIMEOUT_SECONDS))
        return answer

    def _add_copies_below(self, answer: pb.StatusResponse, timeout: float) -> None:
        """Every child's copies (and theirs, recursively), for the gateway's replica catalog. A child
        that does not answer is named instead: its copies stay unknown, which only costs a check."""
        calls: dict[str, UnaryCall] = {name: child.status(pb.StatusRequest(cluster=True), timeout=timeout)
                                       for name, child in self.fanout.children.items()}
        for name, below, failure in answers(calls):
            if below is None:
                answer.unreachable_below.append(f"{name}: {failure}")
                continue
            if not below.serving:
                answer.unreachable_below.append(f"{name}: not serving yet")
            answer.copies_below.extend(below.partitions)
            answer.copies_below.extend(below.copies_below)
            answer.unreachable_below.extend(below.unreachable_below)
