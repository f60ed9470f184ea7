"""The gateway's picture of every daemon's health, for planning queries.

The gateway watches the leaders itself; what the leaders see of the workers comes from their
GetHealthStatus. A plan never waits for those: it uses the last copy and, when that is older
than a fraction of a second, asks the leaders again in the background (a copy that is briefly
out of date costs at most a failover, which every answer survives). A worker watched by nobody
reachable (its leader is down) counts as unknown.
"""

from __future__ import annotations

import threading
import time

import grpc

from daemons.rpc import airquality_pb2 as pb

MAX_AGE_SECONDS = 1.0
FETCH_TIMEOUT_SECONDS = 0.5


class ClusterHealthView:
    def __init__(self, own: dict[str, "object"], leaders: dict[str, "object"]):
        self._own = own  # neighbour -> NeighborMonitor
        self._leaders = leaders  # neighbour -> ChildLink, whose own views cover the daemons below
        self._lock = threading.Lock()
        self._remote: dict[str, dict[str, str]] = {}  # leader -> {daemon it watches: status}
        self._asked = 0.0

    def statuses(self) -> dict[str, str]:
        own = {name: monitor.status().value for name, monitor in self._own.items()}
        with self._lock:
            stale = time.monotonic() - self._asked > MAX_AGE_SECONDS
            if stale:
                self._asked = time.monotonic()
            remote = {daemon: status for view in self._remote.values() for daemon, status in view.items()}
        if stale:
            self._refresh(own)  # outside the lock: a call that fails at once runs its callback here
        return {**remote, **own}

    def _refresh(self, own: dict[str, str]) -> None:
        for leader, link in self._leaders.items():
            if own.get(leader) == "unavailable":
                with self._lock:
                    self._remote.pop(leader, None)  # whatever it saw is out of reach with it
                continue
            call = link.health_status.future(pb.HealthStatusRequest(), timeout=FETCH_TIMEOUT_SECONDS)
            call.add_done_callback(lambda done, leader=leader: self._store(leader, done))

    def _store(self, leader: str, call: grpc.Future) -> None:
        try:
            view = {neighbor.neighbor: neighbor.status for neighbor in call.result().neighbors}
        except (grpc.RpcError, grpc.FutureCancelledError):
            view = {}  # its workers count as unknown until it answers again
        with self._lock:
            self._remote[leader] = view
