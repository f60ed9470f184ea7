"""What a daemon tells others about health: its own status, and its view of its neighbours.

The daemon's own status (LOADING, SERVING, STOPPING) is published twice: through the standard
grpc.health.v1 service, whose Watch streams tell every watcher the moment it changes (a graceful
shutdown flips it before anything else), and through the contract's HealthCheck, which monitors
probe with a deadline (over gRPC, or as a datagram: `answer` serves both).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Any

from grpc_health.v1 import health, health_pb2

from daemons import events
from daemons.config import DaemonConfig
from daemons.deadline import Deadline
from daemons.events import EventLog
from daemons.fanout.children import Child, UnaryCall, answers
from daemons.health.gasp import GaspRecipients, Recipient, wants_gasps
from daemons.health.process import RemoteMonitor
from daemons.health.status import Status
from daemons.health.watchers import Watchers
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.requests import CallContext

CLUSTER_VIEW_TIMEOUT_SECONDS = 2.0
RECIPIENTS_HANDOVER_SECONDS = 0.1  # the least time between two handovers of the gasp recipients


class ProbeCounts:
    """Health probes answered, per requester, for GetStatus: who is watching this daemon.

    At most `limit` requesters keep a count of their own; when another one comes, the one with
    the fewest probes (the least recently heard from among equals) makes room, and its count is
    summed under OTHERS. Requester ids are whatever a prober sends, and unbounded they made a
    GetStatus reply 10.2 MB after 50,000 made-up ids (issue 12); evicting by fewest probes keeps
    the monitors, which probe every 0.4 s, through any flood of one-off ids. A daemon has one or
    two monitors watching it, so 16 leaves ample room for tools (grpc_health_probe, healthlog).
    Not thread-safe: HealthEndpoints guards it.
    """

    OTHERS = "(others)"

    def __init__(self, limit: int = 16):
        self.limit = limit
        self._counts: OrderedDict[str, int] = OrderedDict()  # least recently heard from first
        self._others = 0

    def add(self, requester: str) -> None:
        count = self._counts.pop(requester, 0)
        if not count and len(self._counts) >= self.limit:
            fewest = min(self._counts, key=self._counts.__getitem__)  # the first of equals: least recent
            self._others += self._counts.pop(fewest)
        self._counts[requester] = count + 1

    def snapshot(self) -> dict[str, int]:
        counts = dict(self._counts)
        if self._others:
            counts[self.OTHERS] = counts.get(self.OTHERS, 0) + self._others
        return counts


class Lifecycle:
    """The daemon's own serving status. Locking: none needed; `status` is one reference, replaced."""

    def __init__(self, services: Sequence[str]):
        self.serving = threading.Event()
        self.status = "LOADING"
        # Non-blocking: open Watch streams are served from this small pool of their own rather
        # than each holding one of the server's threads.
        self.standard = health.HealthServicer(experimental_non_blocking=True,
                                              experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1))
        self._services = ["", *services]
        self._publish(health_pb2.HealthCheckResponse.NOT_SERVING)

    def _publish(self, status: Any) -> None:
        for service in self._services:
            self.standard.set(service, status)

    def mark_serving(self) -> None:
        self.status = "SERVING"
        self._publish(health_pb2.HealthCheckResponse.SERVING)
        self.serving.set()

    def mark_stopping(self) -> None:
        self.status = "STOPPING"
        self.serving.clear()
        self.standard.enter_graceful_shutdown()


