"""The event logs over gRPC: Node.Events serves a daemon's own log, AirQuality.Events (the gateway)
merges every daemon's, so that one `bin/healthlog --gateway` watches a cluster whose daemons write
their logs on several hosts.

A daemon reads its log as healthlog reads a folder of them (LogFollower: rotation and truncation
survive), from where its reader asks (a LogPosition), so a reader that lost its stream asks again
and misses and repeats nothing (but the lines written to a log renamed away while the reader was
gone: it reads the new file from its start). A following stream says something at least every
HEARTBEAT_SECONDS. The gateway takes a daemon it has heard nothing from for SILENCE_LIMIT_SECONDS
(time spent waiting for the merge's own reader not counted) as unheard: a cut link sends nothing,
not even an error, and only a deadline shows it. It cancels that call and asks again on a new
connection, and tells its reader which daemons it cannot hear, and why, whenever that changes.

Event streams are admitted in a RequestRegistry of their own, MAX_EVENT_STREAMS at once and half
of them from one connection, so they never take a query's slot and a reader that stops reading is
cut off by the same sweep. Until callers are authenticated (issue 9), anyone who takes a daemon's
slots keeps the gateway from hearing it, and is told apart by nothing but its connections.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from daemons.channels import NODE_SERVICE, ReadStream, daemon_channel
from daemons.config import Link, TlsConfig
from daemons.errors import describe_error
from daemons.healthlog.follow import FilePosition, LogFollower, program_of
from daemons.healthlog.summary import EVENT
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.requests import CallContext, RequestRegistry

POLL_SECONDS = 0.1  # how often a following stream looks for new lines: as bin/healthlog does
HEARTBEAT_SECONDS = 1.0
SILENCE_LIMIT_SECONDS = 3 * HEARTBEAT_SECONDS
RETRY_SECONDS = 0.5  # after a daemon's stream failed, before asking it again
MAX_READ_BYTES = 256 * 1024  # of a log per message: a long history goes in slices
# Event streams served at once by one daemon, half of them from one connection. Each holds a server
# thread (the gateway's also a thread per daemon it merges), and a bin/healthlog --follow holds
# one at every daemon.
MAX_EVENT_STREAMS = 16
# A request names a few event types (healthlog names two); a list of millions, parsed into a set
# on every poll, held the interpreter for 1.5 s a poll and made healthy daemons look hung.
MAX_EVENT_NAMES = 32
MAX_EVENT_NAME_BYTES = 64
# Per merged stream: daemons' messages waiting for a slow reader, each at most MAX_READ_BYTES of
# lines, so at most 4 MB per stream at the gateway.
QUEUED_MESSAGES = 16

Messages = Iterator[pb.EventsResponse]
Cancel = Callable[[], None]
Opener = Callable[[pb.EventsRequest, threading.Event], tuple[Messages, Cancel]]


def request_problem(request: pb.EventsRequest) -> str | None:
    """What is wrong with an EventsRequest, or None."""
    if len(request.event_names) > MAX_EVENT_NAMES:
        return f"event_names: {len(request.event_names)} names, more than {MAX_EVENT_NAMES}"
    if any(len(name.encode()) > MAX_EVENT_NAME_BYTES for name in request.event_names):
        return f"event_names: a name longer than {MAX_EVENT_NAME_BYTES} bytes"
    return None


def _event_name(line: str) -> Any:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event.get(EVENT) if isinstance(event, dict) else None


def wanted_lines(lines: list[str], names: frozenset[str]) -> list[str]:
    """The lines holding an event of one of `names`; every line when none is named. Only the name
    is read: whether the event is whole is for the reader to judge, as it does with files."""
    if not names:
        return lines
    return [line for line in lines if _event_name(line) in names]


def _file_position(position: pb.LogPosition) -> FilePosition:
    return FilePosition(position.file_id, position.offset, position.head)


def log_messages(daemon: str, log_file: Path, request: pb.EventsRequest, ended: threading.Event,
                 clock: Callable[[], float] = time.monotonic) -> Messages:
    """Node.Events's messages for one log file, named `<program>.log`: its lines from the position
    the request gives for `daemon` (else from the start) until caught up, or, following, until
    `ended` is set."""
    program = program_of(log_file)
    if program is None:
        raise ValueError(f"{daemon}'s log_file {log_file} is not named <name>.log, which the log reader needs")
    names = frozenset(request.event_names)
    with LogFollower(log_file.parent, [program], MAX_READ_BYTES) as follower:
        for position in request.resume:
            if position.daemon == daemon:
                follower.resume(program, _file_position(position))
        last_sent = -math.inf
        while not ended.is_set():
            lines = wanted_lines([line for _, line in follower.poll()], names)
            now = clock()
            if lines or now - last_sent >= HEARTBEAT_SECONDS:
                at = follower.position(program) or FilePosition(0, 0, b"")
                yield pb.EventsResponse(daemon=daemon, lines=lines, position=pb.LogPosition(
                    daemon=daemon, file_id=at.file_id, offset=at.offset, head=at.head))
                last_sent = now
            if follower.behind:
                continue
            if not request.follow:
                return
            ended.wait(POLL_SECONDS)


def _admitted(registry: RequestRegistry, request: pb.EventsRequest, context: CallContext) -> threading.Event:
    """Checks and admits an event stream; returns what is set when the call ends."""
    problem = request_problem(request)
    if problem is not None:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
    registry.admit(context, uuid.uuid4().hex)
    ended = threading.Event()
    if not context.add_callback(ended.set):
        ended.set()  # over already
    return ended


class LogStreams:
    """Node.Events: this daemon's event log."""

    def __init__(self, daemon: str, log_file: Path, registry: RequestRegistry):
        self.daemon = daemon
        self.log_file = log_file
        self.registry = registry

    def open(self, request: pb.EventsRequest, ended: threading.Event) -> tuple[Messages, Cancel]:
        """An Opener of this log, for the gateway's merge: read in place, ended by `ended` alone."""
        return log_messages(self.daemon, self.log_file, request, ended), lambda: None

    def Events(self, request: pb.EventsRequest, context: CallContext) -> Messages:
        if program_of(self.log_file) is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{self.daemon}'s log_file {self.log_file} is not named <name>.log, which the log reader needs")
        ended = _admitted(self.registry, request, context)
        yield from log_messages(self.daemon, self.log_file, request, ended)


