"""What a daemon tells others about health: its own status, and its view of its neighbours.

The daemon's own status (LOADING, SERVING, STOPPING) is published twice: through the standard
grpc.health.v1 service, whose Watch streams tell every watcher the moment it changes (a graceful
shutdown flips it before anything else), and through the contract's HealthCheck, which monitors
probe with a deadline.
"""

from __future__ import annotations

import os
from collections import Counter
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2

from daemons.config import DaemonConfig
from daemons.health.monitor import NeighborMonitor, failure_reason
from daemons.health.state import Status
from daemons.rpc import airquality_pb2 as pb

CLUSTER_VIEW_TIMEOUT_SECONDS = 2.0


class Lifecycle:
    def __init__(self, config: DaemonConfig, services: list[str]):
        self.config = config
        self.serving = threading.Event()
        self.status = "LOADING"
        # Non-blocking: open Watch streams are served from this small pool of their own rather
        # than each holding one of the server's threads.
        self.standard = health.HealthServicer(experimental_non_blocking=True,
                                              experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1))
        self._services = ["", *services]
        self._publish(health_pb2.HealthCheckResponse.NOT_SERVING)

    def _publish(self, status) -> None:
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
    """Node.HealthCheck and Node.GetHealthStatus."""

    def __init__(self, config: DaemonConfig, lifecycle: Lifecycle, monitors: list[NeighborMonitor], links: dict):
        self.config = config
        self.lifecycle = lifecycle
        self.monitors = monitors
        self.links = links
        self._probes_received: Counter[str] = Counter()
        self._lock = threading.Lock()

    def probes_received(self) -> dict[str, int]:
        """Health probes answered so far, per requester: who is watching this daemon."""
        with self._lock:
            return dict(self._probes_received)

    def answer(self, request: pb.HealthRequest) -> pb.HealthResponse:
        """The reply to a health probe, whether it came over gRPC or as a UDP datagram."""
        with self._lock:
            self._probes_received[request.requester_id] += 1
        status = self.lifecycle.status  # read once: healthy and status must agree
        return pb.HealthResponse(healthy=status == "SERVING", status=status, timestamp=int(time.time() * 1e6),
                                 process_id=os.getpid(), role=self.config.role, daemon=self.config.name,
                                 request_timestamp=request.timestamp)

    def HealthCheck(self, request: pb.HealthRequest, context):
        return self.answer(request)

    def GetHealthStatus(self, request: pb.HealthStatusRequest, context):
        answer = pb.HealthStatusResponse(daemon=self.config.name, neighbors=[m.view() for m in self.monitors])
        if not request.cluster:
            return answer
        # Each level keeps part of its own deadline, so a hung daemon below costs only its own view.
        remaining = context.time_remaining()
        timeout = CLUSTER_VIEW_TIMEOUT_SECONDS if remaining is None else max(0.01, 0.8 * remaining)
        below = {}
        for monitor in self.monitors:
            name = monitor.link.name
            if monitor.status() is Status.UNAVAILABLE:
                answer.unreachable_observers.append(f"{name}: unavailable")
                continue
            below[name] = self.links[name].health_status.future(pb.HealthStatusRequest(cluster=True), timeout=timeout)
        for name, call in below.items():
            try:
                view = call.result()
            except grpc.RpcError as error:
                answer.unreachable_observers.append(f"{name}: {failure_reason(error)}")
                continue
            answer.neighbors.extend(view.neighbors)
            answer.unreachable_observers.extend(view.unreachable_observers)
        return answer
