"""What mutual TLS costs (issue 9): the same private cluster on the same data, once plaintext and once
with every daemon's `tls` section set (certificates from daemons/security/certs.py), one after the
other in one run: full-scan time (target: TLS at most 1.3x plaintext), the idle CPU of the whole
cluster (target under 3 % of one core), and kill -9 / SIGSTOP detection against the health targets.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from daemons.client import FireClient, make_filter
from daemons.security.certs import tls_section, write_cluster
from tests.benchmarks.health_bench import OBSERVER, Series, hang_cycle, idle_cost, kill_cycle, transition_after
from tests.benchmarks.query_bench import Figure, timed_query
from tests.cluster import PROGRAMS, REAL_DATA, start_cluster

IDLE_SECONDS = 10.0


@dataclass
class ModeFigures:
    scan_seconds: float
    idle_cpu_percent: float
    series: list[Series]


def measure(scratch: Path, mode: str, data_root: Path, runs: int, faults: int) -> ModeFigures:
    """One cluster's figures; with mode "TLS" every daemon serves and calls with mutual TLS."""
    certs = scratch / "tls"

    def secure(program: str, document: dict) -> None:
        document["tls"] = tls_section(certs, program)

    tls = mode == "TLS"
    if tls:
        write_cluster(certs, {program: ["127.0.0.1", "localhost"] for program in PROGRAMS})
    cluster = start_cluster(scratch / mode, data_root, scratch / "cache", edit=secure if tls else None)
    targets = list(OBSERVER)
    kill_detect = Series(f"{mode}: kill -9 -> unavailable", 0.100)
    kill_recover = Series(f"{mode}: restarted daemon serving -> healthy", 0.200)
    hang_degraded = Series(f"{mode}: SIGSTOP -> degraded", 1.6)
    hang_unavailable = Series(f"{mode}: SIGSTOP -> unavailable", 3.0)
    hang_recover = Series(f"{mode}: SIGCONT -> healthy", 0.200)
    try:
        for target in targets:
            transition_after(cluster, target, "healthy", 0.0)
        with FireClient(cluster.gateway, tls_dir=certs / "client" if tls else None) as client:
            timed_query(client, make_filter())  # warm: the first scan pays for connections
            scan = statistics.median(timed_query(client, make_filter())[1] for _ in range(runs))
        cpu, _ = idle_cost(cluster, IDLE_SECONDS)
        for index in range(faults):
            kill_cycle(cluster, targets[index % len(targets)], kill_detect, kill_recover)
        for index in range(faults):
            hang_cycle(cluster, targets[index % len(targets)], hang_degraded, hang_unavailable, hang_recover)
    finally:
        cluster.stop()
    return ModeFigures(scan, cpu, [kill_detect, kill_recover, hang_degraded, hang_unavailable, hang_recover])


def run(data_root: Path | None, runs: int, faults: int) -> None:
    data_root = data_root or (REAL_DATA if REAL_DATA.is_dir() else Path("var/fire-data").resolve())
    with tempfile.TemporaryDirectory(prefix="fire-tls-bench-") as scratch:
        plaintext = measure(Path(scratch), "plaintext", data_root, runs, faults)
        secured = measure(Path(scratch), "TLS", data_root, runs, faults)
    print(f"data: {data_root}")
    for mode, figures in (("plaintext", plaintext), ("TLS", secured)):
        print(Figure(f"{mode}: full scan (median of {runs})", figures.scan_seconds, "s").line())
        print(Figure(f"{mode}: idle CPU of the cluster, % of one core", figures.idle_cpu_percent, "%", 3.0).line())
        for series in figures.series:
            print(series.line())
    print(Figure("full scan, TLS (x plaintext)", secured.scan_seconds / plaintext.scan_seconds, "x", 1.3).line())
