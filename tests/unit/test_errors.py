"""How an error reads in events, partition statuses and health reasons: gRPC's `CODE: details`
for anything with code() and details(), `TypeName: message` for everything else."""

from __future__ import annotations

import grpc
import pytest

from daemons.errors import describe_error, error_parts, status_code
from tests.unit.fakes import FakeRpcError, finished_call


class CallLike:
    """Not an exception and not a grpc class: only code() and details(), as a finished call offers."""

    def __init__(self, code: grpc.StatusCode, details: str | None):
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str | None:
        return self._details


def test_a_grpc_error_reads_as_its_code_and_details() -> None:
    error = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses")
    assert status_code(error) is grpc.StatusCode.UNAVAILABLE
    assert error_parts(error) == ("UNAVAILABLE", "failed to connect to all addresses")
    assert describe_error(error) == "UNAVAILABLE: failed to connect to all addresses"


@pytest.mark.parametrize("error, parts", [
    (ValueError("bad chunk size"), ("ValueError", "bad chunk size")),
    (TimeoutError(), ("TimeoutError", "")),
    (ConnectionRefusedError(111, "Connection refused"), ("ConnectionRefusedError", "[Errno 111] Connection refused")),
])
def test_any_other_exception_reads_as_its_type_and_message(error: Exception, parts: tuple[str, str]) -> None:
    assert status_code(error) is None
    assert error_parts(error) == parts
    assert describe_error(error) == f"{parts[0]}: {parts[1]}"


def test_anything_with_code_and_details_reads_as_a_grpc_error() -> None:
    call = CallLike(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    assert status_code(call) is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error_parts(call) == ("DEADLINE_EXCEEDED", "Deadline Exceeded")
    assert describe_error(call) == "DEADLINE_EXCEEDED: Deadline Exceeded"


def test_a_failed_call_future_reads_as_the_error_it_failed_with() -> None:
    call = finished_call(error=FakeRpcError(grpc.StatusCode.RESOURCE_EXHAUSTED, "2 requests are running; retry shortly"))
    assert describe_error(call) == "RESOURCE_EXHAUSTED: 2 requests are running; retry shortly"


def test_an_object_with_only_one_of_code_and_details_is_not_a_grpc_error() -> None:
    class CodeOnly(Exception):
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode.INTERNAL

    error = CodeOnly("half an interface")
    assert status_code(error) is None
    assert describe_error(error) == "CodeOnly: half an interface"


def test_a_call_without_details_does_not_read_as_none() -> None:
    assert error_parts(CallLike(grpc.StatusCode.CANCELLED, None)) == ("CANCELLED", "")
