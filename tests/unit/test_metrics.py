"""A daemon's Prometheus metrics (daemons/metrics.py), read back from the text a scrape gets: the
counters fed by events, the state read at scrape time, and the /metrics route."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from http import HTTPStatus

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from daemons import events
from daemons.health.status import Status
from daemons.health.tally import LATENCY_BUCKETS_SECONDS, ProbeKind, ProbeTally
from daemons.metrics import OUTCOMES, QUERY_BUCKETS_SECONDS, QUERY_KINDS, EventMetrics, StateCollector, metrics_page
from daemons.web.server import Request

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of a scrape: (name, labels) -> value, parsed from the exposition text."""
    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, key
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: number for (sample, labels), number in samples.items() if sample == name}


def finished(kind: str, outcome: str, seconds: float, rows: int) -> dict:
    return {"event": events.QUERY_FINISHED.name, "request_id": "r", "kind": kind, "rows": rows, "seconds": seconds,
            "complete": outcome == "complete", "missing_partitions": [], "outcome": outcome}


# -- counted from events ----------------------------------------------------------------------------


@pytest.mark.parametrize("outcome, counted_as", [
    ("complete", "complete"), ("partial", "partial"), ("cancelled", "cancelled"), ("idle_cut_off", "cancelled"),
    ("client_gone", "cancelled"), ("invalid", "error"), ("something_new", "error")])
def test_each_query_outcome_is_counted_in_one_of_four_classes(outcome, counted_as):
    registry = CollectorRegistry()
    EventMetrics(registry, clients=True).observe(finished("aggregate", outcome, 0.2, 3))
    counts = series(scrape(registry), "fire_queries_total")
    assert {labels: number for labels, number in counts.items() if number} == {
        frozenset({("kind", "aggregate"), ("outcome", counted_as)}): 1.0}


def test_a_gateway_has_every_query_series_from_the_start_at_zero():
    registry = CollectorRegistry()
    EventMetrics(registry, clients=True, partitions_routed=["aug10-17", "sep14-24"])
    samples = scrape(registry)
    assert series(samples, "fire_queries_total") == {
        frozenset({("kind", kind), ("outcome", outcome)}): 0.0 for kind in QUERY_KINDS for outcome in OUTCOMES}
    assert series(samples, "fire_rows_streamed_total") == {frozenset({("kind", kind)}): 0.0 for kind in QUERY_KINDS}
    for kind in QUERY_KINDS:
        assert value(samples, "fire_query_duration_seconds_count", kind=kind) == 0.0
    assert series(samples, "fire_partition_failovers_total") == {
        frozenset({("partition", "aug10-17")}): 0.0, frozenset({("partition", "sep14-24")}): 0.0}


def test_a_daemon_that_answers_no_clients_makes_no_query_series():
    registry = CollectorRegistry()
    EventMetrics(registry, clients=False)
    names = {name for name, _labels in scrape(registry)}
    assert not {name for name in names if name.startswith(("fire_queries", "fire_query_", "fire_rows_streamed",
                                                           "fire_partition_failovers"))}
    assert "fire_load_seconds" in names  # the registry is read at all


def test_query_durations_fill_the_histogram_and_rows_add_up():
    registry = CollectorRegistry()
    metrics = EventMetrics(registry, clients=True)
    for seconds, rows in ((0.004, 10), (0.25, 0), (0.3, 5), (400.0, 1000)):
        metrics.observe(finished("query", "complete", seconds, rows))
    metrics.observe(finished("aggregate", "partial", 1.0, 7))
    samples = scrape(registry)
    assert value(samples, "fire_query_duration_seconds_count", kind="query") == 4
    assert value(samples, "fire_query_duration_seconds_sum", kind="query") == pytest.approx(400.554)
    buckets = {float(dict(labels)["le"]): number for labels, number in
               series(samples, "fire_query_duration_seconds_bucket").items() if ("kind", "query") in labels}
    assert sorted(buckets) == [*QUERY_BUCKETS_SECONDS, math.inf]
    assert buckets[0.005] == 1 and buckets[0.25] == 2 and buckets[0.5] == 3 and buckets[300.0] == 3
    assert buckets[math.inf] == 4
    assert value(samples, "fire_rows_streamed_total", kind="query") == 1015
    assert value(samples, "fire_rows_streamed_total", kind="aggregate") == 7
    assert value(samples, "fire_queries_total", kind="query", outcome="complete") == 4


