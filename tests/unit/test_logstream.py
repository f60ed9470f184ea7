"""Event logs over gRPC (daemons/servicers/logstream.py) through its seams: log files in a temporary
folder, openers standing in for the daemons' Node.Events, a clock moved by hand."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from daemons.healthlog.follow import LogFollower
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers import logstream
from daemons.servicers.logstream import ClusterEvents, Hearing, LogStreams, log_messages, wanted_lines
from daemons.servicers.requests import RequestRegistry
from tests.unit.fakes import FakeContext, FakeRpcError
from tests.waiting import wait_for


def _line(event: str, number: int) -> str:
    return json.dumps({"timestamp": f"2026-11-30T10:00:{number:02d}.000000Z", "level": "info", "event": event,
                       "daemon": "worker_c", "n": number})


def _write(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as log:
        log.writelines(line + "\n" for line in lines)


def test_wanted_lines_keeps_the_named_events_and_everything_when_none_is_named():
    lines = [_line("health_transition", 1), _line("query_finished", 2), "not json"]
    assert wanted_lines(lines, frozenset(["health_transition"])) == lines[:1]
    assert wanted_lines(lines, frozenset()) == lines


def test_the_follower_resumes_at_a_position_in_the_same_file_and_from_the_start_of_another(tmp_path):
    log = tmp_path / "worker_c.log"
    _write(log, _line("a", 1), _line("b", 2))
    with LogFollower(tmp_path, ["worker_c"]) as follower:
        assert len(follower.poll()) == 2
        position = follower.position("worker_c")
    assert position is not None and position.offset == log.stat().st_size
    _write(log, _line("c", 3))
    with LogFollower(tmp_path, ["worker_c"]) as follower:
        follower.resume("worker_c", position)
        assert [json.loads(line)["n"] for _, line in follower.poll()] == [3]
    for made_up in (replace(position, offset=position.offset - 5),  # in the middle of a line
                    replace(position, offset=10**9),  # past the end
                    replace(position, head=b"{another file")):  # the inode reused by another file
        with LogFollower(tmp_path, ["worker_c"]) as follower:
            follower.resume("worker_c", made_up)
            assert [json.loads(line)["n"] for _, line in follower.poll()] == [1, 2, 3]
    os.rename(log, tmp_path / "worker_c.log.1")  # rotated: the position names the old file
    _write(log, _line("d", 4))
    with LogFollower(tmp_path, ["worker_c"]) as follower:
        follower.resume("worker_c", position)
        assert [json.loads(line)["n"] for _, line in follower.poll()] == [4]


def test_the_follower_reads_a_bounded_slice_per_poll_and_says_it_is_behind(tmp_path):
    _write(tmp_path / "worker_c.log", *(_line("a", n) for n in range(50)))
    _write(tmp_path / "leader_b.log", _line("b", 1))
    read: list[str] = []
    with LogFollower(tmp_path, ["worker_c"], max_read_bytes=1000) as follower:
        while True:
            lines = follower.poll()
            assert sum(len(line) + 1 for _, line in lines) <= 1000 + len(_line("a", 1))  # and a line begun before
            read += [line for _, line in lines]
            if not follower.behind:
                break
    assert [json.loads(line)["n"] for line in read] == list(range(50))  # leader_b's log is not read


def _messages(log: Path, request: pb.EventsRequest) -> list[pb.EventsResponse]:
    return list(log_messages("worker_c", log, request, threading.Event()))


def test_a_daemon_log_read_to_its_end_carries_on_from_the_position_it_gave(tmp_path):
    log = tmp_path / "worker_c.log"
    _write(log, _line("health_transition", 1), _line("query_finished", 2))
    first = _messages(log, pb.EventsRequest(event_names=["health_transition"]))
    assert [line for m in first for line in m.lines] == [_line("health_transition", 1)]
    assert first[-1].position.offset == log.stat().st_size  # past the line it left out too
    _write(log, _line("health_transition", 3))
    again = _messages(log, pb.EventsRequest(event_names=["health_transition"], resume=[first[-1].position]))
    assert [line for m in again for line in m.lines] == [_line("health_transition", 3)]


def test_a_missing_log_is_an_empty_one(tmp_path):
    (only,) = _messages(tmp_path / "worker_c.log", pb.EventsRequest())
    assert not only.lines and only.daemon == "worker_c"


def test_a_following_stream_sends_new_lines_and_ends_when_the_daemon_stops(tmp_path):
    log = tmp_path / "worker_c.log"
    registry = _registry(2)
    streams = LogStreams("worker_c", log, registry)
    context = FakeContext()
    messages = streams.Events(pb.EventsRequest(follow=True), context)
    assert not next(messages).lines  # at once, so the reader knows it is heard
    _write(log, _line("a", 1))
    assert next(m for m in messages if m.lines).lines == [_line("a", 1)]
    registry.end_all()  # the daemon is stopping
    assert all(not m.lines for m in messages)  # it ends: at most a last heartbeat


def test_event_streams_beyond_the_limit_are_refused(tmp_path):
    registry = _registry(4)
    streams = LogStreams("worker_c", tmp_path / "worker_c.log", registry)
    admitted = [streams.Events(pb.EventsRequest(follow=True), FakeContext(peer=peer))
                for peer in ("ipv4:10.0.0.1:1", "ipv4:10.0.0.1:1", "ipv4:10.0.0.2:1", "ipv4:10.0.0.3:1")]
    for stream in admitted:
        next(stream)
    with pytest.raises(FakeRpcError) as refused:  # a fifth
        next(streams.Events(pb.EventsRequest(follow=True), FakeContext(peer="ipv4:10.0.0.4:1")))
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "4 event streams" in refused.value.details()
    registry.end_all()
    more = _registry(4)
    streams = LogStreams("worker_c", tmp_path / "worker_c.log", more)
    admitted = [streams.Events(pb.EventsRequest(follow=True), FakeContext(peer="ipv4:10.0.0.1:1")) for _ in range(2)]
    for stream in admitted:
        next(stream)
    with pytest.raises(FakeRpcError) as refused:  # a third from one connection
        next(streams.Events(pb.EventsRequest(follow=True), FakeContext(peer="ipv4:10.0.0.1:1")))
    assert "from this connection" in refused.value.details()
    more.end_all()


def test_a_request_naming_too_many_event_types_is_refused(tmp_path):
    streams = LogStreams("worker_c", tmp_path / "worker_c.log", _registry(4))
    for names in ([f"event_{n}" for n in range(logstream.MAX_EVENT_NAMES + 1)], ["x" * 65]):
        with pytest.raises(FakeRpcError) as refused:
            next(streams.Events(pb.EventsRequest(event_names=names), FakeContext()))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_hearing_reports_each_change_once():
    hearing = Hearing(["gateway_a", "worker_c"])
    hearing.heard("gateway_a")
    assert hearing.change() is None  # worker_c has not spoken yet
    hearing.heard("worker_c")
    assert list(hearing.change().heard) == ["gateway_a", "worker_c"]
    assert hearing.change() is None
    hearing.lost("worker_c", "UNAVAILABLE: refused")
    hearing.lost("worker_c", "UNAVAILABLE: no route to host")  # the next attempt, failing its own way
    change = hearing.change()
    assert list(change.heard) == ["gateway_a"] and list(change.unheard) == ["worker_c: UNAVAILABLE: refused"]
    assert hearing.change() is None
    hearing.heard("worker_c")
    assert list(hearing.change().unheard) == []


# -- the merge ----------------------------------------------------------------------------------------


def _registry(limit: int) -> RequestRegistry:
    return RequestRegistry("worker_c", _serving(), 0, log=_NoLog(), max_internal=limit, internal_calls="event streams")


def _serving() -> threading.Event:
    serving = threading.Event()
    serving.set()
    return serving


class _NoLog:
    def info(self, *args, **kwargs) -> None:
        pass

    warning = error = info


def _batch(daemon: str, *lines: str, offset: int = 0) -> pb.EventsResponse:
    return pb.EventsResponse(daemon=daemon, lines=list(lines), position=pb.LogPosition(daemon=daemon, offset=offset))


def _merged(openers: dict, request: pb.EventsRequest, clock=None) -> tuple[Iterator[pb.EventsResponse], FakeContext]:
    registry = _registry(4)
    own = LogStreams("gateway_a", Path("/nonexistent/gateway_a.log"), registry)
    merged = ClusterEvents(own, [], registry, openers=openers, **({"clock": clock} if clock else {}))
    context = FakeContext()
    return merged.Events(request, context), context


def test_a_merged_summary_has_every_daemon_heard_and_names_those_that_failed():
    def answers(request, stopped):
        return iter([_batch("leader_b", _line("a", 1)), _batch("leader_b", _line("a", 2))]), lambda: None

    def refuses(request, stopped):
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")

    messages, context = _merged({"leader_b": answers, "worker_c": refuses}, pb.EventsRequest())
    received = list(messages)
    assert [line for m in received for line in m.lines] == [_line("a", 1), _line("a", 2)]
    final = [m.hearing for m in received if m.HasField("hearing")][-1]
    assert list(final.unheard) == ["worker_c: UNAVAILABLE: connection refused"]
    context.end()


def test_a_silent_daemon_is_unheard_its_call_cancelled_and_asked_again_from_its_position(monkeypatch):
    monkeypatch.setattr(logstream, "RETRY_SECONDS", 0.01)
    time_now = [0.0]  # the clock moves only when told
    asked: list[pb.EventsRequest] = []
    cancelled = threading.Event()

    def hangs_then_answers(request, stopped):
        asked.append(request)
        if len(asked) == 1:
            def first() -> Iterator[pb.EventsResponse]:
                yield _batch("leader_e", _line("a", 1), offset=100)
                cancelled.wait(10)  # a cut link: nothing more, no error
                raise FakeRpcError(grpc.StatusCode.CANCELLED, "cancelled")
            return first(), cancelled.set
        def second() -> Iterator[pb.EventsResponse]:
            yield _batch("leader_e", _line("a", 2), offset=200)
            stopped.wait(10)  # following: the stream stays open
        return second(), lambda: None

    messages, context = _merged({"leader_e": hangs_then_answers}, pb.EventsRequest(follow=True),
                                clock=lambda: time_now[0])
    received: list[pb.EventsResponse] = []
    reader = threading.Thread(target=lambda: received.extend(messages), daemon=True)
    reader.start()
    wait_for(lambda: any(m.lines for m in received), 5, "the first line")
    time_now[0] += logstream.SILENCE_LIMIT_SECONDS + 0.1
    unheard = wait_for(lambda: [list(m.hearing.unheard) for m in received if m.hearing.unheard], 5, "leader_e unheard")
    assert unheard[0] == ["leader_e: nothing heard for 3 s"]
    wait_for(lambda: any(_line("a", 2) in m.lines for m in received), 5, "the line after the silence")
    assert asked[1].resume[0].offset == 100  # from where the first call got to
    assert [m.hearing for m in received if m.HasField("hearing")][-1].unheard == []
    context.end()
    reader.join(5)


def test_a_reader_that_pauses_gets_every_line_and_no_daemon_taken_for_silent():
    time_now = [0.0]

    produced = [0]

    def many(request, stopped):
        def batches() -> Iterator[pb.EventsResponse]:
            for n in range(200):
                produced[0] += 1
                yield _batch("leader_b", _line("a", n % 60), offset=n)
        return batches(), lambda: None

    messages, context = _merged({"leader_b": many, "worker_c": many}, pb.EventsRequest(), clock=lambda: time_now[0])
    received = [next(messages)]
    # Both sources wait on the full queue (one message each in hand), for a reader that paused:
    wait_for(lambda: produced[0] >= logstream.QUEUED_MESSAGES + 2, 5, "the queue to fill")
    time_now[0] += logstream.SILENCE_LIMIT_SECONDS * 3  # which is not the daemons' silence
    received += list(messages)
    assert sum(len(m.lines) for m in received) == 400
    assert [m.hearing for m in received if m.HasField("hearing")][-1].unheard == []
    context.end()


def test_a_source_failing_for_any_reason_is_named_and_the_summary_still_ends():
    def broken(request, stopped):
        raise OSError(24, "Too many open files")

    def answers(request, stopped):
        return iter([_batch("leader_b", _line("a", 1))]), lambda: None

    messages, context = _merged({"gateway_a": broken, "leader_b": answers}, pb.EventsRequest())
    received = list(messages)
    assert [m.hearing for m in received if m.HasField("hearing")][-1].unheard == [
        "gateway_a: OSError: [Errno 24] Too many open files"]
    context.end()


def test_a_renamed_log_is_read_to_its_end_in_bounded_slices_before_the_new_one(tmp_path):
    log = tmp_path / "worker_c.log"
    _write(log, *(_line("old", n % 60) for n in range(40)))
    read: list[str] = []
    with LogFollower(tmp_path, ["worker_c"], max_read_bytes=1000) as follower:
        read += [line for _, line in follower.poll()]
        os.rename(log, tmp_path / "worker_c.log.1")
        _write(log, _line("new", 1))
        while True:
            lines = [line for _, line in follower.poll()]
            assert sum(len(line) + 1 for line in lines) <= 1000 + len(_line("old", 1))
            read += lines
            if not lines and not follower.behind:
                break
    assert [json.loads(line)["event"] for line in read] == ["old"] * 40 + ["new"]
