"""Method handlers: an unexpected exception is one request_failed event and an INTERNAL answer;
a deliberate abort, an answer and a client that goes away pass through untouched."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from daemons import events
from daemons.events import EventRecorder
from daemons.query.filter import MAX_REQUEST_ID
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.handlers import service_handler
from tests.unit.fakes import FakeContext, FakeRpcError

PACKAGE = pb.DESCRIPTOR.package


class Servicer:
    """AirQuality methods that answer, abort or fail as each test sets them up."""

    def __init__(self) -> None:
        self.seen_timeout: float | None = None
        self.closed = False

    def Aggregate(self, request: pb.AggregateRequest, context: Any) -> pb.AggregateResponse:
        self.seen_timeout = context.time_remaining()
        if request.request_id == "abort":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "group_by[0]: unknown key 'month'")
        if request.request_id.startswith("fail"):
            raise KeyError("missing")  # the bug under test: an exception no code path expects
        return pb.AggregateResponse(request_id=request.request_id, complete=True)

    def Query(self, request: pb.QueryRequest, context: Any) -> Iterator[pb.QueryResponse]:
        try:
            if request.request_id == "fail-at-once":
                raise ZeroDivisionError("division by zero")
            for chunk in range(2):
                yield pb.QueryResponse(request_id=request.request_id, chunk_number=chunk)
            if request.request_id == "abort":
                context.abort(grpc.StatusCode.CANCELLED, "request abort was cancelled")
            if request.request_id == "fail":
                raise ValueError("column aqi holds 3 values for 4 rows")
            yield pb.QueryResponse(request_id=request.request_id, chunk_number=2, is_last_chunk=True)
        finally:
            self.closed = True

    def Cancel(self, request: pb.CancelRequest, context: Any) -> pb.CancelResponse:
        return pb.CancelResponse(cancelled=True)

    Events = GetHealthStatus = Cancel  # the service's other methods, never called here


class NodeStatus:
    """GetStatus fails; the Node service's other methods are never called here."""

    def GetStatus(self, request: pb.StatusRequest, context: Any) -> pb.StatusResponse:
        raise RuntimeError("status is broken")

    Scan = ScanAggregate = HealthCheck = GetHealthStatus = Events = Servicer.Cancel


def behavior(service: str, method: str, *servicers: Any) -> tuple[Any, EventRecorder]:
    """The function gRPC would call for `method`, and the log it writes to."""
    log = EventRecorder()
    handler = service_handler(service, *servicers, log=log).service(
        SimpleNamespace(method=f"/{PACKAGE}.{service}/{method}", invocation_metadata=()))
    return handler.unary_stream or handler.unary_unary, log


def failure(call: Any) -> FakeRpcError:
    with pytest.raises(FakeRpcError) as caught:
        call()
    return caught.value


def test_an_answer_passes_through_and_the_servicer_sees_the_calls_context():
    servicer = Servicer()
    aggregate, log = behavior("AirQuality", "Aggregate", servicer)
    answer = aggregate(pb.AggregateRequest(request_id="r1"), FakeContext(timeout=7.5))
    assert answer == pb.AggregateResponse(request_id="r1", complete=True)
    assert servicer.seen_timeout == 7.5
    assert log.events == []


def test_an_unexpected_exception_is_logged_once_and_answered_internal_naming_the_request():
    aggregate, log = behavior("AirQuality", "Aggregate", Servicer())
    error = failure(lambda: aggregate(pb.AggregateRequest(request_id="fail-1"), FakeContext()))
    assert error.code() == grpc.StatusCode.INTERNAL
    assert error.details() == "internal error in AirQuality.Aggregate (request_id 'fail-1'); logged as request_failed"
    (event,) = log.events
    assert event["event"] == events.REQUEST_FAILED.name and event["level"] == "error"
    assert (event["method"], event["request_id"], event["error"]) == ("AirQuality.Aggregate", "fail-1",
                                                                      "KeyError: 'missing'")
    assert event["traceback"].startswith("Traceback (most recent call last):")
    assert "in Aggregate" in event["traceback"] and event["traceback"].rstrip().endswith("KeyError: 'missing'")


def test_a_deliberate_abort_keeps_its_code_and_is_not_logged():
    aggregate, log = behavior("AirQuality", "Aggregate", Servicer())
    error = failure(lambda: aggregate(pb.AggregateRequest(request_id="abort"), FakeContext()))
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "group_by[0]: unknown key 'month'")
    assert log.events == []