def test_failovers_are_counted_by_partition_including_ones_not_routed_at_the_start():
    registry = CollectorRegistry()
    metrics = EventMetrics(registry, clients=True, partitions_routed=["aug10-17"])
    for partition in ("sep14-24", "sep14-24", "aug27-sep04"):
        metrics.observe({"event": events.PARTITION_FAILOVER.name, "request_id": "r", "partition": partition,
                         "from": "worker_c", "to": "worker_d", "reason": "x", "skip_rows": 0})
    assert series(scrape(registry), "fire_partition_failovers_total") == {
        frozenset({("partition", "aug10-17")}): 0.0, frozenset({("partition", "sep14-24")}): 2.0,
        frozenset({("partition", "aug27-sep04")}): 1.0}


def test_loaded_partitions_set_their_rows_and_what_the_daemon_holds():
    registry = CollectorRegistry()
    metrics = EventMetrics(registry, clients=False)
    for partition, rows in (("aug10-17", 1200), ("aug18-26", 800), ("aug10-17", 1500)):  # loaded again: replaced
        metrics.observe({"event": events.PARTITION_LOADED.name, "partition": partition, "rows": rows,
                         "source": "cache", "seconds": 0.1, "days": 8})
    registry.register(StateCollector("worker_d", "worker", [], lambda: 0, dict, metrics.held))
    samples = scrape(registry)
    assert series(samples, "fire_partition_rows") == {frozenset({("partition", "aug10-17")}): 1500.0,
                                                      frozenset({("partition", "aug18-26")}): 800.0}
    assert metrics.held() == {"aug10-17": 1500, "aug18-26": 800}
    assert value(samples, "fire_partitions_held") == 2
    assert value(samples, "fire_rows_held") == 2300


def test_the_start_event_sets_load_and_startup_seconds_and_others_change_nothing():
    registry = CollectorRegistry()
    metrics = EventMetrics(registry, clients=True)
    before = scrape(registry)
    metrics.observe({"event": events.DAEMON_STOPPED.name, "seconds": 1.0})
    metrics.observe({"event": "something_else"})
    assert scrape(registry) == before
    metrics.observe({"event": events.DAEMON_STARTED.name, "pid": 1, "port": 50051, "role": "gateway", "rows_loaded": 0,
                     "load_seconds": 2.5, "startup_seconds": 3.25, "partitions": []})
    samples = scrape(registry)
    assert value(samples, "fire_load_seconds") == 2.5
    assert value(samples, "fire_startup_seconds") == 3.25


# -- read at scrape time ----------------------------------------------------------------------------


@dataclass
class Neighbour:
    """A watched neighbour as the daemon's mirror of its monitor process reports it."""

    neighbor: str
    current: Status
    tally: ProbeTally = field(default_factory=ProbeTally)

    def status(self) -> Status:
        return self.current

    def counts(self) -> ProbeTally:
        return self.tally


def state_registry(watched: list[Neighbour], dropped: dict[str, int] | None = None, active: int = 0,
                   held: dict[str, int] | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StateCollector("leader_b", "leader", watched, lambda: active, lambda: dict(dropped or {}),
                                     lambda: dict(held or {})))
    return registry


def test_each_neighbour_shows_all_four_statuses_with_exactly_its_own_at_one():
    watched = [Neighbour("worker_c", Status.DEGRADED), Neighbour("worker_d", Status.UNKNOWN)]
    samples = scrape(state_registry(watched))
    for neighbour in watched:
        shown = {dict(labels)["status"]: number for labels, number in series(samples, "fire_neighbor_status").items()
                 if ("neighbor", neighbour.neighbor) in labels}
        assert shown == {status.value: 1.0 if status is neighbour.current else 0.0 for status in Status}
    assert value(samples, "fire_daemon_info", daemon="leader_b", role="leader") == 1


def test_a_status_read_at_each_scrape_is_the_current_one():
    neighbour = Neighbour("worker_c", Status.HEALTHY)
    registry = state_registry([neighbour])
    assert value(scrape(registry), "fire_neighbor_status", neighbor="worker_c", status="healthy") == 1
    neighbour.current = Status.UNAVAILABLE
    samples = scrape(registry)
    assert value(samples, "fire_neighbor_status", neighbor="worker_c", status="healthy") == 0
    assert value(samples, "fire_neighbor_status", neighbor="worker_c", status="unavailable") == 1


