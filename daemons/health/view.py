"""The gateway's picture of every daemon's health, for planning queries.

The gateway watches the leaders itself; what the leaders see of the workers comes from their
GetHealthStatus. A plan never waits for those: it uses the last copy and, when that is older
than MAX_AGE_SECONDS, asks the leaders again in the background (a copy that is briefly out of
date costs at most a failover, which every answer survives). A worker watched by nobody
reachable (its leader is unavailable, or did not answer) counts as unknown.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from daemons.fanout.children import Child, UnaryCall
from daemons.health.status import Status
from daemons.rpc import airquality_pb2 as pb

MAX_AGE_SECONDS = 1.0
FETCH_TIMEOUT_SECONDS = 0.5


class Watched(Protocol):
    """A neighbour this daemon monitors itself (health/process.py's RemoteMonitor)."""

    def status(self) -> Status: ...

    def process_id(self) -> int: ...


class HealthView(Protocol):
    """What planning needs to know: each daemon's status as this daemon sees it now."""

    def statuses(self) -> dict[str, Status]: ...

    def process_ids(self) -> dict[str, int]: ...


class ClusterHealthView:
    """Locking: `_lock` guards `_remote` and `_asked`; calls are started outside it, because a call
    that fails at once runs its callback (which takes the lock) on the calling thread."""

    def __init__(self, own: Mapping[str, Watched], leaders: Mapping[str, Child],
                 clock: Callable[[], float] = time.monotonic):
        self._own = own
        self._leaders = leaders  # whose own views cover the daemons below them
        self._clock = clock
        self._lock = threading.Lock()
        self._remote: dict[str, dict[str, Status]] = {}  # leader -> {daemon it watches: status}
        self._remote_pids: dict[str, dict[str, int]] = {}  # leader -> {daemon it watches: its process}
        self._asked = -MAX_AGE_SECONDS - 1.0  # never: the first plan asks

    def statuses(self) -> dict[str, Status]:
        own = {name: monitor.status() for name, monitor in self._own.items()}
        with self._lock:
            now = self._clock()
            stale = now - self._asked > MAX_AGE_SECONDS
            if stale:
                self._asked = now
            # What an unavailable leader saw is out of reach with it, from this plan on.
            remote = {daemon: status for leader, view in self._remote.items()
                      if own.get(leader) is not Status.UNAVAILABLE for daemon, status in view.items()}
        if stale:
            self._refresh(own)
        return {**remote, **own}

    def process_ids(self) -> dict[str, int]:
        """Each daemon's process as its watcher last heard it (0: not heard yet); for the leaders'
        workers, as the leaders said up to MAX_AGE_SECONDS ago, and none behind an unavailable leader."""
        statuses = self.statuses()  # which also asks the leaders again when their word is old
        own = {name: monitor.process_id() for name, monitor in self._own.items()}
        unavailable = {name for name in self._own if statuses.get(name) is Status.UNAVAILABLE}
        with self._lock:
            remote = {daemon: pid for leader, pids in self._remote_pids.items() if leader not in unavailable
                      for daemon, pid in pids.items()}
        return {**remote, **own}

    def _refresh(self, own: Mapping[str, Status]) -> None:
        for leader, child in self._leaders.items():
            if own.get(leader) is Status.UNAVAILABLE:
                with self._lock:
                    self._remote.pop(leader, None)  # whatever it saw is out of reach with it
                    self._remote_pids.pop(leader, None)
                continue
            call = child.health_status(pb.HealthStatusRequest(), timeout=FETCH_TIMEOUT_SECONDS)
            call.add_done_callback(functools.partial(self._store, leader))

    def _store(self, leader: str, call: UnaryCall) -> None:
        try:
            answer: Any = call.result()
            view = {neighbor.neighbor: Status(neighbor.status) for neighbor in answer.neighbors}
            pids = {neighbor.neighbor: neighbor.process_id for neighbor in answer.neighbors}
        except Exception:  # a failed or cancelled call, or a status this version does not know
            view, pids = {}, {}  # its workers count as unknown until it answers again
        with self._lock:
            self._remote[leader] = view
            self._remote_pids[leader] = pids
