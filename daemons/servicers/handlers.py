"""gRPC method handlers for the contract's services, built from its descriptor.

Handlers are generic rather than generated servicer base classes, so that a response may be bytes
already: forwarded chunks are sent as the bytes received.

Every method is wrapped so that an exception no code path expected is logged once, as a
`request_failed` event with its traceback, and answered INTERNAL with a short message naming the
request. gRPC itself would answer UNKNOWN and log the traceback to a logger that has only a
NullHandler: nowhere. A deliberate `context.abort` raises too; the servicer sees the context
through a wrapper that records the abort, so the two are told apart without gRPC's private state.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, Protocol

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor
from google.protobuf.message import Message

from daemons import events
from daemons.errors import describe_error
from daemons.events import EventLog
from daemons.query.filter import MAX_REQUEST_ID
from daemons.quoting import quoted
from daemons.rpc import airquality_pb2 as pb


def _serialize(response: bytes | Message) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


class _Abortable(Protocol):
    """What gRPC's servicer context offers to end a call with a status; both raise."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn: ...

    def abort_with_status(self, status: Any) -> NoReturn: ...


class _AbortRecordingContext:
    """A call's servicer context that notes whether the servicer aborted; all else is the context's own."""

    def __init__(self, context: _Abortable):
        self._context = context
        self.aborted = False

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.aborted = True
        self._context.abort(code, details)

    def abort_with_status(self, status: Any) -> NoReturn:
        self.aborted = True
        self._context.abort_with_status(status)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def _answer_failure(method: str, request: Message, context: _Abortable, log: EventLog, error: Exception) -> NoReturn:
    """Logs an unexpected exception of a call once, with its traceback, and answers INTERNAL."""
    # Requests that name themselves do so in request_id; a valid id is at most MAX_REQUEST_ID long.
    request_id = str(getattr(request, "request_id", ""))[:MAX_REQUEST_ID]
    events.REQUEST_FAILED.emit(log, method=method, request_id=request_id, error=describe_error(error),
                               traceback="".join(traceback.format_exception(error)))
    named = f" (request_id {quoted(request_id)})" if request_id else ""
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}{named}; logged as request_failed")


def _unary(method: str, implementation: Callable[..., Any], log: EventLog) -> Callable[..., Any]:
    def handle(request: Message, context: _Abortable) -> Any:
        recording = _AbortRecordingContext(context)
        try:
            return implementation(request, recording)
        except Exception as error:
            if recording.aborted:
                raise
            _answer_failure(method, request, context, log, error)

    return handle


def _streaming(method: str, implementation: Callable[..., Any], log: EventLog) -> Callable[..., Iterator[Any]]:
    def handle(request: Message, context: _Abortable) -> Iterator[Any]:
        recording = _AbortRecordingContext(context)
        try:
            yield from implementation(request, recording)
        except Exception as error:
            if recording.aborted:
                raise
            _answer_failure(method, request, context, log, error)

    return handle


def service_handler(service_name: str, *servicers: Any, log: EventLog,
                    contract: FileDescriptor = pb.DESCRIPTOR) -> grpc.GenericRpcHandler:
    """Method handlers for one service of a contract (airquality.v1's unless told); each method is
    served by the first of `servicers` that implements it, and its unexpected exceptions are
    logged to `log`."""
    service = contract.services_by_name[service_name]
    handlers = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        implementation = next(getattr(s, method.name) for s in servicers if hasattr(s, method.name))
        name = f"{service.name}.{method.name}"
        if method.server_streaming:
            handler = grpc.unary_stream_rpc_method_handler(_streaming(name, implementation, log),
                                                           request_deserializer=request_type.FromString,
                                                           response_serializer=_serialize)
        else:
            handler = grpc.unary_unary_rpc_method_handler(_unary(name, implementation, log),
                                                          request_deserializer=request_type.FromString,
                                                          response_serializer=_serialize)
        handlers[method.name] = handler
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
