"""The gateway's replica catalog kept current: what every copy of every partition holds.

The decisions are replicas.py's (planning, pure); this is their I/O edge. Copies are learned two
ways: from the leaders' GetStatus(cluster), which lists every copy in their subtrees with its
fingerprint and gaps, fetched by a background thread (every REFRESH_SECONDS, and every
INCOMPLETE_RETRY_SECONDS while some daemon below has not listed its copies, being down or still
loading); and from every partition status a scan returns, which names the copy that served it.
A plan never waits for a fetch, except the very first plans before any leader has answered (at
most FIRST_FETCH_WAIT_SECONDS), and a plan made on old knowledge still cannot go wrong: routes
carry the fingerprint expected, and a copy holding anything else refuses (and a fetch follows).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from daemons import events
from daemons.events import EventLog
from daemons.fanout.children import Child, UnaryCall
from daemons.planning.paths import Path
from daemons.planning.replicas import NO_ROWS, Copy, PartitionChoice, ReplicaCatalog
from daemons.rpc import airquality_pb2 as pb

# Copies change only when a daemon restarts with other files, and a scan reveals that sooner; six
# GetStatus calls every 30 s cost the idle cluster about 0.1% of a core.
REFRESH_SECONDS = 30.0
INCOMPLETE_RETRY_SECONDS = 1.0
FETCH_TIMEOUT_SECONDS = 3.0
# Until some leader has answered once, a plan waits this long for the copies rather than planning
# blind: a blind plan is never wrong, but may pick a copy with gaps over a complete one.
FIRST_FETCH_WAIT_SECONDS = 1.0


def copy_minutes(info: pb.PartitionInfo) -> tuple[int, int] | None:
    """The span of a copy's rows as its holder reports it; None from a holder that does not say."""
    if info.HasField("first_minute") and info.HasField("last_minute"):
        return info.first_minute, info.last_minute
    return NO_ROWS if info.rows == 0 and info.fingerprint else None


class ReplicaDirectory:
    """Locking: `_lock` guards `_due`; the catalog locks itself."""

    def __init__(self, routes: Mapping[str, Sequence[Path]], leaders: Mapping[str, Child], log: EventLog,
                 clock: Callable[[], float] = time.monotonic):
        self.catalog = ReplicaCatalog(routes)
        self._leaders = leaders
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._due = clock()  # when the next fetch is due
        self._wake = threading.Event()  # the next fetch is due earlier than planned, or stop
        self._stopped = False
        self._answered = threading.Event()  # some leader has listed its copies

    def start(self) -> None:
        threading.Thread(target=self._keep_current, name="replica-catalog", daemon=True).start()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _keep_current(self) -> None:
        while not self._stopped:
            with self._lock:
                wait = self._due - self._clock()
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            with self._lock:
                self._due = self._clock() + REFRESH_SECONDS
            self.refresh()

    def _fetch_within(self, seconds: float) -> None:
        with self._lock:
            self._due = min(self._due, self._clock() + seconds)
        self._wake.set()

    def choices(self) -> dict[str, PartitionChoice]:
        """The copies to plan each partition with, from what is known now."""
        self._answered.wait(FIRST_FETCH_WAIT_SECONDS)
        return self.catalog.choices()

    def refresh(self) -> None:
        """Asks every leader for the copies in its subtree; the answers are learned as they come."""
        for leader, child in self._leaders.items():
            call = child.status(pb.StatusRequest(cluster=True), timeout=FETCH_TIMEOUT_SECONDS)
            call.add_done_callback(functools.partial(self._store, leader))

    def _store(self, leader: str, call: UnaryCall) -> None:
        try:
            answer: pb.StatusResponse = call.result()
        except Exception:  # a leader that is down: its copies are asked again soon
            self._fetch_within(INCOMPLETE_RETRY_SECONDS)
            return
        for info in [*answer.partitions, *answer.copies_below]:
            self._learn(info.name, Copy(info.daemon, info.fingerprint, tuple(info.gaps), copy_minutes(info),
                                        info.process_id))
        if answer.unreachable_below or not answer.serving:
            self._fetch_within(INCOMPLETE_RETRY_SECONDS)
        self._answered.set()

    def learn_status(self, status: pb.PartitionStatus) -> None:
        """A partition status from a scan. One that finished names its copy's content; a copy that
        refused a route's fingerprint holds something the catalog did not know: ask again now."""
        if not (status.served_by and status.fingerprint):
            return
        if status.complete or status.gaps:
            self._learn(status.partition, Copy(status.served_by, status.fingerprint, tuple(status.gaps)))
        else:
            self._fetch_within(0.0)

    def _learn(self, partition: str, copy: Copy) -> None:
        for mismatch in self.catalog.learn(partition, copy):
            events.REPLICA_MISMATCH.emit(self._log, partition=mismatch.partition, preferred=mismatch.preferred,
                                         preferred_fingerprint=mismatch.preferred_fingerprint, other=mismatch.other,
                                         other_fingerprint=mismatch.other_fingerprint)
