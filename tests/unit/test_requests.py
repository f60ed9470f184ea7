"""The life of a request at one daemon (RequestRegistry) and the Cancellation it carries, with fake
call contexts whose `end()` runs the termination callbacks as gRPC does, and a clock tests move."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from daemons import events
from daemons.cancel import Cancellation
from daemons.events import EventRecorder
from daemons.fanout.routes import Progress
from daemons.fanout.slots import WorkSlots
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.housekeeping import TrimSchedule
from daemons.servicers.requests import (
    PARENT_IDLE_FACTOR,
    CallContext,
    Request,
    RequestRegistry,
    StreamReader,
    cut_off_due,
)
from tests.unit.fakes import FakeContext, FakeRpcError


class Now:
    """A clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.time = 1000.0

    def __call__(self) -> float:
        return self.time


IDLE_TIMEOUT = 30.0
TIMEOUT = 10.0  # for a thread a test waits on


class Daemon:
    """A registry as a daemon holds one: serving, with small limits, logging into memory, on a fake clock."""

    def __init__(self, max_concurrent: int = 2, serving: bool = True, max_internal: int = 4,
                 work_slots: WorkSlots | None = None):
        self.serving = threading.Event()
        if serving:
            self.serving.set()
        self.log = EventRecorder()
        self.now = Now()
        self.registry = RequestRegistry("gateway_a", self.serving, max_concurrent, self.log,
                                        max_internal=max_internal, idle_timeout_seconds=IDLE_TIMEOUT, clock=self.now,
                                        work_slots=work_slots)

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


def test_calls_from_parents_have_a_limit_of_their_own() -> None:
    daemon = Daemon(max_concurrent=1, max_internal=3)
    daemon.registry.admit(FakeContext(), "q1", limited=True)
    parents = [FakeContext(peer=f"ipv4:127.0.0.1:{40001 + i}") for i in range(3)]
    for context in parents:
        daemon.registry.admit(context, "from-parent")
    assert daemon.registry.active == 4
    with pytest.raises(FakeRpcError) as aborted:
        daemon.registry.admit(FakeContext(peer="ipv4:127.0.0.1:40009"), "from-parent")
    assert aborted.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "3 calls from parents" in aborted.value.details()
    assert "query.max_internal_requests" in aborted.value.details()
    assert refused(daemon, "q2", limited=True) is grpc.StatusCode.RESOURCE_EXHAUSTED  # the clients' own limit
    parents[0].end()
    daemon.registry.admit(FakeContext(peer="ipv4:127.0.0.1:40009"), "from-parent")
    assert daemon.registry.active == 4


def test_one_connection_gets_at_most_half_the_slots_for_parents() -> None:
    """A caller flooding one channel with calls it never reads leaves the real parent room."""
    daemon = Daemon(max_internal=4)
    flood = [FakeContext(peer="ipv4:127.0.0.1:50000") for _ in range(2)]
    for context in flood:
        daemon.registry.admit(context, "flood")
    with pytest.raises(FakeRpcError) as aborted:
        daemon.registry.admit(FakeContext(peer="ipv4:127.0.0.1:50000"), "flood")
    assert aborted.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "this connection" in aborted.value.details()
    parent = FakeContext(peer="ipv4:127.0.0.1:40000")
    daemon.registry.admit(parent, "from-parent")  # the gateway's connection still gets its calls in
    flood[0].end()
    daemon.registry.admit(FakeContext(peer="ipv4:127.0.0.1:50000"), "flood")


def test_a_full_client_limit_leaves_calls_from_parents_their_slots() -> None:
    daemon = Daemon(max_concurrent=1, max_internal=1)
    daemon.registry.admit(FakeContext(), "q1", limited=True)
    with pytest.raises(FakeRpcError) as aborted:
        daemon.registry.admit(FakeContext(), "q2", limited=True)
    assert "query.max_concurrent_requests" in aborted.value.details()
    daemon.registry.admit(FakeContext(), "from-parent")
    assert daemon.registry.active == 2


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
    assert daemon.registry.active == 0  # the slot is free at once, whether or not the client reads again
    assert not call.cancelled_here  # not a watched stream waiting for its reader: the servicer ends it
    assert daemon.finished() == []  # until the call itself ends
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


# -- a reader that stops reading --------------------------------------------------------------------


