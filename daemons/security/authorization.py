"""The authorization policy (identity.py) applied to every call a daemon serving mutual TLS takes:
one server interceptor, so that no service, the standard health service and reflection included,
is left out by forgetting it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from daemons.security.identity import caller_of, refusal


def _guarded(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(request: Any, context: grpc.ServicerContext) -> Any:
        why = refusal(method, caller_of(context.auth_context()))
        if why is not None:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
        return behavior(request, context)
    return guarded


class Authorization(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc's classes are untyped
    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        return handler._replace(**{kind: _guarded(details.method, getattr(handler, kind))
                                   for kind in kinds if getattr(handler, kind) is not None})
