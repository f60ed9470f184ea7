"""The original six-process system's contract, `fire_service.FireQueryService`, served beside the
service's own (proto/fire_service.proto), so that its clients and health scripts work unchanged.

Every daemon answers its HealthCheck from the state its native health check reads. The gateway
answers Query, CancelRequest and GetStatus by translating them onto the native path: a legacy
query is a native query (or, for "count", a native aggregate) under the request id
`fire_service-<id>`, with its streaming, failover, limits, ownership and completeness. What the
old contract cannot say is translated as closely as it allows:
- a numeric filter field of 0 means "not set", each on its own (proto3 cannot tell 0 from unset),
  and a bounding box with some bounds unset is open on those sides;
- `total_results` and `total_chunks` are exact on the last chunk, which is held back one chunk
  so that it can say it is the last;
- an incomplete answer (every copy of a partition out of reach) ends with UNAVAILABLE naming the
  partitions missing, after the rows that were found, since the contract has no completeness;
- GetStatus and CancelRequest find a request by its int64 id while it runs and for
  STATUS_KEEP_SECONDS after it ends.
InternalQuery and Notify were the old topology's internal calls; they answer UNIMPLEMENTED.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NoReturn

import grpc

from daemons.config import DaemonConfig
from daemons.query.filter import InvalidQuery, parse_filter
from daemons.query.wire import RowDecoder
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import fire_service_pb2 as fs
from daemons.security.identity import caller_of
from daemons.servicers.gateway import GatewayServicer
from daemons.servicers.requests import CallContext, NotOwner, RequestRegistry

ID_PREFIX = "fire_service-"  # the native request id of a legacy request is this and its int64 id
STATUS_KEEP_SECONDS = 600.0
MAX_KEPT = 4096  # ended requests remembered for GetStatus, at most (the oldest go first)
COUNT = "count"
# A row as a FireMeasurement message is about 170 bytes: the old clients' gRPC takes messages of at
# most 4 MB by default, so a chunk holds at most this many rows (3.4 MB), and by default 8192.
MAX_LEGACY_CHUNK = 20_000
DEFAULT_LEGACY_CHUNK = 8192
# The contract's health statuses: a daemon is "healthy" while it serves, "unhealthy" while it
# loads or stops ("degraded" is the contract's too, for a daemon that serves a part: never here).
HEALTHY, UNHEALTHY = "healthy", "unhealthy"
PENDING, PROCESSING, COMPLETED, CANCELLED = "pending", "processing", "completed", "cancelled"
_SECONDS = re.compile(r"(?P<minute>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}):00(?:\.0+)?Z?")


def process_letter(name: str) -> str:
    """The old system's name for a daemon: "gateway_a" -> "A"."""
    return name.rsplit("_", 1)[-1].upper()


def native_filter(legacy: fs.QueryFilter) -> pb.QueryFilter:
    """The native filter a legacy one means: 0, "" and [] are "not set", each field on its own."""
    native = pb.QueryFilter(parameters=legacy.parameters, site_names=legacy.site_names,
                            agency_names=legacy.agency_names, aqs_codes=legacy.aqs_codes)
    bounds = {"min_latitude": (legacy.min_latitude, -90.0), "min_longitude": (legacy.min_longitude, -180.0),
              "max_latitude": (legacy.max_latitude, 90.0), "max_longitude": (legacy.max_longitude, 180.0)}
    if any(bound for bound, _open in bounds.values()):
        native.bbox.CopyFrom(pb.BoundingBox(**{field: bound or open_side for field, (bound, open_side) in bounds.items()}))
    for field, text in (("datetime_from", legacy.min_datetime), ("datetime_to", legacy.max_datetime)):
        if text:
            # The old clients wrote ISO times with seconds; the data's resolution is the minute.
            match = _SECONDS.fullmatch(text)
            setattr(native, field, match["minute"] if match else text)
    for field, value in (("min_concentration", legacy.min_concentration),
                         ("max_concentration", legacy.max_concentration),
                         ("min_aqi", legacy.min_aqi), ("max_aqi", legacy.max_aqi)):
        if value:
            setattr(native, field, float(value))
    return native


def chunk_size_of(request: fs.QueryRequest) -> int:
    """Rows per chunk asked for, or the default for 0."""
    size = request.max_results_per_chunk
    if size < 0 or size > MAX_LEGACY_CHUNK:
        raise InvalidQuery(f"max_results_per_chunk: must be in 0..{MAX_LEGACY_CHUNK} (0: {DEFAULT_LEGACY_CHUNK}), "
                           f"got {size}")
    return size or DEFAULT_LEGACY_CHUNK