class Stream:
    """A watched streamed answer driven as gRPC drives it: `take()` is gRPC asking for the next
    message, which it does only once the reader had room for the previous one. `servicer` yields
    the messages after admitting the request (by default, one after another without end)."""

    def __init__(self, daemon: Daemon, request_id: str = "q1", *, limited: bool = True,
                 servicer: Callable[[Request], Iterator[int]] | None = None):
        self.context = FakeContext()
        self.admitted: list[Request] = []

        def method(request_id: str, context: CallContext) -> Iterator[int]:
            request = daemon.registry.admit(context, request_id, kind="query" if limited else None, limited=limited)
            self.admitted.append(request)
            yield from (servicer or (lambda _: itertools.count()))(request)

        self.messages = daemon.registry.watch_reader(method, "query" if limited else "scan")(request_id, self.context)

    @property
    def request(self) -> Request:
        return self.admitted[0]

    def take(self) -> int:
        return next(self.messages)


def test_a_reader_is_idle_only_while_a_message_waits_for_it() -> None:
    now = Now()
    reader = StreamReader("query", now)
    while_producing: list[float | None] = []

    def produce() -> Iterator[str]:
        yield "first"
        now.time += 100  # the servicer takes its time: not the reader's
        while_producing.append(reader.idle_seconds())
        yield "second"

    messages = reader.follow(produce())
    assert reader.idle_seconds() is None
    assert next(messages) == "first"
    now.time += 5
    assert reader.idle_seconds() == 5
    assert next(messages) == "second"
    assert while_producing == [None]
    assert reader.idle_seconds() == 0
    assert list(messages) == []
    assert reader.idle_seconds() is None


def test_a_stream_produces_in_a_work_slot_once_admitted_and_gives_it_back_while_its_reader_reads() -> None:
    daemon = Daemon(work_slots=WorkSlots(1))
    slots = daemon.registry.work_slots
    assert slots is not None
    free_while_producing: list[int] = []

    def produce(request: Request) -> Iterator[int]:
        for message in range(2):
            free_while_producing.append(slots.free)
            yield message
        raise RuntimeError("the servicer failed")

    stream = Stream(daemon, servicer=produce)
    assert stream.take() == 0
    assert slots.free == 1  # the message waits for its reader: someone else may work
    assert stream.take() == 1
    with pytest.raises(RuntimeError):
        stream.take()
    assert free_while_producing == [0, 0]
    assert slots.free == 1  # given back when the servicer failed too


def test_calls_beyond_the_limit_are_refused_without_waiting_for_a_work_slot() -> None:
    daemon = Daemon(max_concurrent=1, work_slots=WorkSlots(1))
    slots = daemon.registry.work_slots
    assert slots is not None
    daemon.registry.admit(FakeContext(), "q1", kind="query", limited=True)
    busy, done = threading.Event(), threading.Event()

    def hold_the_only_slot() -> None:
        slots.enter()
        busy.set()
        done.wait(TIMEOUT)
        slots.leave()

    holder = threading.Thread(target=hold_the_only_slot, daemon=True)
    holder.start()
    assert busy.wait(TIMEOUT)
    try:
        with pytest.raises(FakeRpcError) as refused:
            Stream(daemon, "q2").take()
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        done.set()
        holder.join(TIMEOUT)


@pytest.mark.parametrize("idle, cancelled, due", [
    (None, False, False),  # the servicer is producing
    (None, True, False),  # cancelled, but it will see that itself
    (29.9, False, False),
    (30.0, False, True),
    (0.0, True, True),  # cancelled and waiting for a reader that may never read
])
def test_cut_off_decision(idle: float | None, cancelled: bool, due: bool) -> None:
    assert cut_off_due(idle, 30.0, cancelled) is due


def test_a_client_that_stops_reading_is_cut_off_after_the_idle_timeout() -> None:
    daemon = Daemon()
    stream = Stream(daemon)
    stream.take()
    daemon.now.time += IDLE_TIMEOUT - 1
    assert daemon.registry.sweep() == []
    stream.take()  # it read again: the clock starts over
    daemon.now.time += IDLE_TIMEOUT - 1
    assert daemon.registry.sweep() == []
    daemon.now.time += 1
    assert daemon.registry.sweep() == [stream.request]

    assert stream.context.cancelled_here and stream.request.cancellation.cancelled
    assert daemon.registry.active == 0
    [cut] = daemon.log.of(events.REQUEST_IDLE_CUT_OFF)
    assert cut == {"event": "request_idle_cut_off", "level": "warning", "request_id": "q1", "kind": "query",
                   "idle_seconds": IDLE_TIMEOUT}
    assert daemon.registry.sweep() == []  # once
    [finished] = daemon.finished()
    assert (finished["request_id"], finished["outcome"]) == ("q1", "idle_cut_off")