def test_a_stream_that_fails_midway_delivers_what_it_sent_then_internal():
    servicer = Servicer()
    query, log = behavior("AirQuality", "Query", servicer)
    stream = query(pb.QueryRequest(request_id="fail"), FakeContext())
    assert [next(stream).chunk_number, next(stream).chunk_number] == [0, 1]
    error = failure(lambda: next(stream))
    assert error.code() == grpc.StatusCode.INTERNAL and "AirQuality.Query (request_id 'fail')" in error.details()
    assert [(e["method"], e["error"]) for e in log.of(events.REQUEST_FAILED)] == [
        ("AirQuality.Query", "ValueError: column aqi holds 3 values for 4 rows")]
    assert servicer.closed


def test_a_stream_that_fails_before_its_first_message_is_answered_internal():
    query, log = behavior("AirQuality", "Query", Servicer())
    stream = query(pb.QueryRequest(request_id="fail-at-once"), FakeContext())
    assert failure(lambda: next(stream)).code() == grpc.StatusCode.INTERNAL
    assert [e["error"] for e in log.events] == ["ZeroDivisionError: division by zero"]


def test_a_stream_that_aborts_midway_keeps_its_code_and_is_not_logged():
    query, log = behavior("AirQuality", "Query", Servicer())
    stream = query(pb.QueryRequest(request_id="abort"), FakeContext())
    assert len([next(stream), next(stream)]) == 2
    assert failure(lambda: next(stream)).code() == grpc.StatusCode.CANCELLED
    assert log.events == []


def test_a_stream_whose_client_went_away_is_closed_quietly():
    servicer = Servicer()
    query, log = behavior("AirQuality", "Query", servicer)
    stream = query(pb.QueryRequest(request_id="r1"), FakeContext())
    next(stream)
    stream.close()  # what gRPC does to the answer of a cancelled call
    assert servicer.closed and log.events == []


def test_a_request_without_an_id_is_named_by_its_method():
    get_status, log = behavior("Node", "GetStatus", NodeStatus())
    error = failure(lambda: get_status(pb.StatusRequest(), FakeContext()))
    assert error.details() == "internal error in Node.GetStatus; logged as request_failed"
    assert [(e["method"], e["request_id"]) for e in log.events] == [("Node.GetStatus", "")]


def test_a_long_request_id_is_cut_short_in_the_answer_and_the_event():
    aggregate, log = behavior("AirQuality", "Aggregate", Servicer())
    request_id = "fail" + "x" * 1_000_000
    error = failure(lambda: aggregate(pb.AggregateRequest(request_id=request_id), FakeContext()))
    assert len(error.details()) < 200 and f"({MAX_REQUEST_ID:,} characters)" in error.details()
    assert log.events[0]["request_id"] == request_id[:MAX_REQUEST_ID]


def test_through_a_real_grpc_server_the_client_sees_internal_and_the_abort_codes():
    """gRPC's own abort raises a bare Exception: only the recorded abort tells it from a bug."""
    log = EventRecorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([service_handler("AirQuality", Servicer(), log=log)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            aggregate = channel.unary_unary(f"/{PACKAGE}.AirQuality/Aggregate",
                                            request_serializer=pb.AggregateRequest.SerializeToString,
                                            response_deserializer=pb.AggregateResponse.FromString)
            query = channel.unary_stream(f"/{PACKAGE}.AirQuality/Query",
                                         request_serializer=pb.QueryRequest.SerializeToString,
                                         response_deserializer=pb.QueryResponse.FromString)
            assert aggregate(pb.AggregateRequest(request_id="ok"), timeout=10).complete
            outcomes = []
            for call in (lambda: aggregate(pb.AggregateRequest(request_id="fail-2"), timeout=10),
                         lambda: aggregate(pb.AggregateRequest(request_id="abort"), timeout=10),
                         lambda: list(query(pb.QueryRequest(request_id="fail"), timeout=10)),
                         lambda: list(query(pb.QueryRequest(request_id="abort"), timeout=10))):
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                outcomes.append((caught.value.code(), caught.value.details()))
    finally:
        server.stop(None)
    assert outcomes == [
        (grpc.StatusCode.INTERNAL, "internal error in AirQuality.Aggregate (request_id 'fail-2'); logged as request_failed"),
        (grpc.StatusCode.INVALID_ARGUMENT, "group_by[0]: unknown key 'month'"),
        (grpc.StatusCode.INTERNAL, "internal error in AirQuality.Query (request_id 'fail'); logged as request_failed"),
        (grpc.StatusCode.CANCELLED, "request abort was cancelled")]
    assert [(e["method"], e["request_id"]) for e in log.of(events.REQUEST_FAILED)] == [
        ("AirQuality.Aggregate", "fail-2"), ("AirQuality.Query", "fail")]