@dataclass
class LegacyStatus:
    status: str
    chunks_delivered: int = 0
    total_chunks: int = 0
    ended: float | None = None  # monotonic, once it ended

    def response(self, request_id: int) -> fs.StatusResponse:
        return fs.StatusResponse(request_id=request_id, status=self.status, chunks_delivered=self.chunks_delivered,
                                 total_chunks=self.total_chunks)


class LegacyStatuses:
    """The legacy requests by id, while they run and STATUS_KEEP_SECONDS after. Any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, keep_seconds: float = STATUS_KEEP_SECONDS,
                 limit: int = MAX_KEPT):
        self._clock = clock
        self._keep = keep_seconds
        self._limit = limit
        self._lock = threading.Lock()
        self._by_id: OrderedDict[int, LegacyStatus] = OrderedDict()  # oldest first

    def start(self, request_id: int) -> LegacyStatus | None:
        """A new request's status; None while one with that id runs."""
        with self._lock:
            self._forget_old()
            running = self._by_id.get(request_id)
            if running is not None and running.ended is None:
                return None
            status = self._by_id[request_id] = LegacyStatus(PENDING)
            self._by_id.move_to_end(request_id)
        return status

    def progress(self, status: LegacyStatus, *, delivered: int = 0, total: int = 0) -> None:
        """The request streams: `delivered` chunks more, and `total` once it is known."""
        with self._lock:
            if status.ended is None and status.status != CANCELLED:
                status.status = PROCESSING
            status.chunks_delivered += delivered
            status.total_chunks = total or status.total_chunks

    def cancel(self, status: LegacyStatus) -> None:
        with self._lock:
            if status.ended is None:
                status.status = CANCELLED

    def end(self, status: LegacyStatus, outcome: str) -> None:
        """The request ended as `outcome`, unless it ended already or was cancelled."""
        with self._lock:
            if status.ended is not None:
                return
            if status.status != CANCELLED:
                status.status = outcome
            status.ended = self._clock()

    def forget(self, request_id: int, status: LegacyStatus) -> None:
        """A request refused before it ran (no room, say): it has no status to ask about."""
        with self._lock:
            if self._by_id.get(request_id) is status:
                del self._by_id[request_id]

    def response(self, request_id: int, status: LegacyStatus) -> fs.StatusResponse:
        with self._lock:
            return status.response(request_id)

    def find(self, request_id: int) -> LegacyStatus | None:
        with self._lock:
            self._forget_old()
            return self._by_id.get(request_id)

    def _forget_old(self) -> None:
        now = self._clock()
        for request_id in [r for r, s in self._by_id.items() if s.ended is not None and now - s.ended > self._keep]:
            del self._by_id[request_id]
        while len(self._by_id) > self._limit:
            oldest = next((r for r, s in self._by_id.items() if s.ended is not None), None)
            if oldest is None:
                break  # all running: each holds a request slot, which the native limits bound
            del self._by_id[oldest]


def _not_here(context: CallContext, what: str) -> NoReturn:
    context.abort(grpc.StatusCode.UNIMPLEMENTED, what)


def _old_topology(context: CallContext, method: str) -> NoReturn:
    _not_here(context, f"{method} belongs to the old system's topology; this system's daemons talk over "
                       f"airquality.v1.Node, which answers daemons only")


class LegacyHealth:
    """`FireQueryService.HealthCheck` on every daemon, and the methods only the gateway serves."""

    def __init__(self, config: DaemonConfig, lifecycle_status: Callable[[], str], gateway: str = "gateway_a"):
        self.config = config
        self._status = lifecycle_status  # "SERVING", "LOADING" or "STOPPING"
        self._gateway = gateway

    def HealthCheck(self, request: fs.HealthRequest, context: CallContext) -> fs.HealthResponse:
        serving = self._status() == "SERVING"
        return fs.HealthResponse(healthy=serving, status=HEALTHY if serving else UNHEALTHY,
                                 timestamp=int(time.time() * 1e6), process_id=process_letter(self.config.name),
                                 role=self.config.role)

    def InternalQuery(self, request: fs.InternalQueryRequest, context: CallContext) -> NoReturn:
        _old_topology(context, "InternalQuery")

    def Notify(self, request: fs.InternalQueryRequest, context: CallContext) -> NoReturn:
        _old_topology(context, "Notify")

    def _gateway_only(self, context: CallContext) -> NoReturn:
        _not_here(context, f"{self.config.name} answers no queries: ask the gateway ({self._gateway})")

    def Query(self, request: fs.QueryRequest, context: CallContext) -> NoReturn:
        self._gateway_only(context)

    def CancelRequest(self, request: fs.StatusRequest, context: CallContext) -> NoReturn:
        self._gateway_only(context)

    def GetStatus(self, request: fs.StatusRequest, context: CallContext) -> NoReturn:
        self._gateway_only(context)


