"""What watching the cluster costs (issue 10): the idle cluster's CPU (all six daemons and their
monitor processes, as % of one core) with nobody watching, then with a real Prometheus scraping
the six every 5 s (etc/prometheus.yml; target: still under 3 %), then with one dashboard page
open as well; and how long one scrape of the gateway's metrics takes.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.benchmarks.health_bench import OBSERVER, idle_cost, transition_after
from tests.benchmarks.query_bench import Figure
from tests.cluster import REAL_DATA, free_ports, prometheus_config, prometheus_scrapes_all, start_cluster, start_prometheus
from tests.waiting import wait_for

IDLE_SECONDS = 30.0
SCRAPES = 200


def _scrape_seconds(url: str) -> list[float]:
    times = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=5) as answer:
            answer.read()
        times.append(time.perf_counter() - started)
    return sorted(times)


def _watch_dashboard(url: str, stop: threading.Event) -> None:
    """A page's stream, read as a browser reads it, until `stop`."""
    with urllib.request.urlopen(url, timeout=30) as stream:
        while not stop.is_set():
            stream.readline()


def run(data_root: Path | None) -> None:
    data_root = data_root or (REAL_DATA if REAL_DATA.is_dir() else Path("var/fire-data").resolve())
    prometheus = shutil.which("prometheus")
    with tempfile.TemporaryDirectory(prefix="fire-observability-bench-") as scratch_name:
        scratch = Path(scratch_name)
        cluster = start_cluster(scratch / "cluster", data_root, scratch / "cache")
        server = None
        try:
            for target in OBSERVER:
                transition_after(cluster, target, "healthy", 0.0)
            unwatched, _ = idle_cost(cluster, IDLE_SECONDS)
            scraped = None
            if prometheus is not None:
                prometheus_config(cluster, scratch / "prometheus.yml")
                port = free_ports(1)[0]
                server = start_prometheus(prometheus, scratch / "prometheus.yml", scratch, port)
                wait_for(lambda: prometheus_scrapes_all(port), 60, "Prometheus to scrape all six daemons")
                scraped, _ = idle_cost(cluster, IDLE_SECONDS)
            stop = threading.Event()
            viewer = threading.Thread(target=_watch_dashboard, daemon=True, args=(
                f"http://127.0.0.1:{cluster.ports['gateway_a/dashboard']}/events", stop))
            viewer.start()
            viewed, _ = idle_cost(cluster, IDLE_SECONDS)
            stop.set()
            scrapes = _scrape_seconds(f"http://127.0.0.1:{cluster.ports['gateway_a/metrics']}/metrics")
        finally:
            if server is not None:
                server.terminate()
                server.wait(30)
            cluster.stop()
    print(f"data: {data_root}")
    print(Figure("idle CPU, nobody watching (% of one core)", unwatched, "%", 3.0).line())
    if scraped is None:
        print("idle CPU with Prometheus scraping: not measured (no prometheus here: apt-get install prometheus)")
    else:
        print(Figure("idle CPU, Prometheus scraping all six every 5 s", scraped, "%", 3.0).line())
        print(Figure("  of which the scrapes (difference)", scraped - unwatched, "%").line())
    print(Figure("idle CPU, scraped and one dashboard page open", viewed, "%").line())
    print(Figure("one scrape of the gateway's /metrics, median", statistics.median(scrapes) * 1000, "ms").line())
    print(Figure("one scrape of the gateway's /metrics, p99", scrapes[int(0.99 * len(scrapes)) - 1] * 1000, "ms").line())
