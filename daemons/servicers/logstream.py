"""The event logs over gRPC: Node.Events serves a daemon's own log, AirQuality.Events (the gateway)
merges every daemon's, so that one `bin/healthlog --gateway` watches a cluster whose daemons write
their logs on several hosts.

A daemon reads its log as healthlog reads a folder of them (LogFollower: rotation and truncation
survive), from where its reader asks (a LogPosition), so a reader that lost its stream asks again
and misses and repeats nothing. A following stream says something at least every
HEARTBEAT_SECONDS. The gateway takes a daemon it has heard nothing from for SILENCE_LIMIT_SECONDS
as unheard (a cut link sends nothing, not even an error: only a deadline shows it), cancels the
call and asks again on a new connection, and tells its reader which daemons it cannot hear, and
why, whenever that changes. Streams are admitted like client requests, MAX_EVENT_STREAMS at once,
in a registry of their own, so they never take a query's slot and a reader that stops reading is
cut off by the same sweep.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from daemons.channels import CHANNEL_OPTIONS, NODE_SERVICE
from daemons.config import Link
from daemons.errors import describe_error
from daemons.healthlog.follow import LogFollower, program_of
from daemons.healthlog.summary import EVENT
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.requests import CallContext, RequestRegistry

POLL_SECONDS = 0.1  # how often a following stream looks for new lines: as bin/healthlog does
HEARTBEAT_SECONDS = 1.0
SILENCE_LIMIT_SECONDS = 3 * HEARTBEAT_SECONDS
RETRY_SECONDS = 0.5  # after a daemon's stream failed, before asking it again
MAX_READ_BYTES = 256 * 1024  # of a log per message: a long history goes in slices
# Event streams served at once by one daemon. Each holds a server thread (the gateway's also one
# thread per daemon it merges), and a bin/healthlog --follow holds one at every daemon.
MAX_EVENT_STREAMS = 8
# Per merged stream: daemons' messages waiting for a slow reader, each at most MAX_READ_BYTES of
# lines, so at most 4 MB per stream and 32 MB for all at the gateway.
QUEUED_MESSAGES = 16

Messages = Iterator[pb.EventsResponse]
Opener = Callable[[pb.EventsRequest, threading.Event], tuple[Messages, Callable[[], None]]]


def _event_name(line: str) -> Any:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event.get(EVENT) if isinstance(event, dict) else None


def wanted_lines(lines: Iterable[str], event_names: Iterable[str]) -> list[str]:
    """The lines holding an event of one of `event_names`; every line when none is named. Only the
    name is read: whether the event is whole is for the reader to judge, as it does with files."""
    names = frozenset(event_names)
    if not names:
        return list(lines)
    return [line for line in lines if _event_name(line) in names]


def log_messages(daemon: str, log_file: Path, request: pb.EventsRequest, ended: threading.Event,
                 clock: Callable[[], float] = time.monotonic) -> Messages:
    """Node.Events's messages for one log file: its lines from the position the request gives for
    `daemon` (else from the start) until caught up, or, following, until `ended` is set."""
    program = program_of(log_file)
    assert program is not None, "LogStreams refuses a log whose name it cannot follow"
    with LogFollower(log_file.parent, [program], MAX_READ_BYTES) as follower:
        for position in request.resume:
            if position.daemon == daemon:
                follower.resume(program, position.file_id, position.offset)
        last_sent = -math.inf
        while not ended.is_set():
            lines = wanted_lines((line for _, line in follower.poll()), request.event_names)
            now = clock()
            if lines or now - last_sent >= HEARTBEAT_SECONDS:
                file_id, offset = follower.position(program) or (0, 0)
                yield pb.EventsResponse(daemon=daemon, lines=lines,
                                        position=pb.LogPosition(daemon=daemon, file_id=file_id, offset=offset))
                last_sent = now
            if follower.behind:
                continue
            if not request.follow:
                return
            ended.wait(POLL_SECONDS)


class _Calls:
    """The ending signal of every running stream of one kind, so that a stopping daemon ends them
    at once rather than after its shutdown grace period."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[threading.Event] = set()
        self._stopping = False

    def start(self, context: CallContext) -> threading.Event:
        ended = threading.Event()
        context.add_callback(ended.set)
        with self._lock:
            if self._stopping:
                ended.set()
            self._running.add(ended)
        return ended

    def finish(self, ended: threading.Event) -> None:
        with self._lock:
            self._running.discard(ended)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            running = list(self._running)
        for ended in running:
            ended.set()


