"""The life of every RPC that does query work, in one place: the not-serving guard, admission,
the deadline, cancellation (by id, by a vanished client, at the end), cutting off a reader that
stopped reading, and the query_finished event.

Cleanup cannot live in a servicer's code path: a cancelled streaming call's generator is simply
never resumed. gRPC's termination callback is the one place every ending passes through, so a
request is registered with it the moment it is admitted. An admission slot is released at that
moment, or earlier, when the request is cancelled or cut off: a streamed answer whose client
stopped reading would otherwise hold its slot until the client itself goes away.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeVar

import grpc

from daemons import events
from daemons.cancel import Cancellation
from daemons.deadline import Deadline
from daemons.events import EventLog
from daemons.fanout.routes import Progress
from daemons.fanout.slots import WorkSlots
from daemons.quoting import quoted
from daemons.security.identity import Caller, caller_of, may_cancel

T = TypeVar("T")
Clock = Callable[[], float]
StreamMethod = Callable[[Any, Any], Iterator[Any]]  # a servicer's server-streaming method

# A call from a parent is read by the parent's merge, which takes from each of its sources in
# turn: in the shipped overlay a worker's stream gets one turn in at most three at leader_e, whose
# stream gets one in at most three at the gateway, so a client still reading within the limit can
# leave a worker's reader idle nine times as long. Parents cut off their own idle readers and
# cancel downstream; this longer limit only bounds callers of Node.Scan that are not our daemons.
PARENT_IDLE_FACTOR = 10
_ENDED: Any = object()  # a stream's messages are exhausted


class NotOwner(Exception):
    """A Cancel for a request another identity started."""

    def __init__(self, request_id: str):
        # Whose it is stays unsaid: one client learns nothing of another.
        super().__init__(f"request_id {quoted(request_id)} was started by another identity; only it may cancel it")


class CallContext(Protocol):
    """The part of grpc.ServicerContext a request uses (a fake in tests)."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn: ...

    def add_callback(self, callback: Any) -> bool: ...

    def time_remaining(self) -> float | None: ...

    def cancel(self) -> None: ...

    def peer(self) -> str: ...

    def auth_context(self) -> Mapping[str, Sequence[bytes]]: ...


class StreamReader:
    """When the reader of one streamed answer last took a message.

    gRPC's sync server asks a servicer's generator for the next message only once the previous
    one has been sent, and a send completes only when the reader's flow-control window has room
    for it: the time since a message was yielded and not yet taken is the time the reader has
    not read. Locking: none; `_waiting_since` is one float reference, replaced by the call's
    thread and read by the reaper's.
    """

    def __init__(self, kind: str, clock: Clock = time.monotonic, slots: WorkSlots | None = None):
        self.kind = kind  # what the stream answers ("query", "scan"), for the cut-off event
        self._clock = clock
        self._slots = slots
        self._waiting_since: float | None = None  # None while the servicer produces the next message

    def idle_seconds(self) -> float | None:
        """How long a yielded message has waited for the reader; None while none waits."""
        since = self._waiting_since
        return None if since is None else self._clock() - since

    def admitted(self) -> None:
        """The request was admitted: from here on it produces in one of the daemon's work slots,
        if it has them. Admission itself takes none, so calls beyond the limits are refused at
        once, however busy the slots are."""
        if self._slots is not None:
            self._slots.enter()

    def follow(self, messages: Iterator[T]) -> Iterator[T]:
        """`messages`, passed through, timing how long each waits to be taken; each after the
        first (which admits the request, see `admitted`) is produced in a work slot."""
        first = True
        while True:
            if self._slots is not None and not first:
                self._slots.enter()
            first = False
            try:
                message = next(messages, _ENDED)
            finally:
                if self._slots is not None:
                    self._slots.leave()
            if message is _ENDED:
                return
            self._waiting_since = self._clock()
            yield message
            self._waiting_since = None


class _ReadContext:
    """A call's context as a watched streaming method sees it: the same, carrying the call's
    StreamReader to `RequestRegistry.admit`."""

    def __init__(self, context: CallContext, reader: StreamReader):
        self._context = context
        self.reader = reader

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self._context.abort(code, details)

    def add_callback(self, callback: Any) -> bool:
        return self._context.add_callback(callback)

    def time_remaining(self) -> float | None:
        return self._context.time_remaining()

    def cancel(self) -> None:
        self._context.cancel()

    def peer(self) -> str:
        return self._context.peer()

    def auth_context(self) -> Mapping[str, Sequence[bytes]]:
        return self._context.auth_context()

    def __getattr__(self, name: str) -> Any:  # the rest of grpc.ServicerContext
        return getattr(self._context, name)


def cut_off_due(idle_seconds: float | None, limit_seconds: float, cancelled: bool) -> bool:
    """Whether to end a streamed answer whose message has waited `idle_seconds` for its reader
    (None: none waits): after `limit_seconds`, or at once for a cancelled request, whose servicer
    can do nothing more until a reader that may never read again takes the message."""
    if idle_seconds is None:
        return False
    return cancelled or idle_seconds >= limit_seconds


