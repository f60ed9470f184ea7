"""The life of a request at one daemon (RequestRegistry) and the Cancellation it carries, with fake
call contexts whose `end()` runs the termination callbacks as gRPC does."""

from __future__ import annotations

import functools
import threading
from typing import Any

import grpc
import pytest

from daemons import events
from daemons.cancel import Cancellation
from daemons.events import EventRecorder
from daemons.fanout.routes import Progress
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.requests import RequestRegistry
from tests.unit.fakes import FakeContext, FakeRpcError


class Daemon:
    """A registry as a daemon holds one: serving, with a small limit, logging into memory."""

    def __init__(self, max_concurrent: int = 2, serving: bool = True):
        self.serving = threading.Event()
        if serving:
            self.serving.set()
        self.log = EventRecorder()
        self.registry = RequestRegistry("gateway_a", self.serving, max_concurrent, self.log)

    def finished(self) -> list[dict[str, Any]]:
        return self.log.of(events.QUERY_FINISHED)


def refused(daemon: Daemon, request_id: str, **how: Any) -> grpc.StatusCode:
    """The code a call is aborted with at admission."""
    with pytest.raises(FakeRpcError) as aborted:
        daemon.registry.admit(FakeContext(), request_id, **how)
    return aborted.value.code()


# -- admission -------------------------------------------------------------------------------------


@pytest.mark.parametrize("limited", [True, False])
def test_nothing_is_admitted_while_the_daemon_is_not_serving(limited: bool) -> None:
    daemon = Daemon(serving=False)
    assert refused(daemon, "q1", kind="query", limited=limited) is grpc.StatusCode.UNAVAILABLE
    assert daemon.registry.active == 0
    daemon.serving.set()
    daemon.registry.admit(FakeContext(), "q1", kind="query", limited=limited)
    assert daemon.registry.active == 1


def test_client_requests_beyond_the_limit_are_refused_until_one_ends() -> None:
    daemon = Daemon(max_concurrent=2)
    first = FakeContext()
    daemon.registry.admit(first, "q1", limited=True)
    daemon.registry.admit(FakeContext(), "q2", limited=True)
    assert refused(daemon, "q3", limited=True) is grpc.StatusCode.RESOURCE_EXHAUSTED
    first.end()
    daemon.registry.admit(FakeContext(), "q3", limited=True)
    assert daemon.registry.active == 2


def test_internal_requests_are_never_limited_nor_count_against_the_limit() -> None:
    daemon = Daemon(max_concurrent=1)
    daemon.registry.admit(FakeContext(), "q1", limited=True)
    for _ in range(5):
        daemon.registry.admit(FakeContext(), "from-parent")
    assert daemon.registry.active == 6
    assert refused(daemon, "q2", limited=True) is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_running_client_id_is_refused_and_free_again_once_its_call_ends() -> None:
    daemon = Daemon()
    call = FakeContext()
    daemon.registry.admit(call, "q1", kind="query", limited=True)
    assert refused(daemon, "q1", kind="query", limited=True) is grpc.StatusCode.ALREADY_EXISTS
    assert daemon.registry.active == 1
    call.end()
    daemon.registry.admit(FakeContext(), "q1", kind="query", limited=True)
    assert daemon.registry.active == 1


def test_internal_requests_with_one_id_coexist_with_each_other_and_with_a_client_request() -> None:
    daemon = Daemon()
    calls = [FakeContext() for _ in range(3)]
    first = daemon.registry.admit(calls[0], "q1")
    second = daemon.registry.admit(calls[1], "q1")  # a parent's retry after a failover
    daemon.registry.admit(calls[2], "q1", limited=True)
    assert first is not second
    assert daemon.registry.active == 3
    for count, call in zip([2, 1, 0], calls):
        call.end()
        assert daemon.registry.active == count


def test_a_call_that_ended_before_admission_is_aborted_cancelled_and_not_left_registered() -> None:
    daemon = Daemon()
    gone = FakeContext()
    gone.end()
    with pytest.raises(FakeRpcError) as aborted:
        daemon.registry.admit(gone, "q1", kind="query", limited=True)
    assert aborted.value.code() is grpc.StatusCode.CANCELLED
    assert daemon.registry.active == 0
    assert [event["outcome"] for event in daemon.finished()] == ["client_gone"]
    daemon.registry.admit(FakeContext(), "q1", kind="query", limited=True)  # the id is free


def test_the_request_carries_the_callers_deadline() -> None:
    daemon = Daemon()
    with_deadline = daemon.registry.admit(FakeContext(timeout=30.0), "q1", limited=True)
    without_deadline = daemon.registry.admit(FakeContext(), "q2", limited=True)
    remaining = with_deadline.deadline.remaining()
    assert remaining is not None and 29.0 < remaining <= 30.0
    assert without_deadline.deadline.at is None


# -- cancellation by id ----------------------------------------------------------------------------