class LogStreams:
    """Node.Events: this daemon's event log."""

    def __init__(self, daemon: str, log_file: Path, registry: RequestRegistry):
        self.daemon = daemon
        self.log_file = log_file
        self.registry = registry
        self._calls = _Calls()

    def stop(self) -> None:
        """The daemon is stopping: every stream ends now (its reader asks again, from where it was)."""
        self._calls.stop()

    def messages(self, request: pb.EventsRequest, ended: threading.Event) -> Messages:
        return log_messages(self.daemon, self.log_file, request, ended)

    def open(self, request: pb.EventsRequest, ended: threading.Event) -> tuple[Messages, Callable[[], None]]:
        """An Opener of this log for a merged stream: read in place, ended by `ended` alone."""
        return self.messages(request, ended), lambda: None

    def Events(self, request: pb.EventsRequest, context: CallContext) -> Messages:
        if program_of(self.log_file) is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{self.daemon}'s log_file {self.log_file} is not named <name>.log, which the log reader needs")
        self.registry.admit(context, uuid.uuid4().hex, limited=True)
        ended = self._calls.start(context)
        try:
            yield from self.messages(request, ended)
        finally:
            self._calls.finish(ended)


class Hearing:
    """Which daemons a merged stream hears from, and why not: pure, fed with what happens."""

    def __init__(self, daemons: Sequence[str]):
        self.daemons = list(daemons)
        self._unheard: dict[str, str] = {}  # daemon -> why
        self._changed = True  # the first message says what is heard

    def heard(self, daemon: str) -> None:
        if self._unheard.pop(daemon, None) is not None:
            self._changed = True

    def lost(self, daemon: str, why: str) -> None:
        """Not heard, for `why`: the first reason stands until it is heard again, so that a daemon
        behind a cut, whose every new attempt fails a little differently, is reported once."""
        if daemon not in self._unheard:
            self._unheard[daemon] = why
            self._changed = True

    def change(self) -> pb.Hearing | None:
        """What is heard now, if it changed since the last call; else None."""
        if not self._changed:
            return None
        self._changed = False
        return pb.Hearing(heard=[name for name in self.daemons if name not in self._unheard],
                          unheard=[f"{name}: {why}" for name, why in self._unheard.items()])


