"""Every structured event the daemons write: its name and its fields, in one place.

The daemons emit through these definitions and `bin/healthlog` reads with them, so a field can
not be renamed on one side only. Every line also carries timestamp, level, event and daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from daemons.health.status import Status

COMMON_FIELDS = ("timestamp", "level", "event", "daemon")


class EventLog(Protocol):
    """Where events go: the daemon's structlog logger (eventlog.py), or an EventRecorder in tests."""

    def info(self, event: str, **fields: Any) -> Any: ...

    def warning(self, event: str, **fields: Any) -> Any: ...

    def error(self, event: str, **fields: Any) -> Any: ...


@dataclass(frozen=True)
class EventType:
    name: str
    fields: tuple[str, ...]
    level: str = "info"

    def emit(self, log: EventLog, **values: Any) -> None:
        if set(values) != set(self.fields):
            raise TypeError(f"{self.name} takes {sorted(self.fields)}, got {sorted(values)}")
        getattr(log, self.level)(self.name, **values)


# load_seconds: from the daemon's first line of code to serving; startup_seconds: from the spawn.
DAEMON_STARTED = EventType("daemon_started", ("pid", "port", "role", "rows_loaded", "load_seconds",
                                              "startup_seconds", "partitions", "cpus"))
# The daemon cannot keep to all of its config's `cpus`: some are not among those it may use
# (`available`), or a thread would not move; `reason` says which, and where it runs instead.
CPUS_UNAVAILABLE = EventType("cpus_unavailable", ("configured", "available", "reason"), "warning")
# The daemon's threads moved: to every CPU when it got busy, back to its own once calm (affinity.py).
CPUS_CHANGED = EventType("cpus_changed", ("cpus", "active_requests"))
DAEMON_STOPPING = EventType("daemon_stopping", ("signal", "active_requests"))
DAEMON_STOPPED = EventType("daemon_stopped", ("seconds",))
DAEMON_FAILED = EventType("daemon_failed", ("error",), "error")

PARTITION_LOADED = EventType("partition_loaded", ("partition", "rows", "source", "seconds", "days"))
PARTITION_DAYS_MISSING = EventType("partition_days_missing", ("partition", "days"), "warning")
CSV_LINES_SKIPPED = EventType("csv_lines_skipped", ("partition", "count", "examples"), "warning")
CACHE_WRITE_FAILED = EventType("cache_write_failed", ("partition", "error"), "warning")
# A cache entry that failed its checks (shape, codes, fingerprint): it is rebuilt from the CSVs.
CACHE_REJECTED = EventType("cache_rejected", ("partition", "path", "reason"), "warning")
# Files under the data folder that could not be read as CSVs (not regular files, unreadable):
# their rows count as missing, and answers over the partition say so.
DATA_FILES_SKIPPED = EventType("data_files_skipped", ("partition", "files"), "warning")

# pruned_partitions: answered without asking anyone, the query's time range missing all their rows.
QUERY_FINISHED = EventType("query_finished", ("request_id", "kind", "rows", "seconds", "complete",
                                              "missing_partitions", "pruned_partitions", "outcome"))
# Replicas: the gateway's start-up check of its placement, and every re-plan of a partition.
# `layout`: the host layout the gateway was deployed with (bin/start --layout), "one-host" without one.
PLACEMENT_CHECKED = EventType("placement_checked", ("layout", "partitions", "single_failure_safe", "single_host_safe"))
# losses: daemon -> the partitions its failure would take; host_losses: host -> those its loss would.
PLACEMENT_UNSAFE = EventType("placement_unsafe", ("layout", "losses", "host_losses"), "warning")
PARTITION_FAILOVER = EventType("partition_failover", ("request_id", "partition", "from", "to", "reason",
                                                      "skip_rows"))
# Two copies of a partition hold different rows: only copies that agree replace each other.
REPLICA_MISMATCH = EventType("replica_mismatch", ("partition", "preferred", "preferred_fingerprint", "other",
                                                  "other_fingerprint"), "warning")