@dataclass(eq=False)  # identity: requests are kept in sets
class Request:
    request_id: str
    kind: str | None  # "query" or "aggregate": written as query_finished at the end; None: not logged
    deadline: Deadline
    context: CallContext
    limited: bool = False  # a client request (by id, against max_concurrent); else a parent's call
    peer: str = ""  # the connection it came on (gRPC's peer: address and port)
    owner: Caller | None = None  # who started a client request, by its certificate; None without TLS
    reader: StreamReader | None = None  # a streamed answer's reader, when the method is watched
    cancellation: Cancellation = field(default_factory=Cancellation)
    started: float = field(default_factory=time.perf_counter)
    cancel_requested: bool = False  # a Cancel call named it
    cut_off: bool = False  # ended for a reader that stopped reading, or after a cancel
    released: bool = False  # its admission slot is free again
    # What the query_finished event reports; the servicer fills them in as the answer goes out.
    outcome: str = "client_gone"  # until the last message is sent
    rows: int = 0
    progress: Progress | None = None  # its partitions' fates, for the missing ones


class RequestRegistry:
    """The requests running at one daemon.

    Client requests (`limited`) are admitted up to `max_concurrent`, with unique ids, and can be
    cancelled by id; calls from a parent up to `max_internal` (their ids repeat across failovers),
    and at most half of those from one connection: 150 never-read Node.Scan calls on one channel
    took all 128 slots and leader_e turned the gateway's scans away (192 failovers in 30 s,
    2026-11-30); until Node answers only cluster identities, no one caller may take them all. The
    config check makes each half hold all that the parent can forward (config.INTERNAL_REQUESTS_BY_ROLE).
    Beyond any limit a call is refused at once, so query work never holds more of the server's
    threads than the sum of the limits. Locking: `_lock` guards `_clients`, `_internal`, `_streams`,
    each request's `released` and the writing of `ended`; cancelling and events run outside it.
    """

    def __init__(self, daemon: str, serving: threading.Event, max_concurrent: int, log: EventLog, *,
                 max_internal: int = 128, idle_timeout_seconds: float = 30.0, clock: Clock = time.monotonic,
                 work_slots: WorkSlots | None = None, internal_calls: str = "calls from parents",
                 internal_limit: str = "query.max_internal_requests", max_per_client: int | None = None,
                 on_admitted: Callable[[int], None] = lambda active: None):
        self.daemon = daemon
        self.on_admitted = on_admitted  # told how many requests run, each time one is admitted
        self.max_per_client = max_per_client  # client requests of one identity at once; None: no limit
        # What the calls admitted against max_internal are, and what sets their limit, as the
        # refusals name them (another registry admits event streams the same way: logstream.py).
        self.internal_calls, self.internal_limit = internal_calls, internal_limit
        self.work_slots = work_slots  # watched streams produce in these
        self.serving = serving
        self.max_concurrent = max_concurrent
        self.max_internal = max_internal
        self.idle_timeout_seconds = idle_timeout_seconds
        self.log = log
        self.clock = clock
        self._lock = threading.Lock()
        self._clients: dict[str, Request] = {}  # admitted client requests, by id
        self._internal: set[Request] = set()  # admitted calls from parents
        self._internal_per_peer: Counter[str] = Counter()
        self._per_client: Counter[Caller] = Counter()  # running client requests by owner, with TLS
        self._streams: set[Request] = set()  # watched streamed answers, until their call ends
        self.ended = 0  # requests whose slot was released so far: the memory trim's cue

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._clients) + len(self._internal)

    def watch_reader(self, method: StreamMethod, kind: str) -> StreamMethod:
        """`method`, a servicer's streaming method, with its reader watched, so that `sweep` can
        cut off a reader that stopped."""
        def watched(request: Any, context: CallContext) -> Iterator[Any]:
            reader = StreamReader(kind, self.clock, self.work_slots)
            return reader.follow(method(request, _ReadContext(context, reader)))
        return watched

    def admit(self, context: CallContext, request_id: str, *, kind: str | None = None,
              limited: bool = False) -> Request:
        """Registers a request, or aborts the call: UNAVAILABLE while not serving, ALREADY_EXISTS
        for a running client id and RESOURCE_EXHAUSTED above the limit of its kind."""
        if not self.serving.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.daemon} is not serving (starting or stopping)")
        reader = context.reader if isinstance(context, _ReadContext) else None
        peer = "" if limited else context.peer()
        owner = caller_of(context.auth_context()) if limited else None
        request = Request(request_id, kind, Deadline.of_call(context), context, limited, peer, owner, reader)
        with self._lock:
            if not limited:
                if len(self._internal) >= self.max_internal:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"{self.daemon} is serving {len(self._internal)} {self.internal_calls}, its limit "
                                  f"({self.internal_limit}); retry shortly")
                if self._internal_per_peer[request.peer] >= max(1, self.max_internal // 2):
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"{self.daemon} is serving {self._internal_per_peer[request.peer]} "
                                  f"{self.internal_calls} from this connection, half its limit for them "
                                  f"({self.internal_limit}); retry shortly")
                self._internal.add(request)
                self._internal_per_peer[request.peer] += 1
            elif request_id in self._clients:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"request_id {request_id!r} is already running")
            elif len(self._clients) >= self.max_concurrent:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{self.daemon} is serving {len(self._clients)} requests, its limit "
                              f"(query.max_concurrent_requests); retry shortly")
            elif owner is not None and self.max_per_client is not None and \
                    self._per_client[owner] >= self.max_per_client:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"the {owner} has {self._per_client[owner]} requests running at {self.daemon}, "
                              f"its limit (query.max_requests_per_client); retry when one ends")
            else:
                self._clients[request_id] = request
                if owner is not None:
                    self._per_client[owner] += 1
            if reader is not None:
                self._streams.add(request)
            active = len(self._clients) + len(self._internal)
        if not context.add_callback(lambda: self._finish(request)):
            self._finish(request)  # the call is already over
            context.abort(grpc.StatusCode.CANCELLED, "the call ended before it started")
        self.on_admitted(active)  # after the callback: whatever it does, the request's slot is freed at its end
        if reader is not None:
            reader.admitted()
        return request

    def cancel(self, request_id: str, caller: Caller | None = None) -> bool:
        """Cancels a running client request by its id; False when none runs with that id. Its slot
        is free at once, and a streamed answer waiting for its reader ends now. Raises NotOwner
        when `caller` is not the identity that started it."""
        with self._lock:
            request = self._clients.get(request_id)
            if request is not None:
                if not may_cancel(request.owner, caller):
                    raise NotOwner(request_id)
                request.cancel_requested = True
        if request is None:
            return False
        self._release(request)
        request.cancellation.cancel()
        if request.reader is not None and cut_off_due(request.reader.idle_seconds(), self.idle_limit_seconds(request),
                                                      cancelled=True):
            self._cut_off(request)
        return True

    def end_all(self) -> None:
        """Ends every admitted call now, from this side (the daemon is stopping)."""
        with self._lock:
            running = [request for request in [*self._clients.values(), *self._internal] if not request.cut_off]
        for request in running:
            self._cut_off(request)

    def idle_limit_seconds(self, request: Request) -> float:
        """How long a request's reader may take nothing before the request is cut off."""
        return self.idle_timeout_seconds * (1 if request.limited else PARENT_IDLE_FACTOR)

    def sweep(self) -> list[Request]:
        """Ends every streamed answer whose reader has stopped (see `cut_off_due`) and returns them;
        those cut off for idling are logged as request_idle_cut_off."""
        with self._lock:
            streams = [request for request in self._streams if not request.cut_off]
        ended = []
        for request in streams:
            assert request.reader is not None  # only watched streams are kept
            idle = request.reader.idle_seconds()
            if not cut_off_due(idle, self.idle_limit_seconds(request), request.cancel_requested):
                continue
            if not request.cancel_requested:
                request.outcome = "idle_cut_off"
                events.REQUEST_IDLE_CUT_OFF.emit(self.log, request_id=request.request_id,
                                                 kind=request.kind or request.reader.kind,
                                                 idle_seconds=round(idle or 0.0, 3))
            self._cut_off(request)
            ended.append(request)
        return ended

    def _cut_off(self, request: Request) -> None:
        """Ends the call from this side: its slot, its work downstream and its buffers go now."""
        request.cut_off = True
        self._release(request)
        request.cancellation.cancel()
        request.context.cancel()

    def _release(self, request: Request) -> None:
        """Frees the request's admission slot, once."""
        with self._lock:
            if request.released:
                return
            request.released = True
            self.ended += 1
            if not request.limited:
                self._internal.discard(request)
                self._internal_per_peer[request.peer] -= 1
                if not self._internal_per_peer[request.peer]:
                    del self._internal_per_peer[request.peer]
            else:
                if self._clients.get(request.request_id) is request:  # the id may be running anew
                    del self._clients[request.request_id]
                if request.owner is not None:
                    self._per_client[request.owner] -= 1
                    if not self._per_client[request.owner]:
                        del self._per_client[request.owner]

    def _finish(self, request: Request) -> None:
        """The call ended (gRPC's termination callback)."""
        request.cancellation.cancel()  # whatever still runs downstream for it stops now
        self._release(request)
        with self._lock:
            self._streams.discard(request)
        if request.kind is None:
            return
        outcome = "cancelled" if request.cancel_requested else request.outcome
        events.QUERY_FINISHED.emit(self.log, request_id=request.request_id, kind=request.kind, rows=request.rows,
                                   seconds=round(time.perf_counter() - request.started, 6),
                                   complete=outcome == "complete",
                                   missing_partitions=request.progress.missing if request.progress else [],
                                   pruned_partitions=request.progress.pruned if request.progress else [],
                                   outcome=outcome)
