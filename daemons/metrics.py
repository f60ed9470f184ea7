"""A daemon's Prometheus metrics, served at its config's `metrics_listen` (daemons/web/server.py).

Nothing here runs between scrapes, so metrics cost an idle daemon nothing but the scrape itself:
- what happens once (a query ends, a partition fails over, a partition loads, the daemon starts)
  is counted from the event the daemon writes for it anyway (`EventMetrics.observe`, called for
  every event line by eventlog.py): a metric and its event cannot disagree, and no code path
  counts twice;
- what is a state (each neighbour's status, its probe counts, the requests running) is read from
  the objects that hold it when Prometheus asks (`StateCollector`);
- the standard process metrics (process_*) are prometheus_client's, for the daemon and, as
  fire_monitor_process_*, for its monitor process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.utils import floatToGoString

from daemons import events
from daemons.health.status import Status
from daemons.health.tally import ProbeTally
from daemons.web.server import Request, Response

# query_finished's outcomes, in the four classes an operator alerts on: what the client got.
OUTCOMES = ("complete", "partial", "error", "cancelled")
OUTCOME_CLASS = {"complete": "complete", "partial": "partial", "cancelled": "cancelled",
                 "idle_cut_off": "cancelled",  # its reader stopped reading: cut off
                 "client_gone": "cancelled",  # the client went before the answer ended
                 "invalid": "error"}  # anything else is an error too
QUERY_KINDS = ("query", "aggregate")
# A query's time at the gateway: a small one takes milliseconds, the full scan about half a second,
# a slow reader's minutes (up to call_timeout_seconds).
QUERY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# Without it every counter has a *_created series too: twice the lines per scrape, for the start
# time, which process_start_time_seconds already gives.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated in prometheus_client


def go_float(bound: float) -> str:
    """A bucket's bound as Prometheus writes it ("0.5", "1.0", "+Inf")."""
    text: str = floatToGoString(bound)  # type: ignore[no-untyped-call]  # unannotated in prometheus_client
    return text


def outcome_class(outcome: str) -> str:
    return OUTCOME_CLASS.get(outcome, "error")


class EventMetrics:
    """Counters and gauges fed by the daemon's events. Any thread may call observe."""

    def __init__(self, registry: CollectorRegistry, clients: bool, partitions_routed: Iterable[str] = ()):
        """`clients`: whether this daemon answers clients (the gateway), whose series then exist
        from the start, at 0, so that rate() sees the first request."""
        self.queries = Counter("fire_queries", "Client requests (queries and aggregates) that ended, by outcome",
                               ["kind", "outcome"], registry=registry)
        self.query_seconds = Histogram("fire_query_duration_seconds", "Time from a client request's admission "
                                       "to its end", ["kind"], buckets=QUERY_BUCKETS_SECONDS, registry=registry)
        self.rows = Counter("fire_rows_streamed", "Rows sent to clients in answers", ["kind"], registry=registry)
        self.failovers = Counter("fire_partition_failovers", "Partitions moved to another copy in the middle of "
                                 "an answer", ["partition"], registry=registry)
        self.partition_rows = Gauge("fire_partition_rows", "Rows of each partition this daemon holds",
                                    ["partition"], registry=registry)
        self.load_seconds = Gauge("fire_load_seconds", "From the daemon's start to serving, data loading included",
                                  registry=registry)
        self.startup_seconds = Gauge("fire_startup_seconds", "From the process's spawn to serving",
                                     registry=registry)
        for kind in QUERY_KINDS if clients else ():
            self.rows.labels(kind)
            self.query_seconds.labels(kind)
            for outcome in OUTCOMES:
                self.queries.labels(kind, outcome)
        for partition in partitions_routed:
            self.failovers.labels(partition)
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}

    def observe(self, event: Mapping[str, Any]) -> None:
        """One event line, as eventlog.py is about to write it."""
        name = event.get("event")
        if name == events.QUERY_FINISHED.name:
            kind = str(event["kind"])
            self.queries.labels(kind, outcome_class(str(event["outcome"]))).inc()
            self.query_seconds.labels(kind).observe(float(event["seconds"]))
            self.rows.labels(kind).inc(int(event["rows"]))
        elif name == events.PARTITION_FAILOVER.name:
            self.failovers.labels(str(event["partition"])).inc()
        elif name == events.PARTITION_LOADED.name:
            self.partition_rows.labels(str(event["partition"])).set(int(event["rows"]))
            with self._lock:
                self._held[str(event["partition"])] = int(event["rows"])
        elif name == events.DAEMON_STARTED.name:
            self.load_seconds.set(float(event["load_seconds"]))
            self.startup_seconds.set(float(event["startup_seconds"]))

    def held(self) -> dict[str, int]:
        with self._lock:
            return dict(self._held)


