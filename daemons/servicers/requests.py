"""The life of every RPC that does query work, in one place: the not-serving guard, admission,
the deadline, cancellation (by id, by a vanished client, at the end), and the query_finished event.

Cleanup cannot live in a servicer's code path: a cancelled streaming call's generator is simply
never resumed. gRPC's termination callback is the one place every ending passes through, so a
request is registered with it the moment it is admitted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

import grpc

from daemons import events
from daemons.cancel import Cancellation
from daemons.deadline import Deadline
from daemons.events import EventLog
from daemons.fanout.routes import Progress


class CallContext(Protocol):
    """The part of grpc.ServicerContext a request uses (a fake in tests)."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn: ...

    def add_callback(self, callback: Any) -> bool: ...

    def time_remaining(self) -> float | None: ...


@dataclass
class Request:
    request_id: str
    kind: str | None  # "query" or "aggregate": written as query_finished at the end; None: not logged
    deadline: Deadline
    cancellation: Cancellation = field(default_factory=Cancellation)
    started: float = field(default_factory=time.perf_counter)
    cancel_requested: bool = False  # a Cancel call named it
    # What the query_finished event reports; the servicer fills them in as the answer goes out.
    outcome: str = "client_gone"  # until the last message is sent
    rows: int = 0
    progress: Progress | None = None  # its partitions' fates, for the missing ones


class RequestRegistry:
    """The requests running at one daemon.

    Client requests (`limited`) are admitted up to `max_concurrent`, with unique ids, and can be
    cancelled by id; internal calls from a parent are only counted. Locking: `_lock` guards
    `_clients` and `_internal`; cancellation actions run outside it.
    """

    def __init__(self, daemon: str, serving: threading.Event, max_concurrent: int, log: EventLog):
        self.daemon = daemon
        self.serving = serving
        self.max_concurrent = max_concurrent
        self.log = log
        self._lock = threading.Lock()
        self._clients: dict[str, Request] = {}  # by request id
        self._internal = 0  # calls from a parent: only counted, as their ids repeat across failovers

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._clients) + self._internal

    def admit(self, context: CallContext, request_id: str, *, kind: str | None = None,
              limited: bool = False) -> Request:
        """Registers a request, or aborts the call: UNAVAILABLE while not serving, and for client
        requests ALREADY_EXISTS for a running id and RESOURCE_EXHAUSTED above the limit."""
        if not self.serving.is_set():
            context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.daemon} is not serving (starting or stopping)")
        request = Request(request_id, kind, Deadline.of_call(context))
        with self._lock:
            if not limited:
                self._internal += 1
            elif request_id in self._clients:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"request_id {request_id!r} is already running")
            elif len(self._clients) >= self.max_concurrent:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"{len(self._clients)} requests are running; retry shortly")
            else:
                self._clients[request_id] = request
        if not context.add_callback(lambda: self._finish(request, limited)):
            self._finish(request, limited)  # the call is already over
            context.abort(grpc.StatusCode.CANCELLED, "the call ended before it started")
        return request

    def cancel(self, request_id: str) -> bool:
        """Cancels a running client request by its id; False when none runs with that id."""
        with self._lock:
            request = self._clients.get(request_id)
            if request is not None:
                request.cancel_requested = True
        if request is None:
            return False
        request.cancellation.cancel()
        return True

    def _finish(self, request: Request, limited: bool) -> None:
        request.cancellation.cancel()  # whatever still runs downstream for it stops now
        with self._lock:
            if limited:
                del self._clients[request.request_id]
            else:
                self._internal -= 1
        if request.kind is None:
            return
        outcome = "cancelled" if request.cancel_requested else request.outcome
        events.QUERY_FINISHED.emit(self.log, request_id=request.request_id, kind=request.kind, rows=request.rows,
                                   seconds=round(time.perf_counter() - request.started, 6),
                                   complete=outcome == "complete",
                                   missing_partitions=request.progress.missing if request.progress else [],
                                   outcome=outcome)