def test_cancel_by_id_stops_the_requests_work_once_and_logs_it_as_cancelled() -> None:
    daemon = Daemon()
    call = FakeContext()
    request = daemon.registry.admit(call, "q1", kind="query", limited=True)
    stopped: list[str] = []
    request.cancellation.on_cancel(lambda: stopped.append("merge"))
    request.cancellation.on_cancel(lambda: stopped.append("child call"))
    request.outcome = "complete"  # whatever the servicer had got to

    assert daemon.registry.cancel("q1")
    assert stopped == ["merge", "child call"]
    assert request.cancellation.cancelled and request.cancel_requested
    assert daemon.registry.active == 1  # until the call itself ends
    assert daemon.finished() == []
    call.end()
    assert stopped == ["merge", "child call"]
    [finished] = daemon.finished()
    assert (finished["request_id"], finished["outcome"], finished["complete"]) == ("q1", "cancelled", False)
    assert daemon.registry.active == 0


def test_cancel_names_only_running_client_requests() -> None:
    daemon = Daemon()
    internal = daemon.registry.admit(FakeContext(), "q1")
    assert not daemon.registry.cancel("q1")  # calls from a parent are not cancelled by id
    assert not daemon.registry.cancel("nobody")
    assert not internal.cancellation.cancelled
    call = FakeContext()
    daemon.registry.admit(call, "q2", limited=True)
    call.end()
    assert not daemon.registry.cancel("q2")


def test_the_end_of_a_call_cancels_whatever_still_runs_for_it() -> None:
    daemon = Daemon()
    call = FakeContext()
    request = daemon.registry.admit(call, "q1")
    stopped = threading.Event()
    request.cancellation.on_cancel(stopped.set)
    call.end()
    assert stopped.is_set()


# -- query_finished ----------------------------------------------------------------------------------


def test_query_finished_reports_rows_outcome_and_missing_partitions() -> None:
    daemon = Daemon()
    call = FakeContext()
    request = daemon.registry.admit(call, "q1", kind="aggregate", limited=True)
    request.rows = 1234
    request.outcome = "partial"
    request.progress = Progress(expected=("aug10-17", "aug18-26", "sep14-24"))
    request.progress.record([pb.PartitionStatus(partition="aug10-17", complete=True),
                             pb.PartitionStatus(partition="aug18-26", complete=False, error="worker_c: gone")])
    call.end()
    [finished] = daemon.finished()
    seconds = finished.pop("seconds")
    assert finished == {"event": "query_finished", "level": "info", "request_id": "q1", "kind": "aggregate",
                        "rows": 1234, "complete": False, "missing_partitions": ["aug18-26", "sep14-24"],
                        "outcome": "partial"}
    assert isinstance(seconds, float) and seconds >= 0


def test_query_finished_says_complete_for_a_complete_answer() -> None:
    daemon = Daemon()
    call = FakeContext()
    request = daemon.registry.admit(call, "q1", kind="query", limited=True)
    request.outcome = "complete"
    request.progress = Progress(expected=("aug10-17",))
    request.progress.record([pb.PartitionStatus(partition="aug10-17", complete=True)])
    call.end()
    [finished] = daemon.finished()
    assert (finished["outcome"], finished["complete"], finished["missing_partitions"]) == ("complete", True, [])


def test_a_client_that_goes_away_before_the_answer_is_logged_as_client_gone() -> None:
    daemon = Daemon()
    call = FakeContext()
    daemon.registry.admit(call, "q1", kind="query", limited=True)
    call.end()
    [finished] = daemon.finished()
    assert (finished["outcome"], finished["complete"], finished["rows"], finished["missing_partitions"]) == (
        "client_gone", False, 0, [])


def test_requests_without_a_kind_are_not_logged() -> None:
    daemon = Daemon()
    call = FakeContext()
    daemon.registry.admit(call, "q1")
    call.end()
    assert daemon.log.events == []


# -- Cancellation ------------------------------------------------------------------------------------


def test_cancellation_runs_every_action_once_in_registration_order() -> None:
    cancellation = Cancellation()
    ran: list[int] = []
    for number in range(3):
        cancellation.on_cancel(functools.partial(ran.append, number))
    assert not cancellation.cancelled and ran == []
    assert cancellation.cancel()
    assert cancellation.cancelled and ran == [0, 1, 2]
    assert not cancellation.cancel()
    assert ran == [0, 1, 2]


def test_an_action_registered_after_cancel_runs_at_once_and_only_then() -> None:
    cancellation = Cancellation()
    cancellation.cancel()
    ran: list[str] = []
    cancellation.on_cancel(lambda: ran.append("late"))
    assert ran == ["late"]
    cancellation.cancel()
    assert ran == ["late"]


def test_cancel_racing_on_threads_cancels_once_and_runs_each_action_once() -> None:
    for _ in range(5):
        cancellation = Cancellation()
        ran: list[int] = []
        lock = threading.Lock()

        def record(number: int, ran: list[int] = ran, lock: threading.Lock = lock) -> None:
            with lock:
                ran.append(number)

        for number in range(50):
            cancellation.on_cancel(functools.partial(record, number))
        start = threading.Barrier(4)
        won: list[bool] = []

        def race(cancellation: Cancellation = cancellation, start: threading.Barrier = start,
                 won: list[bool] = won) -> None:
            start.wait()
            won.append(cancellation.cancel())

        threads = [threading.Thread(target=race) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        assert not any(thread.is_alive() for thread in threads)
        assert sorted(won) == [False] * 3 + [True]
        assert ran == list(range(50))
