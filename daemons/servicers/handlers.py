"""gRPC method handlers for the contract's services, built from its descriptor.

Handlers are generic rather than generated servicer base classes, so that a response may be bytes
already: forwarded chunks are sent as the bytes received.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message

from daemons.rpc import airquality_pb2 as pb


def _serialize(response: bytes | Message) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def service_handler(service_name: str, *servicers: Any) -> grpc.GenericRpcHandler:
    """Method handlers for one service of the contract; each method is served by the first of
    `servicers` that implements it."""
    service = pb.DESCRIPTOR.services_by_name[service_name]
    handlers = {}
    for method in service.methods:
        request_type = message_factory.GetMessageClass(method.input_type)
        kind = grpc.unary_stream_rpc_method_handler if method.server_streaming else grpc.unary_unary_rpc_method_handler
        implementation = next(getattr(s, method.name) for s in servicers if hasattr(s, method.name))
        handlers[method.name] = kind(implementation, request_deserializer=request_type.FromString,
                                     response_serializer=_serialize)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
