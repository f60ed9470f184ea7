"""Issue 10 on a real cluster: the daemons' metrics scraped by a real Prometheus server, and the
gateway's dashboard in a real headless Chromium, each watching `supervisorctl stop worker_c`.

Prometheus (Debian's `prometheus`) and Chromium (Debian's `chromium`, driven by Playwright) are
installed by .ci/run; where one is missing, its test skips and says so.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from daemons.client import FireClient
from daemons.rpc import airquality_pb2 as pb
from tests.cluster import (
    PROGRAMS,
    REPO,
    Cluster,
    free_ports,
    prometheus_api,
    prometheus_config,
    prometheus_scrapes_all,
    start_cluster,
    start_prometheus,
)
from tests.waiting import wait_for

PROMETHEUS = shutil.which("prometheus")
CHROMIUM = shutil.which("chromium")
SCRAPE_SECONDS = 5.0  # etc/prometheus.yml's scrape_interval
# Where the browser test leaves its screenshots (CI keeps the folder as an artifact); never beside
# ../shared, which CI mounts read-only.
ARTIFACTS = REPO / "logs" / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOWN_WITHIN_SECONDS = 1.0  # issue 10: a transition is in the page within 1 s


@pytest.fixture(scope="module")
def observed(tmp_path_factory, data_root, cache_dir) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("observed"), data_root, cache_dir)
    yield running
    running.stop()


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        body: bytes = answer.read()
        return body


def restart_worker_c(cluster: Cluster) -> None:
    since = time.time()
    cluster.ctl("start", "worker_c", check=True)
    cluster.wait_serving(["worker_c"], since=since)
    wait_for(lambda: _leader_b_sees_worker_c_healthy(cluster, since), 30, "leader_b to see worker_c healthy again")


def _leader_b_sees_worker_c_healthy(cluster: Cluster, since: float) -> bool:
    return any(e["neighbor"] == "worker_c" and e["to"] == "healthy" and _epoch(e) >= since
               for e in cluster.events("leader_b", "health_transition"))


def _epoch(event: dict[str, Any]) -> float:
    from tests.cluster import epoch_of
    return epoch_of(event)


# -- the metrics, read as Prometheus would ----------------------------------------------------------


def metric_value(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus's text format, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        head, _, rest = series.partition("{")
        if head != name:
            continue
        found = dict(pair.split("=", 1) for pair in rest.rstrip("}").split(",") if pair) if rest else {}
        if all(found.get(key) == json.dumps(wanted) for key, wanted in labels.items()):
            return float(value)
    return None


def test_every_daemon_serves_its_metrics_and_counts_what_the_gateway_answers(observed):
    for program in PROGRAMS:
        text = http_get(f"http://127.0.0.1:{observed.ports[f'{program}/metrics']}/metrics").decode()
        assert metric_value(text, "process_cpu_seconds_total") is not None, program
        assert metric_value(text, "fire_daemon_info", daemon=program) == 1
    metrics = f"http://127.0.0.1:{observed.ports['gateway_a/metrics']}/metrics"
    before = http_get(metrics).decode()
    with FireClient(observed.gateway, deadline_seconds=60) as client:
        stream = client.query(pb.QueryFilter(parameters=["PM10"]))
        rows = sum(len(batch) for batch in stream)
    assert stream.completeness is not None and stream.completeness.complete and rows > 0
    complete = {"kind": "query", "outcome": "complete"}
    counted = metric_value(before, "fire_queries_total", **complete) + 1

    def query_counted() -> str | None:
        # Counted from the query_finished event, which the gateway writes once its stream has ended
        # there: a moment after the client has read the last chunk (CI, 2026-12-01: not yet counted
        # when scraped at once).
        text = http_get(metrics).decode()
        return text if metric_value(text, "fire_queries_total", **complete) == counted else None

    after = wait_for(query_counted, 5, "the gateway to count the query")
    assert metric_value(after, "fire_rows_streamed_total", kind="query") == metric_value(
        before, "fire_rows_streamed_total", kind="query") + rows

    def sees_leader_b_healthy() -> str | None:  # the gateway's monitor reports its first view a moment after start
        text = http_get(metrics).decode()
        return text if metric_value(text, "fire_neighbor_status", neighbor="leader_b", status="healthy") == 1 else None

    statuses = wait_for(sees_leader_b_healthy, 10, "the gateway to see leader_b healthy")
    for status in ("unknown", "healthy", "degraded", "unavailable"):
        assert metric_value(statuses, "fire_neighbor_status", neighbor="leader_b", status=status) == (
            1 if status == "healthy" else 0)

    def probed() -> bool:  # the monitor process reports its counts at least every second
        text = http_get(metrics).decode()
        return (metric_value(text, "fire_probes_total", neighbor="leader_b", kind="datagram", outcome="success") or 0) > 0 \
            and (metric_value(text, "fire_probe_latency_seconds_count", neighbor="leader_b", kind="datagram") or 0) > 0

    wait_for(probed, 10, "the gateway's datagram probes of leader_b to be counted")
    worker = http_get(f"http://127.0.0.1:{observed.ports['worker_c/metrics']}/metrics").decode()
    assert metric_value(worker, "fire_partitions_held") == 3
    assert metric_value(worker, "fire_rows_held") > 0 and metric_value(worker, "fire_load_seconds") > 0


# -- a real Prometheus ---------------------------------------------------------------------------------


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus here (.ci/run installs Debian's package)")
def test_a_real_prometheus_scrapes_the_six_and_sees_worker_c_stop(observed, tmp_path):
    assert PROMETHEUS is not None
    config = tmp_path / "prometheus.yml"
    prometheus_config(observed, config)
    port = free_ports(1)[0]
    server = start_prometheus(PROMETHEUS, config, tmp_path, port)
    try:
        wait_for(lambda: prometheus_scrapes_all(port), 60, "Prometheus to scrape all six daemons")
        targets = prometheus_api(port, "targets")["activeTargets"]
        assert sorted(t["labels"]["daemon"] for t in targets) == sorted(PROGRAMS)
        query = 'fire_neighbor_status{daemon="leader_b",neighbor="worker_c",status="unavailable"}'

        def value() -> float | None:
            result = prometheus_api(port, "query", query=query)["result"]
            return float(result[0]["value"][1]) if result else None

        wait_for(lambda: value() == 0, 30, "Prometheus to have worker_c healthy as leader_b sees it")
        observed.ctl("stop", "worker_c", check=True)
        stopped = time.monotonic()
        try:
            # Within one scrape: the next one after the stop (plus Prometheus's query of it).
            wait_for(lambda: value() == 1, SCRAPE_SECONDS + 2, "Prometheus to see worker_c unavailable")
            assert time.monotonic() - stopped <= SCRAPE_SECONDS + 2
        finally:
            restart_worker_c(observed)
        wait_for(lambda: value() == 0, 2 * SCRAPE_SECONDS + 2, "Prometheus to see worker_c back")
    finally:
        server.terminate()
        server.wait(30)


# -- the dashboard in a real browser ---------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (.ci/run installs Debian's package)")
def test_the_dashboard_in_chromium_follows_worker_c_stopped_and_started(observed):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM is not None
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{observed.ports['gateway_a/dashboard']}/"
    worker = '[data-daemon="worker_c"]'
    link = '[data-link="leader_b->worker_c"]'
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url)
            for program in PROGRAMS:
                page.wait_for_selector(f'[data-daemon="{program}"][data-status="healthy"]', timeout=30_000)
            for observer, neighbor in (("gateway_a", "leader_b"), ("gateway_a", "leader_e"), ("leader_b", "worker_c"),
                                       ("leader_e", "worker_d"), ("leader_e", "worker_f")):
                page.wait_for_selector(f'[data-link="{observer}->{neighbor}"][data-status="healthy"]', timeout=10_000)
            assert page.get_attribute('[data-link="leader_b->worker_d"]', "data-kind") == "control"
            assert page.evaluate("document.body.dataset.connection") == "live"
            page.screenshot(path=str(ARTIFACTS / "dashboard-healthy.png"), full_page=True)

            observed.ctl("stop", "worker_c", check=True)
            stopped = time.monotonic()  # supervisorctl returns once the process has ended
            try:
                page.wait_for_selector(f'{worker}[data-status="unavailable"]', timeout=SHOWN_WITHIN_SECONDS * 1000)
                page.wait_for_selector(f'{link}[data-status="unavailable"]', timeout=SHOWN_WITHIN_SECONDS * 1000)
                assert time.monotonic() - stopped <= SHOWN_WITHIN_SECONDS
                page.screenshot(path=str(ARTIFACTS / "dashboard-worker_c-stopped.png"), full_page=True)
            finally:
                observed.ctl("start", "worker_c", check=True)  # returns once the process runs
            # Healthy once it has loaded its data and leader_b has heard it: seconds after the start.
            page.wait_for_selector(f'{worker}[data-status="healthy"]', timeout=60_000)
            page.wait_for_selector(f'{link}[data-status="healthy"]', timeout=SHOWN_WITHIN_SECONDS * 1000)
            # The timeline has the outage: leader_b's transitions of worker_c, to unavailable and back.
            page.wait_for_function("""() => {
                const row = document.querySelector('[data-timeline-link="leader_b->worker_c"]');
                return row && row.querySelectorAll('[data-status="unavailable"]').length > 0;
            }""", timeout=5_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-worker_c-back.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