class Hearing:
    """Which daemons a merged stream hears from, and why not: pure, fed with what happens. Nothing
    is reported until every daemon has been heard or given up on, so that a reader is not told
    all are heard before any has spoken."""

    def __init__(self, daemons: Sequence[str]):
        self.daemons = list(daemons)
        self._unheard: dict[str, str] = {}  # daemon -> why
        self._pending = set(daemons)  # not heard from yet, nor given up on
        self._changed = True

    def heard(self, daemon: str) -> None:
        self._pending.discard(daemon)
        if self._unheard.pop(daemon, None) is not None:
            self._changed = True

    def lost(self, daemon: str, why: str) -> None:
        """Not heard, for `why`: the first reason stands until it is heard again, so that a daemon
        behind a cut, whose every new attempt fails a little differently, is reported once."""
        self._pending.discard(daemon)
        if daemon not in self._unheard:
            self._unheard[daemon] = why
            self._changed = True

    def change(self) -> pb.Hearing | None:
        """What is heard now, if every daemon was heard or given up on and that changed since the
        last call; else None."""
        if self._pending or not self._changed:
            return None
        self._changed = False
        return pb.Hearing(heard=[name for name in self.daemons if name not in self._unheard],
                          unheard=[f"{name}: {why}" for name, why in self._unheard.items()])