class _Source:
    """One daemon's log, read for a merged stream on a thread of its own: its messages go to the
    merge's queue, and its failures (as ("lost", why)); following, it asks again after each,
    from the last position it got. `silent_seconds` is how long its current call has said nothing."""

    def __init__(self, daemon: str, open_stream: Opener, request: pb.EventsRequest,
                 out: queue.Queue[tuple[str, str, Any]], stopped: threading.Event,
                 clock: Callable[[], float] = time.monotonic):
        self.daemon = daemon
        self._open = open_stream
        self._request = request
        self._out = out
        self._stopped = stopped
        self._clock = clock
        self._last_word = clock()
        self._cancel: Callable[[], None] = lambda: None
        self._cancelled = False
        self.finished = False
        self._thread = threading.Thread(target=self._run, name=f"events-{daemon}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def silent_seconds(self, now: float) -> float:
        return 0.0 if self.finished else now - self._last_word

    def cancel(self) -> None:
        """Ends the current call; following, the source asks again at once."""
        self._cancelled = True
        self._cancel()

    def _put(self, kind: str, payload: Any) -> None:
        while not self._stopped.is_set():
            try:
                self._out.put((kind, self.daemon, payload), timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        resume = [p for p in self._request.resume if p.daemon == self.daemon]
        while not self._stopped.is_set():
            self._cancelled = False
            self._last_word = self._clock()
            request = pb.EventsRequest(follow=self._request.follow, event_names=self._request.event_names,
                                       resume=resume)
            why = "its stream ended: it is stopping"
            try:
                messages, self._cancel = self._open(request, self._stopped)
                for message in messages:
                    self._last_word = self._clock()
                    resume = [message.position]
                    self._put("message", message)
                if not request.follow:
                    break
            except grpc.RpcError as error:
                why = describe_error(error)
            if not self._cancelled:  # a cancelled call's silence is reported already
                self._put("lost", why)
            if not request.follow:
                break
            if not self._cancelled:
                self._stopped.wait(RETRY_SECONDS)
        self.finished = True
        self._put("done", None)


def remote_opener(address: str) -> Opener:
    """Opens a daemon's Node.Events on a connection of its own each time, so that asking again
    after a silence does not wait on a connection attempt stuck behind a cut link."""

    def open_stream(request: pb.EventsRequest, stopped: threading.Event) -> tuple[Messages, Callable[[], None]]:
        channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        events = channel.unary_stream(f"/{NODE_SERVICE}/Events", request_serializer=pb.EventsRequest.SerializeToString,
                                      response_deserializer=pb.EventsResponse.FromString)
        call = events(request)

        def messages() -> Messages:
            try:
                yield from call
            finally:
                channel.close()

        def cancel() -> None:
            call.cancel()
            channel.close()

        return messages(), cancel

    return open_stream


class ClusterEvents:
    """AirQuality.Events: the gateway's own log and every daemon's below it, merged."""

    def __init__(self, own: LogStreams, members: Sequence[Link], registry: RequestRegistry,
                 openers: dict[str, Opener] | None = None, clock: Callable[[], float] = time.monotonic):
        self.own = own
        self.registry = registry
        self.clock = clock
        self.openers: dict[str, Opener] = openers if openers is not None else {
            own.daemon: own.open, **{link.name: remote_opener(str(link.address)) for link in members}}
        self._calls = _Calls()

    def stop(self) -> None:
        self._calls.stop()

    def Events(self, request: pb.EventsRequest, context: CallContext) -> Messages:
        self.registry.admit(context, uuid.uuid4().hex, limited=True)
        stopped = self._calls.start(context)
        out: queue.Queue[tuple[str, str, Any]] = queue.Queue(QUEUED_MESSAGES)
        sources = [_Source(name, opener, request, out, stopped, self.clock) for name, opener in self.openers.items()]
        hearing = Hearing([source.daemon for source in sources])
        try:
            for source in sources:
                source.start()
            yield from self._merge(sources, hearing, out, stopped)
        finally:
            stopped.set()
            for source in sources:
                source.cancel()
            self._calls.finish(stopped)

    def _merge(self, sources: list[_Source], hearing: Hearing, out: queue.Queue[tuple[str, str, Any]],
               stopped: threading.Event) -> Messages:
        running = len(sources)
        while running and not stopped.is_set():
            change = hearing.change()
            if change is not None:
                yield pb.EventsResponse(hearing=change)
            try:
                kind, daemon, payload = out.get(timeout=POLL_SECONDS)
            except queue.Empty:
                kind = ""
            if kind == "message":
                hearing.heard(daemon)
                change = hearing.change()
                if change is not None:
                    yield pb.EventsResponse(hearing=change)
                yield payload
            elif kind == "lost":
                hearing.lost(daemon, payload)
            elif kind == "done":
                running -= 1
            now = self.clock()
            for source in sources:
                if source.silent_seconds(now) > SILENCE_LIMIT_SECONDS:
                    hearing.lost(source.daemon, f"nothing heard for {SILENCE_LIMIT_SECONDS:g} s")
                    source.cancel()
        change = hearing.change()
        if change is not None:
            yield pb.EventsResponse(hearing=change)