class LegacyGateway:
    """`FireQueryService.Query`, `CancelRequest` and `GetStatus` at the gateway, on the native path."""

    def __init__(self, gateway: GatewayServicer, requests: RequestRegistry):
        self.gateway = gateway
        self.requests = requests
        self.statuses = LegacyStatuses()

    def Query(self, request: fs.QueryRequest, context: CallContext) -> Iterator[fs.QueryResponseChunk]:
        try:
            query_filter = native_filter(request.filter)
            parse_filter(query_filter)  # refused before it is a request with a status
            chunk_size = chunk_size_of(request)
        except InvalidQuery as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        status = self.statuses.start(request.request_id)
        if status is None:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, f"request {request.request_id} is running already")
        outcome = CANCELLED  # unless it ends: a client gone, or an error, stops it here
        try:
            if request.query_type == COUNT:
                yield self._count(request, query_filter, status, context)
            else:
                yield from self._rows(request, query_filter, chunk_size, status, context)
            outcome = COMPLETED
        except BaseException:
            if status.status == PENDING:  # refused before it ran (no room, or not serving)
                self.statuses.forget(request.request_id, status)
            raise
        finally:
            self.statuses.end(status, outcome)

    def _count(self, request: fs.QueryRequest, query_filter: pb.QueryFilter, status: LegacyStatus,
               context: CallContext) -> fs.QueryResponseChunk:
        answer = self.gateway.Aggregate(pb.AggregateRequest(request_id=ID_PREFIX + str(request.request_id),
                                                            filter=query_filter), context)
        self.statuses.progress(status)
        if not answer.complete:
            self.statuses.end(status, COMPLETED)  # it ran to its end; the answer is what is partial
            _incomplete(context, answer.missing_partitions)
        self.statuses.progress(status, delivered=1, total=1)
        return fs.QueryResponseChunk(request_id=request.request_id, chunk_number=0, is_last_chunk=True, total_chunks=1,
                                     total_results=sum(group.rows for group in answer.groups))

    def _rows(self, request: fs.QueryRequest, query_filter: pb.QueryFilter, chunk_size: int,
              status: LegacyStatus, context: CallContext) -> Iterator[fs.QueryResponseChunk]:
        native = pb.QueryRequest(request_id=ID_PREFIX + str(request.request_id), filter=query_filter,
                                 chunk_size=chunk_size)
        held: fs.QueryResponseChunk | None = None  # sent once the next shows it is not the last
        rows = 0
        chunks = 0  # sent so far
        decoder = RowDecoder()
        for payload in self.gateway.Query(native, context):
            self.statuses.progress(status)
            message = payload if isinstance(payload, pb.QueryResponse) else pb.QueryResponse.FromString(payload)
            if message.is_last_chunk:
                # A chunk counts as delivered once handed to gRPC: this generator resumes only when
                # gRPC asks for the next, after the client may already have asked for the status.
                if not message.complete:
                    if held is not None:
                        self.statuses.progress(status, delivered=1)
                        yield held
                    self.statuses.end(status, COMPLETED)  # it ran to its end; the answer is what is partial
                    _incomplete(context, message.missing_partitions)
                last = held or fs.QueryResponseChunk(request_id=request.request_id, chunk_number=0)
                last.is_last_chunk = True
                last.total_chunks = last.chunk_number + 1
                last.total_results = rows
                self.statuses.progress(status, delivered=1, total=last.total_chunks)
                yield last
                return
            if held is not None:
                chunks += 1
                self.statuses.progress(status, delivered=1)
                yield held
            batch = decoder.decode(message.columns, message.partition)
            rows += len(batch)
            held = fs.QueryResponseChunk(request_id=request.request_id, chunk_number=chunks,
                                         measurements=batch.to_measurements(fs.FireMeasurement))

    def CancelRequest(self, request: fs.StatusRequest, context: CallContext) -> fs.StatusResponse:
        status = self._find(request.request_id, context)
        if status.ended is None:
            try:
                cancelled = self.requests.cancel(ID_PREFIX + str(request.request_id),
                                                 caller_of(context.auth_context()))
            except NotOwner as refused:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, str(refused))
            if cancelled:
                self.statuses.cancel(status)
        return self.statuses.response(request.request_id, status)

    def GetStatus(self, request: fs.StatusRequest, context: CallContext) -> fs.StatusResponse:
        return self.statuses.response(request.request_id, self._find(request.request_id, context))

    def _find(self, request_id: int, context: CallContext) -> LegacyStatus:
        status = self.statuses.find(request_id)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no request {request_id} running or ended in the last "
                                                     f"{STATUS_KEEP_SECONDS:g} s")
        return status


def _incomplete(context: CallContext, missing: Iterable[str]) -> NoReturn:
    names = ", ".join(missing)
    context.abort(grpc.StatusCode.UNAVAILABLE, f"incomplete answer: no copy of partition(s) {names} could be "
                                               f"read (daemons down); the rows sent are exact for the others")