CHILD_CALL_FAILED = EventType("child_call_failed", ("request_id", "child", "code", "message", "partitions"),
                              "warning")

# A request that raised what no code path expected: logged once, with the traceback.
REQUEST_FAILED = EventType("request_failed", ("method", "request_id", "error", "traceback"), "error")
# A streamed answer whose reader read nothing for client_idle_timeout_seconds: cut off.
REQUEST_IDLE_CUT_OFF = EventType("request_idle_cut_off", ("request_id", "kind", "idle_seconds"), "warning")

# Health monitoring. health_transition is the one line written per change of a neighbour's status.
HEALTH_STATUSES = tuple(status.value for status in Status)  # in the order a neighbour meets them
HEALTH_TRANSITION = EventType("health_transition", ("neighbor", "from", "to", "reason", "consecutive_failures",
                                                    "latency_ms"))
# The monitors run in a process of their own (health/process.py), `pid`, started with the daemon
# and again whenever it dies.
MONITORING_STARTED = EventType("monitoring_started", ("neighbors", "pid", "interval_seconds", "timeout_seconds",
                                                      "failures_before_degraded", "failures_before_unavailable",
                                                      "successes_before_healthy"))
# Written by a daemon's monitor process once its daemon's process has ended (health/gasp.py): the
# watchers it told, by requester id.
DYING_GASP_SENT = EventType("dying_gasp_sent", ("pid", "recipients"), "warning")
MONITOR_PROCESS_EXITED = EventType("monitor_process_exited", ("pid", "returncode", "restart_in_seconds"), "error")
NEIGHBOR_RESTARTED = EventType("neighbor_restarted", ("neighbor", "old_pid", "new_pid"))
# The other side of a cut (health/watchers.py): a parent's monitor that probed this daemon steadily
# fell silent, or came back; and, once every such watcher is lost, what this daemon is cut off
# from: the watchers, the neighbours it watches that are unavailable, the partitions nobody can read
# from it now (their other copies serve them, or answers name them missing).
WATCHER_LOST = EventType("watcher_lost", ("watcher", "silent_seconds"), "warning")
WATCHER_BACK = EventType("watcher_back", ("watcher", "silent_seconds"))
CUT_OFF = EventType("cut_off", ("lost_watchers", "unavailable_neighbors", "partitions"), "warning")
# Health datagrams (daemons/health/seal.py): the daemon's UDP port held by another process (it
# serves on, and binds the port once it is free), and the datagrams not believed, as totals by
# where they came to and why, logged when they change, at most every DROPPED_REPORT_SECONDS.
DATAGRAM_PORT_HELD = EventType("datagram_port_held", ("port", "error", "retry_seconds"), "warning")
DATAGRAM_PORT_BOUND = EventType("datagram_port_bound", ("port",))
# The HTTP endpoints (endpoint: "metrics" or "dashboard"): where each serves, and, as for the
# datagrams, a port another process holds, retried until it is free: they never stop the daemon.
HTTP_LISTENING = EventType("http_listening", ("endpoint", "url"))
HTTP_PORT_HELD = EventType("http_port_held", ("endpoint", "url", "error", "retry_seconds"), "warning")
DATAGRAMS_DROPPED = EventType("datagrams_dropped", ("counts",), "warning")
# A TLS handshake with this daemon failed (daemons/security/handshakes.py): what it means, and how
# many more of the kind failed since the last line of it (one a minute at most).
TLS_HANDSHAKE_FAILED = EventType("tls_handshake_failed", ("error", "meaning", "repeats"), "warning")


class EventRecorder:
    """An EventLog that keeps every event in memory, so tests assert on events without files
    (as structlog.testing.capture_logs does)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def _record(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self.events.append({"event": event, "level": level, **fields})

    def info(self, event: str, **fields: Any) -> None:
        self._record("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._record("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._record("error", event, fields)

    def of(self, event_type: EventType) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == event_type.name]