class HealthEndpoints:
    """Node.HealthCheck and Node.GetHealthStatus. Locking: `_lock` guards the probe counts (the
    datagram responder's threads and the RPC threads both count)."""

    def __init__(self, config: DaemonConfig, lifecycle: Lifecycle, monitors: Sequence[RemoteMonitor],
                 children: Mapping[str, Child], log: EventLog,
                 gasp_to: Callable[[tuple[Recipient, ...]], bool] = lambda recipients: True,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.log = log
        self.lifecycle = lifecycle
        self.monitors = monitors
        self.children = children
        self._gasp_to = gasp_to  # hands the watchers to the monitor process; False if it had no room
        self._probes_received = ProbeCounts()
        self._gasp_recipients = GaspRecipients()
        self._watchers = Watchers()
        self._recipients_version = 0  # changes to the recipients so far
        self._recipients_handed = 0  # the latest version the monitor process has
        self._next_handover = -math.inf
        self._clock = clock
        self._lock = threading.Lock()

    def probes_received(self) -> dict[str, int]:
        """Health probes answered so far, per requester: who is watching this daemon."""
        with self._lock:
            return self._probes_received.snapshot()

    def answer(self, request: pb.HealthRequest, sender_host: str | None = None) -> pb.HealthResponse:
        """The reply to a health probe, whether it came over gRPC or as a UDP datagram (from
        `sender_host`, where the prober hears this daemon's dying gasp)."""
        recipients = None
        back = None
        with self._lock:
            now = self._clock()
            self._probes_received.add(request.requester_id)
            if sender_host is not None and wants_gasps(request):
                if self._gasp_recipients.note(request.requester_id, sender_host, request):
                    self._recipients_version += 1
                back = self._watchers.heard(request.requester_id, now)
            # At most one handover per interval: a flood of made-up requesters changes them with
            # every datagram; a monitor's next probe, 0.4 s later, hands over what is pending.
            if self._recipients_handed < self._recipients_version and now >= self._next_handover:
                version, recipients = self._recipients_version, self._gasp_recipients.snapshot()
                self._next_handover = now + RECIPIENTS_HANDOVER_SECONDS
        if recipients is not None and self._gasp_to(recipients):
            with self._lock:
                self._recipients_handed = max(self._recipients_handed, version)
        if back is not None:
            events.WATCHER_BACK.emit(self.log, watcher=request.requester_id, silent_seconds=round(back, 3))
        status = self.lifecycle.status  # read once: healthy and status must agree
        return pb.HealthResponse(healthy=status == "SERVING", status=status, timestamp=int(time.time() * 1e6),
                                 process_id=os.getpid(), role=self.config.role, daemon=self.config.name,
                                 request_timestamp=request.timestamp)

    def check_watchers(self) -> None:
        """Logs the watchers that fell silent since the last check and, once every one is, what this
        daemon is cut off from (health/watchers.py). Called every second or so (the housekeeper)."""
        with self._lock:
            lost = self._watchers.newly_lost(self._clock(), self._gasp_recipients.requesters())
            every_watcher_lost, lost_watchers = self._watchers.all_lost, self._watchers.lost
        for watcher, silent in lost:
            events.WATCHER_LOST.emit(self.log, watcher=watcher, silent_seconds=round(silent, 3))
        if lost and every_watcher_lost:
            held = [spec.name for spec in self.config.data.partitions] if self.config.data else []
            events.CUT_OFF.emit(self.log, lost_watchers=lost_watchers, partitions=held, unavailable_neighbors=[
                monitor.neighbor for monitor in self.monitors if monitor.status() is Status.UNAVAILABLE])

    def HealthCheck(self, request: pb.HealthRequest, context: CallContext) -> pb.HealthResponse:
        return self.answer(request)

    def GetHealthStatus(self, request: pb.HealthStatusRequest, context: CallContext) -> pb.HealthStatusResponse:
        answer = pb.HealthStatusResponse(daemon=self.config.name, neighbors=[m.view() for m in self.monitors])
        if not request.cluster:
            return answer
        # Each level keeps part of its own deadline, so a hung daemon below costs only its own view.
        timeout = Deadline.of_call(context).child_timeout(CLUSTER_VIEW_TIMEOUT_SECONDS)
        below: dict[str, UnaryCall] = {}
        for monitor in self.monitors:
            name = monitor.neighbor
            if monitor.status() is Status.UNAVAILABLE:
                answer.unreachable_observers.append(f"{name}: unavailable")
                continue
            below[name] = self.children[name].health_status(pb.HealthStatusRequest(cluster=True), timeout=timeout)
        for name, view, failure in answers(below):
            if view is None:
                answer.unreachable_observers.append(f"{name}: {failure}")
                continue
            answer.neighbors.extend(view.neighbors)
            answer.unreachable_observers.extend(view.unreachable_observers)
        return answer