def test_a_servicer_still_producing_is_never_cut_off() -> None:
    daemon = Daemon()
    swept: list[list[Request]] = []

    def slow(request: Request) -> Iterator[int]:
        yield 0
        daemon.now.time += 10 * IDLE_TIMEOUT  # e.g. waiting on a child; the sweep runs meanwhile
        swept.append(daemon.registry.sweep())
        yield 1

    stream = Stream(daemon, servicer=slow)
    assert [stream.take(), stream.take()] == [0, 1]
    assert swept == [[]]
    assert not stream.context.cancelled_here


def test_calls_from_parents_are_cut_off_after_a_longer_idle_time() -> None:
    daemon = Daemon()
    stream = Stream(daemon, "from-parent", limited=False)
    stream.take()
    daemon.now.time += IDLE_TIMEOUT * PARENT_IDLE_FACTOR - 1
    assert daemon.registry.sweep() == []
    daemon.now.time += 1
    assert daemon.registry.sweep() == [stream.request]
    assert [e["kind"] for e in daemon.log.of(events.REQUEST_IDLE_CUT_OFF)] == ["scan"]
    assert daemon.registry.active == 0


def test_cancel_by_id_ends_a_stream_waiting_for_its_reader_at_once() -> None:
    daemon = Daemon()
    stream = Stream(daemon)
    stream.take()
    daemon.now.time += 1
    assert daemon.registry.cancel("q1")
    assert stream.context.cancelled_here and stream.context.ended
    assert daemon.registry.active == 0
    assert daemon.log.of(events.REQUEST_IDLE_CUT_OFF) == []  # a cancel, not an idle reader
    assert [e["outcome"] for e in daemon.finished()] == ["cancelled"]


def test_a_cancelled_stream_that_yields_once_more_is_ended_by_the_next_sweep() -> None:
    daemon = Daemon()

    def cancelled_while_producing(request: Request) -> Iterator[int]:
        yield 0
        assert daemon.registry.cancel(request.request_id)  # arrives while the servicer produces
        yield 1  # a message it had in hand

    stream = Stream(daemon, servicer=cancelled_while_producing)
    assert [stream.take(), stream.take()] == [0, 1]
    assert not stream.context.cancelled_here
    assert daemon.registry.active == 0
    assert daemon.registry.sweep() == [stream.request]
    assert stream.context.cancelled_here
    assert daemon.log.of(events.REQUEST_IDLE_CUT_OFF) == []


def test_a_cancelled_id_is_free_at_once_and_its_old_call_ending_later_leaves_the_new_one_alone() -> None:
    daemon = Daemon()
    old = FakeContext()
    daemon.registry.admit(old, "q1", kind="query", limited=True)
    assert daemon.registry.cancel("q1")
    new = daemon.registry.admit(FakeContext(), "q1", kind="query", limited=True)
    old.end()
    assert daemon.registry.active == 1
    assert daemon.registry.cancel("q1")
    assert new.cancel_requested


def test_a_watched_method_sees_the_calls_context_and_its_aborts_pass_through() -> None:
    daemon = Daemon(serving=False)
    stream = Stream(daemon)
    with pytest.raises(FakeRpcError) as aborted:
        stream.take()
    assert aborted.value.code() is grpc.StatusCode.UNAVAILABLE
    assert daemon.registry.sweep() == [] and daemon.registry.active == 0


def test_only_watched_methods_have_a_reader() -> None:
    daemon = Daemon()
    assert daemon.registry.admit(FakeContext(), "q1", limited=True).reader is None
    stream = Stream(daemon, "q2")
    stream.take()
    assert stream.request.reader is not None and stream.request.reader.kind == "query"


# -- returning memory --------------------------------------------------------------------------------


def test_memory_is_trimmed_after_requests_end_at_most_once_per_interval() -> None:
    now = Now()
    schedule = TrimSchedule(2.0, now)
    assert not schedule.due(ended=0)  # nothing ended: nothing to return
    assert schedule.due(ended=3)
    assert not schedule.due(ended=3)
    now.time += 1.0
    assert not schedule.due(ended=5)  # too soon
    now.time += 1.0
    assert schedule.due(ended=5)
    now.time += 60.0
    assert not schedule.due(ended=5)  # idle: no work at all


def test_the_registry_counts_ended_requests_once_each() -> None:
    daemon = Daemon()
    call = FakeContext()
    daemon.registry.admit(call, "q1", kind="query", limited=True)
    daemon.registry.cancel("q1")
    call.end()
    parent = FakeContext()
    daemon.registry.admit(parent, "from-parent")
    parent.end()
    assert daemon.registry.ended == 2


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
                        "pruned_partitions": [], "outcome": "partial"}
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
