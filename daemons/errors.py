"""The one way an error becomes text in an event, a partition status or a health reason.

gRPC errors read as `CODE: details`, so operators see the status code that gRPC tools print;
anything else as `TypeName: message`. Test fakes need not subclass grpc's classes: anything with
`code()` and `details()` reads as a gRPC error.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import grpc


@runtime_checkable
class RpcStatus(Protocol):
    """What every failed gRPC call (sync or asyncio) offers, and what fakes imitate."""

    def code(self) -> grpc.StatusCode: ...

    def details(self) -> str | None: ...


def status_code(error: object) -> grpc.StatusCode | None:
    """The gRPC status code an error carries, or None for errors that did not come from a call."""
    return error.code() if isinstance(error, RpcStatus) else None


def error_parts(error: object) -> tuple[str, str]:
    """(the gRPC code's name, or the exception's type name; the details, or the message)."""
    if isinstance(error, RpcStatus):
        return error.code().name, str(error.details() or "")
    return type(error).__name__, str(error)


def describe_error(error: object) -> str:
    code, details = error_parts(error)
    return f"{code}: {details}"
