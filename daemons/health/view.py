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
from typing import Any, NamedTuple, Protocol

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


class Word(NamedTuple):
    """What a leader said of a daemon it watches."""

    status: Status
    process_id: int  # 0: it has not heard the daemon's process yet


class ClusterHealthView:
    """Locking: `_lock` guards `_remote` and `_asked`; calls are started outside it, because a call
    that fails at once runs its callback (which takes the lock) on the calling thread."""

    def __init__(self, own: Mapping[str, Watched], leaders: Mapping[str, Child],
                 clock: Callable[[], float] = time.monotonic):
        self._own = own
        self._leaders = leaders  # whose own views cover the daemons below them
        self._clock = clock
        self._lock = threading.Lock()
        self._remote: dict[str, dict[str, Word]] = {}  # leader -> {daemon it watches: its word}
        self._asked = -MAX_AGE_SECONDS - 1.0  # never: the first plan asks

    def statuses(self) -> dict[str, Status]:
        own = {name: monitor.status() for name, monitor in self._own.items()}
        return {**{daemon: word.status for daemon, word in self._reachable(own).items()}, **own}

    def process_ids(self) -> dict[str, int]:
        """Each daemon's process as its watcher last heard it (0: not heard yet); for the leaders'
        workers, as the leaders said up to MAX_AGE_SECONDS ago, and none behind an unavailable leader."""
        own = {name: monitor.status() for name, monitor in self._own.items()}
        remote = {daemon: word.process_id for daemon, word in self._reachable(own).items()}
        return {**remote, **{name: monitor.process_id() for name, monitor in self._own.items()}}

    def _reachable(self, own: Mapping[str, Status]) -> dict[str, Word]:
        """What the leaders said of the daemons below them, but those that `own` has unavailable (what
        such a leader saw is out of reach with it, from this plan on); asks the leaders again when
        their word is older than MAX_AGE_SECONDS."""
        with self._lock:
            now = self._clock()
            stale = now - self._asked > MAX_AGE_SECONDS
            if stale:
                self._asked = now
            remote = {daemon: word for leader, words in self._remote.items()
                      if own.get(leader) is not Status.UNAVAILABLE for daemon, word in words.items()}
        if stale:
            self._refresh(own)
        return remote

    def _refresh(self, own: Mapping[str, Status]) -> None:
        for leader, child in self._leaders.items():
            if own.get(leader) is Status.UNAVAILABLE:
                with self._lock:
                    self._remote.pop(leader, None)  # whatever it saw is out of reach with it
                continue
            call = child.health_status(pb.HealthStatusRequest(), timeout=FETCH_TIMEOUT_SECONDS)
            call.add_done_callback(functools.partial(self._store, leader))

    def _store(self, leader: str, call: UnaryCall) -> None:
        try:
            answer: Any = call.result()
            words = {neighbor.neighbor: Word(Status(neighbor.status), neighbor.process_id)
                     for neighbor in answer.neighbors}
        except Exception:  # a failed or cancelled call, or a status this version does not know
            words = {}  # its workers count as unknown until it answers again
        with self._lock:
            self._remote[leader] = words
