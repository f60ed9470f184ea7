"""Host faults on real network namespaces: detection and heal times per layout, and what a lost
host costs a full scan (target: within 1.5x of all up).

Each layout is deployed once (tests/hosts.py). The faults are spread over the hosts other than
the gateway's, and each is timed from the moment it was made (before the `ip` commands that make
it, so a figure includes their few milliseconds) to the `health_transition` events the monitors
log, one sample per watch crossing the cut:
- host loss: every process of the host killed -> `unavailable` (and `degraded` when logged first),
  seen by the monitors on the other hosts; the host is started again and every watch touching it
  healthy before the next fault;
- isolation: every link of the host cut with its daemons running -> `degraded` (or straight to
  `unavailable`) and `unavailable`, seen from both sides;
- heal: its links set up again -> `healthy`.
Then full scans through the gateway with all up and with each of those hosts killed, every answer
checked against the independent reading of the CSVs (tests/oracle.py).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from daemons.client import FireClient
from tests import netns, oracle
from tests.benchmarks.health_bench import Series
from tests.benchmarks.query_bench import Figure
from tests.cluster import REAL_DATA, epoch_of
from tests.hosts import LAYOUTS, WATCHES, Deployment, deployed
from tests.waiting import wait_for

TRANSITION_SECONDS = 30.0  # for one expected transition: the targets are seconds, so only a broken monitor waits this long
SETTLE_SECONDS = 120.0  # for a restarted host to serve and be seen healthy, parsing nothing (the cache is warm)


def reference(data_root: Path) -> tuple[int, int]:
    """(rows, checksum) of the whole data set read independently, as tests/conftest.py's `expected`."""
    return oracle.column_checksum(oracle.column_row_hashes(oracle.rows_as_columns(oracle.load_rows(data_root))))


def transition_to(deployment: Deployment, watch: tuple[str, str], to: str, since: float) -> dict[str, Any]:
    """The watch's first transition to `to` logged since `since`, waited for."""
    observer, neighbor = watch
    return wait_for(lambda: next((e for e in deployment.transitions(observer, neighbor, since) if e["to"] == to), None),
                    TRANSITION_SECONDS, f"{observer} to see {neighbor} {to}")


def first_sign(deployment: Deployment, watch: tuple[str, str], since: float) -> dict[str, Any]:
    """The watch's first transition away from healthy since `since`, waited for."""
    observer, neighbor = watch
    return wait_for(lambda: next((e for e in deployment.transitions(observer, neighbor, since)
                                  if e["to"] in ("degraded", "unavailable")), None),
                    TRANSITION_SECONDS, f"{observer} to suspect {neighbor}")


def settle(deployment: Deployment, host: str, since: float) -> None:
    """Waits until every watch touching `host` has turned healthy since `since` and the gateway
    counts every row: the state each fault starts from."""
    for observer, neighbor in WATCHES:
        if host in (deployment.host_of[observer], deployment.host_of[neighbor]):
            wait_for(lambda o=observer, n=neighbor: deployment.path(o, n, since)[-1:] == ["healthy"], SETTLE_SECONDS,
                     f"{observer} to see {neighbor} healthy again")
    with deployment.client(60) as client:
        wait_for(lambda: client.count()[1].complete, SETTLE_SECONDS, "the gateway to count every row")


def restart(deployment: Deployment, host: str) -> None:
    restarted = time.time()
    deployment.bin("start", host)
    settle(deployment, host, restarted)


def host_loss(deployment: Deployment, host: str, degraded: Series, unavailable: Series) -> None:
    killed = time.time()
    deployment.network.kill(host)
    for watch in deployment.across(host):
        if deployment.host_of[watch[0]] == host:
            continue  # the observer died with the host
        lost = transition_to(deployment, watch, "unavailable", killed)
        unavailable.samples.append(epoch_of(lost) - killed)
        before = [e for e in deployment.transitions(*watch, killed) if epoch_of(e) <= epoch_of(lost)]
        if before[0]["to"] == "degraded":
            degraded.samples.append(epoch_of(before[0]) - killed)
    restart(deployment, host)


def isolation_and_heal(deployment: Deployment, host: str, degraded: Series, unavailable: Series,
                       healthy: Series) -> None:
    cut = time.time()
    deployment.network.isolate(host)
    for watch in deployment.across(host):
        degraded.samples.append(epoch_of(first_sign(deployment, watch, cut)) - cut)
        unavailable.samples.append(epoch_of(transition_to(deployment, watch, "unavailable", cut)) - cut)
    healed = time.time()
    deployment.network.heal(host)
    for watch in deployment.across(host):
        healthy.samples.append(epoch_of(transition_to(deployment, watch, "healthy", healed)) - healed)