class Watched(Protocol):
    """A neighbour as the daemon's monitor process reports it (health/process.py's RemoteMonitor)."""

    neighbor: str

    def status(self) -> Status: ...

    def counts(self) -> ProbeTally: ...


class StateCollector:
    """What is read when Prometheus scrapes: the neighbours' health and the daemon's load."""

    def __init__(self, daemon: str, role: str, watched: Sequence[Watched], active_requests: Callable[[], int],
                 datagrams_dropped: Callable[[], Mapping[str, int]], held: Callable[[], Mapping[str, int]]):
        self.daemon = daemon
        self.role = role
        self.watched = watched
        self.active_requests = active_requests
        self.datagrams_dropped = datagrams_dropped  # "request: <reason>" or "<neighbour>: <reason>" -> count
        self.held = held

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily("fire_daemon_info", "This daemon's name and role (always 1)",
                                 labels=["daemon", "role"])
        info.add_metric([self.daemon, self.role], 1)
        yield info
        status = GaugeMetricFamily("fire_neighbor_status", "1 for each watched neighbour's current status, 0 for "
                                   "the others", labels=["neighbor", "status"])
        transitions = CounterMetricFamily("fire_health_transitions", "Changes of a watched neighbour's status",
                                          labels=["neighbor", "from", "to"])
        probes = CounterMetricFamily("fire_probes", "Health probe results by kind (datagram, grpc, watch) and "
                                     "outcome", labels=["neighbor", "kind", "outcome"])
        latency = HistogramMetricFamily("fire_probe_latency_seconds", "Time from sending a health probe to its "
                                        "answer", labels=["neighbor", "kind"])
        for monitor in self.watched:
            current, tally = monitor.status(), monitor.counts()
            for each in Status:
                status.add_metric([monitor.neighbor, each.value], 1 if each is current else 0)
            for (previous, now), count in sorted(tally.transitions.items()):
                transitions.add_metric([monitor.neighbor, previous, now], count)
            for (kind, outcome), count in sorted(tally.results.items()):
                probes.add_metric([monitor.neighbor, kind, outcome], count)
            for kind, counts in sorted(tally.latencies.items()):
                latency.add_metric([monitor.neighbor, kind], [(go_float(bound), count) for bound, count
                                                              in counts.cumulative()], counts.total_seconds)
        yield from (status, transitions, probes, latency)
        dropped = CounterMetricFamily("fire_datagrams_dropped", "Health datagrams not believed, by whom they came "
                                      "for (request: probes to this daemon; a neighbour: its replies and gasps) and "
                                      "why", labels=["source", "reason"])
        for key, count in sorted(self.datagrams_dropped().items()):
            source, _, reason = key.partition(": ")
            dropped.add_metric([source, reason], count)
        yield dropped
        active = GaugeMetricFamily("fire_active_requests", "Requests being served now (client and internal)")
        active.add_metric([], self.active_requests())
        yield active
        held = self.held()
        partitions = GaugeMetricFamily("fire_partitions_held", "Partitions this daemon holds")
        partitions.add_metric([], len(held))
        rows = GaugeMetricFamily("fire_rows_held", "Rows this daemon holds, all partitions")
        rows.add_metric([], sum(held.values()))
        yield from (partitions, rows)


def metrics_page(registry: CollectorRegistry) -> Callable[[Request], Response]:
    """The /metrics route: the registry in Prometheus's text format."""

    def page(_request: Request) -> Response:
        return Response(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return page


def register_process_metrics(registry: CollectorRegistry, monitor_pid: Callable[[], int | None]) -> None:
    """The standard process_* metrics of the daemon, and fire_monitor_process_* of its monitor process."""
    ProcessCollector(registry=registry)

    def monitor() -> int | str:
        pid = monitor_pid()
        return pid if pid is not None else "none"  # no /proc/none: the collector then reports nothing

    ProcessCollector(namespace="fire_monitor", pid=monitor, registry=registry)