def test_transitions_and_probes_are_counters_by_neighbour():
    tally = ProbeTally()
    for ok in (True, True, False):
        tally.probe(ProbeKind.DATAGRAM, ok, None)
    tally.probe(ProbeKind.GRPC, True, None)
    tally.transition("unknown", "healthy")
    tally.transition("healthy", "degraded")
    tally.transition("unknown", "healthy")
    samples = scrape(state_registry([Neighbour("worker_c", Status.HEALTHY, tally)]))
    assert series(samples, "fire_health_transitions_total") == {
        frozenset({("neighbor", "worker_c"), ("from", "unknown"), ("to", "healthy")}): 2.0,
        frozenset({("neighbor", "worker_c"), ("from", "healthy"), ("to", "degraded")}): 1.0}
    assert series(samples, "fire_probes_total") == {
        frozenset({("neighbor", "worker_c"), ("kind", "datagram"), ("outcome", "success")}): 2.0,
        frozenset({("neighbor", "worker_c"), ("kind", "datagram"), ("outcome", "failure")}): 1.0,
        frozenset({("neighbor", "worker_c"), ("kind", "grpc"), ("outcome", "success")}): 1.0}


def test_probe_latencies_are_a_cumulative_histogram_ending_at_the_count():
    tally = ProbeTally()
    latencies = (0.0004, 0.001, 0.001, 0.003, 0.6, 7.0)
    for seconds in latencies:
        tally.probe(ProbeKind.DATAGRAM, True, seconds)
    tally.probe(ProbeKind.WATCH, True, 0.02)
    samples = scrape(state_registry([Neighbour("worker_f", Status.HEALTHY, tally)]))
    labels = {"neighbor": "worker_f", "kind": "datagram"}
    buckets = {float(dict(key)["le"]): number for key, number in series(samples, "fire_probe_latency_seconds_bucket")
               .items() if key >= frozenset(labels.items())}
    assert sorted(buckets) == [*LATENCY_BUCKETS_SECONDS, math.inf]
    for bound, number in buckets.items():
        assert number == sum(1 for seconds in latencies if seconds <= bound), bound
    assert buckets[0.001] == 3  # the two exactly on the bound count in it
    assert buckets[math.inf] == value(samples, "fire_probe_latency_seconds_count", **labels) == 6
    assert value(samples, "fire_probe_latency_seconds_sum", **labels) == pytest.approx(sum(latencies))
    assert value(samples, "fire_probe_latency_seconds_count", neighbor="worker_f", kind="watch") == 1


def test_dropped_datagrams_are_split_into_source_and_reason():
    samples = scrape(state_registry([], dropped={"request: stale": 3, "leader_b: replayed": 2, "worker_c: bad seal": 1}))
    assert series(samples, "fire_datagrams_dropped_total") == {
        frozenset({("source", "request"), ("reason", "stale")}): 3.0,
        frozenset({("source", "leader_b"), ("reason", "replayed")}): 2.0,
        frozenset({("source", "worker_c"), ("reason", "bad seal")}): 1.0}


def test_active_requests_and_holdings_are_read_when_scraped():
    samples = scrape(state_registry([], active=5, held={"aug10-17": 10, "sep05-13": 32}))
    assert value(samples, "fire_active_requests") == 5
    assert value(samples, "fire_partitions_held") == 2
    assert value(samples, "fire_rows_held") == 42
    empty = scrape(state_registry([]))
    assert value(empty, "fire_partitions_held") == 0 and value(empty, "fire_rows_held") == 0


def test_the_metrics_route_answers_the_registry_in_the_text_format():
    registry = CollectorRegistry()
    metrics = EventMetrics(registry, clients=True)
    metrics.observe(finished("query", "complete", 0.01, 2))
    response = metrics_page(registry)(Request("/metrics", {}, {}))
    assert response.status == HTTPStatus.OK and response.stream is None
    assert response.content_type == CONTENT_TYPE_LATEST
    assert response.body.startswith(b"# HELP ")
    parsed = {sample.name: sample.value for family in text_string_to_metric_families(response.body.decode())
              for sample in family.samples if sample.labels == {"kind": "query", "outcome": "complete"}}
    assert parsed == {"fire_queries_total": 1.0}
    metrics.observe(finished("query", "complete", 0.01, 2))
    assert b'fire_queries_total{kind="query",outcome="complete"} 2.0' in metrics_page(registry)(
        Request("/metrics", {}, {})).body