class Scans:
    """Full scans through the gateway, timed while the client only receives (the rows are hashed
    after the clock stops), each checked against the reference."""

    def __init__(self, deployment: Deployment, expected: tuple[int, int], runs: int):
        self.deployment, self.expected, self.runs = deployment, expected, runs
        self.wrong: list[str] = []  # one line per answer that was not exact

    def _one(self, client: FireClient, condition: str) -> float:
        started = time.perf_counter()
        stream = client.query()
        batches = list(stream)
        seconds = time.perf_counter() - started
        answer = oracle.column_checksum(np.concatenate([np.empty(0, np.uint64),
                                                        *map(oracle.batch_row_hashes, batches)]))
        completeness = stream.completeness
        if completeness is None or not completeness.complete:
            missing = "no last chunk" if completeness is None else completeness.describe_missing()
            self.wrong.append(f"{condition}: incomplete ({missing})")
        elif answer != self.expected:
            self.wrong.append(f"{condition}: {answer[0]} rows, checksum {answer[1]:#x}; expected {self.expected[0]} "
                              f"rows, checksum {self.expected[1]:#x}")
        return seconds

    def median_seconds(self, condition: str) -> float:
        with self.deployment.client(300) as client:
            return statistics.median(self._one(client, condition) for _ in range(self.runs))

    def with_host_down(self, host: str) -> float:
        """The median with every process of `host` killed, once the gateway routes around it; the
        host is started again afterwards."""
        programs = set(LAYOUTS[self.deployment.layout][host])
        self.deployment.network.kill(host)
        with self.deployment.client(60) as client:
            wait_for(lambda: not programs & {s.served_by for s in client.aggregate().partitions}, SETTLE_SECONDS,
                     f"the gateway to route around {host}")
        seconds = self.median_seconds(f"{host} down")
        restart(self.deployment, host)
        return seconds


def measure(deployment: Deployment, expected: tuple[int, int], faults: int, runs: int) -> list[str]:
    """The report's lines for one deployed layout."""
    scans = Scans(deployment, expected, runs)
    all_up = scans.median_seconds("all up")
    figures = [Figure("full scan, all up", all_up, "s")]
    for host in deployment.others:
        down = scans.with_host_down(host)
        figures += [Figure(f"full scan, {host} down", down, "s"),
                    Figure(f"full scan, {host} down (x all up)", down / all_up, "x", 1.5)]
    each = f"{faults} faults"
    loss_unavailable = Series(f"host loss -> unavailable ({each})", None)
    loss_degraded = Series(f"host loss -> degraded, when first ({each})", None)
    cut_degraded = Series(f"isolation -> degraded ({each})", 1.6)
    cut_unavailable = Series(f"isolation -> unavailable ({each})", 3.0)
    heal_healthy = Series(f"heal -> healthy ({each})", 1.0)
    for index in range(faults):
        host_loss(deployment, deployment.others[index % len(deployment.others)], loss_degraded, loss_unavailable)
    for index in range(faults):
        isolation_and_heal(deployment, deployment.others[index % len(deployment.others)], cut_degraded,
                           cut_unavailable, heal_healthy)
    lines = [series.line() for series in (loss_unavailable, loss_degraded, cut_degraded, cut_unavailable, heal_healthy)]
    lines += [figure.line() for figure in figures]
    lines.append(f"{'every full scan exact':<48} " + ("yes" if not scans.wrong else "NO: " + "; ".join(scans.wrong)))
    return lines


def run(data_root: Path | None, faults: int, runs: int, layouts: Sequence[str]) -> None:
    why_not = netns.unavailable()
    if why_not is not None:
        print(f"hosts: skipped: {why_not}")
        return
    data_root = data_root or (REAL_DATA if REAL_DATA.is_dir() else Path("var/fire-data").resolve())
    expected = reference(data_root)
    print(f"data: {data_root} ({expected[0]} rows)")
    with tempfile.TemporaryDirectory(prefix="fire-hosts-bench-", ignore_cleanup_errors=True) as scratch:
        cache_dir = Path(scratch) / "cache"
        cache_dir.mkdir()
        for layout in layouts:
            places = "; ".join(f"{host} {' '.join(programs)}" for host, programs in LAYOUTS[layout].items())
            print(f"\n{layout} ({places}), the gateway's host never faulted", flush=True)
            with deployed(layout, Path(scratch) / layout, data_root, cache_dir) as deployment:
                for line in measure(deployment, expected, faults, runs):
                    print(line)
