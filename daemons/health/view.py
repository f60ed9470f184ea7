"""The gateway's picture of every daemon's health, for planning queries.

The gateway watches the leaders itself; what the leaders see of the workers comes from their
GetHealthStatus, fetched when a plan needs it and the copy is older than a fraction of a second.
A worker watched by nobody reachable (its leader is down) counts as unknown.
"""

from __future__ import annotations

import threading
import time

import grpc

from daemons.rpc import airquality_pb2 as pb

MAX_AGE_SECONDS = 0.25
FETCH_TIMEOUT_SECONDS = 0.2


class ClusterHealthView:
    def __init__(self, own: dict[str, "object"], leaders: dict[str, "object"]):
        self._own = own  # neighbour -> NeighborMonitor
        self._leaders = leaders  # neighbour -> ChildLink, for those whose own views matter
        self._lock = threading.Lock()
        self._remote: dict[str, str] = {}
        self._fetched = 0.0

    def statuses(self) -> dict[str, str]:
        own = {name: monitor.status().value for name, monitor in self._own.items()}
        with self._lock:
            stale = time.monotonic() - self._fetched > MAX_AGE_SECONDS
            if stale:
                self._fetched = time.monotonic()  # one request refreshes; the others use the last copy
            remote = dict(self._remote)
        if stale:
            remote = self._fetch(own)
            with self._lock:
                self._remote = remote
        return {**remote, **own}

    def _fetch(self, own: dict[str, str]) -> dict[str, str]:
        calls = {name: link.health_status.future(pb.HealthStatusRequest(), timeout=FETCH_TIMEOUT_SECONDS)
                 for name, link in self._leaders.items() if own.get(name) != "unavailable"}
        statuses: dict[str, str] = {}
        for call in calls.values():
            try:
                view = call.result()
            except grpc.RpcError:
                continue  # its workers stay unknown
            for neighbor in view.neighbors:
                statuses[neighbor.neighbor] = neighbor.status
        return statuses