class _Source:
    """One daemon's log, read for a merged stream on a thread of its own. Its messages go to the
    merge's queue, then ("lost", why) when a call fails or is cancelled for its silence, and
    ("done", None) when the thread ends, whatever ends it; following, it asks again after each
    failure, from the last position it got.

    Locking: `_lock` guards the current call's cancel and whether it was cancelled (and why), which
    the merge's thread sets while this one opens and reads calls.
    """

    def __init__(self, daemon: str, open_stream: Opener, request: pb.EventsRequest,
                 out: queue.Queue[tuple[str, str, Any]], stopped: threading.Event,
                 clock: Callable[[], float] = time.monotonic):
        self.daemon = daemon
        self._open = open_stream
        self._request = request
        self._out = out
        self._stopped = stopped
        self._clock = clock
        self._last_word = clock()  # when its daemon last said something, or its call was opened
        self._waiting_for_merge = False  # a full queue: no silence of the daemon's
        self._lock = threading.Lock()
        self._cancel: Cancel = lambda: None
        self._cancelled_for: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"events-{daemon}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def silent_seconds(self, now: float) -> float:
        return 0.0 if self._waiting_for_merge or not self._thread.is_alive() else now - self._last_word

    def cancel(self, why: str) -> None:
        """Ends the current call, for `why`; following, the source asks again at once."""
        with self._lock:
            if self._cancelled_for is not None:
                return
            self._cancelled_for, cancel = why, self._cancel
        cancel()

    def _put(self, kind: str, payload: Any) -> bool:
        """Hands an item to the merge; False if the merged stream has ended meanwhile."""
        self._waiting_for_merge = True
        try:
            while not self._stopped.is_set():
                try:
                    self._out.put((kind, self.daemon, payload), timeout=POLL_SECONDS)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            self._last_word = self._clock()
            self._waiting_for_merge = False

    def _run(self) -> None:
        resume = [p for p in self._request.resume if p.daemon == self.daemon]
        try:
            while not self._stopped.is_set():
                resume, why, cancelled = self._read_once(resume)
                if why is None or self._stopped.is_set() or not self._put("lost", why) or not self._request.follow:
                    break
                if not cancelled:  # a call cancelled for its silence is asked again at once
                    self._stopped.wait(RETRY_SECONDS)
        finally:
            self._put("done", None)  # the merge takes until every source is done, or has ended

    def _read_once(self, resume: list[pb.LogPosition]) -> tuple[list[pb.LogPosition], str | None, bool]:
        """One call, read to its end: (the position to ask again from, why it failed or None when
        it was read to its end, whether it was cancelled)."""
        with self._lock:
            self._cancelled_for, self._cancel = None, lambda: None
        self._last_word = self._clock()
        request = pb.EventsRequest(follow=self._request.follow, event_names=self._request.event_names, resume=resume)
        why: str | None
        try:
            messages, cancel = self._open(request, self._stopped)
            with self._lock:
                self._cancel = cancel
                cancelled = self._cancelled_for is not None
            if cancelled:
                cancel()  # cancelled while it was being opened
            for message in messages:
                resume = [message.position]
                if not self._put("message", message):
                    cancel()
                    break
            why = None if not self._request.follow else "it ended the stream"
        except Exception as error:  # gRPC's, or the gateway's own log unreadable: a daemon not heard
            why = describe_error(error)
        with self._lock:
            cancelled_for = self._cancelled_for
        return resume, cancelled_for or why, cancelled_for is not None


def remote_opener(daemon: str, address: str, tls: TlsConfig | None) -> Opener:
    """Opens `daemon`'s Node.Events on a connection of its own each time, so that asking again
    after a silence does not wait on a connection attempt stuck behind a cut link."""

    def open_stream(request: pb.EventsRequest, stopped: threading.Event) -> tuple[Messages, Cancel]:
        channel = daemon_channel(address, daemon, tls)
        events = channel.unary_stream(f"/{NODE_SERVICE}/Events", request_serializer=pb.EventsRequest.SerializeToString,
                                      response_deserializer=pb.EventsResponse.FromString)
        call = events(request)

        def messages() -> Messages:
            try:
                yield from ReadStream(call)
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
                 tls: TlsConfig | None = None, openers: dict[str, Opener] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.registry = registry
        self.clock = clock
        self.openers: dict[str, Opener] = openers if openers is not None else {
            own.daemon: own.open, **{link.name: remote_opener(link.name, str(link.address), tls) for link in members}}

    def Events(self, request: pb.EventsRequest, context: CallContext) -> Messages:
        yield from self.stream(request, _admitted(self.registry, request, context))

    def stream(self, request: pb.EventsRequest, stopped: threading.Event) -> Messages:
        """The merged messages, until `stopped` is set (for a call, when it ends): also read in the
        gateway itself, by the dashboard."""
        out: queue.Queue[tuple[str, str, Any]] = queue.Queue(QUEUED_MESSAGES)
        sources = [_Source(name, opener, request, out, stopped, self.clock) for name, opener in self.openers.items()]
        try:
            for source in sources:
                source.start()
            yield from self._merge(sources, Hearing([source.daemon for source in sources]), out, stopped)
        finally:
            stopped.set()
            for source in sources:
                source.cancel("the merged stream ended")

    def _merge(self, sources: list[_Source], hearing: Hearing, out: queue.Queue[tuple[str, str, Any]],
               stopped: threading.Event) -> Messages:
        running = len(sources)
        while running and not stopped.is_set():
            try:
                kind, daemon, payload = out.get(timeout=POLL_SECONDS)
            except queue.Empty:
                kind = ""
            if kind == "message":
                hearing.heard(daemon)
            elif kind == "lost":
                hearing.lost(daemon, payload)
            elif kind == "done":
                running -= 1
            change = hearing.change()
            if change is not None:
                yield pb.EventsResponse(hearing=change)
            if kind == "message":
                yield payload
            now = self.clock()
            for source in sources:
                if source.silent_seconds(now) > SILENCE_LIMIT_SECONDS:
                    source.cancel(f"nothing heard for {SILENCE_LIMIT_SECONDS:g} s")
