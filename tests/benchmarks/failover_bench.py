"""What one failure costs a query: time with a daemon down against all healthy (target: within
1.5x), and the extra time a failover in the middle of a stream adds.

Starts a private cluster under real supervisord; every figure is the median of several full
scans through the Python client library, each checked complete.
"""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

from daemons.client import FireClient, make_filter
from tests.benchmarks.query_bench import Figure, timed_query
from tests.cluster import PROGRAMS, REAL_DATA, Cluster, start_cluster
from tests.waiting import wait_for

PRIMARY = {"aug10-17": "leader_b", "aug18-26": "worker_c", "aug27-sep04": "worker_d", "sep05-13": "leader_e",
           "sep14-24": "worker_f"}


def routed_to_primaries(client: FireClient) -> bool:
    return {s.partition: s.served_by for s in client.aggregate().partitions} == PRIMARY


def full_scan_seconds(client: FireClient, runs: int) -> float:
    return statistics.median(timed_query(client, make_filter())[1] for _ in range(runs))


def scan_with_kill(client: FireClient, cluster: Cluster, target: str, partition: str) -> float:
    """Seconds for a full scan during which `target` is killed once it streams `partition`."""
    started = time.perf_counter()
    killed = False
    stream = client.query()
    for batch in stream:
        if not killed and batch.partition == partition:
            os.kill(cluster.pid(target), signal.SIGKILL)
            killed = True
    assert killed and stream.completeness.complete
    return time.perf_counter() - started


def run(data_root: Path | None, runs: int) -> None:
    data_root = data_root or (REAL_DATA if REAL_DATA.is_dir() else Path("var/fire-data").resolve())
    figures = []
    with tempfile.TemporaryDirectory(prefix="fire-failover-bench-") as scratch:
        cluster = start_cluster(Path(scratch) / "cluster", data_root, Path(scratch) / "cache")
        try:
            with FireClient(cluster.gateway) as client:
                wait_for(lambda: routed_to_primaries(client), 60, "routes to the primaries")
                healthy = full_scan_seconds(client, runs)
                figures.append(Figure("full scan, all healthy", healthy, "s"))
                for down in PROGRAMS[1:]:
                    cluster.ctl("stop", down, check=True)
                    wait_for(lambda down=down: down not in {s.served_by for s in client.aggregate().partitions}, 30,
                             f"the gateway to route around {down}")
                    degraded = full_scan_seconds(client, runs)
                    figures.append(Figure(f"full scan, {down} down (x healthy)", degraded / healthy, "x", 1.5))
                    cluster.ctl("start", down, check=True)
                    wait_for(lambda: routed_to_primaries(client), 60, "routes to the primaries again")
                for target, partition in (("worker_c", "aug18-26"), ("worker_f", "sep14-24"), ("leader_e", "sep05-13")):
                    extra = []
                    for _ in range(max(3, runs // 2)):
                        wait_for(lambda: routed_to_primaries(client), 60, "routes to the primaries again")
                        extra.append(scan_with_kill(client, cluster, target, partition) - healthy)
                    figures.append(Figure(f"extra time of a mid-stream failover ({target} killed)",
                                          statistics.median(extra), "s"))
        finally:
            cluster.stop()
    print(f"data: {data_root}")
    for figure in figures:
        print(figure.line())
