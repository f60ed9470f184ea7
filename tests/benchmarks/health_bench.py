"""Failure detection and recovery times, idle cost, and false alarms under load.

Injects faults into a private cluster under real supervisord and measures, from the JSON event
logs, the time from each fault to the monitor's transition: kill -9 and supervisorctl stop to
`unavailable`, SIGSTOP to `degraded` and `unavailable`, and a restarted daemon's first moment of
serving to `healthy`. Prints min / median / p99 next to the targets.
"""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.cluster import PROGRAMS, REAL_DATA, Cluster, epoch_of, full_scans, start_cluster
from tests.waiting import wait_for

OBSERVER = {"leader_b": "gateway_a", "leader_e": "gateway_a", "worker_c": "leader_b", "worker_f": "leader_e",
            "worker_d": "leader_e"}


@dataclass
class Series:
    name: str
    target: float | None  # seconds, at most
    samples: list[float] = field(default_factory=list)

    def line(self) -> str:
        if not self.samples:
            return f"{self.name:<48} no samples"
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        verdict = "" if self.target is None else ("ok" if p99 <= self.target else "MISSED")
        target = "" if self.target is None else f"p99 <= {self.target * 1000:.0f} ms"
        return (f"{self.name:<48} n={len(ordered):<3} min {ordered[0] * 1000:7.1f}  median "
                f"{statistics.median(ordered) * 1000:7.1f}  p99 {p99 * 1000:7.1f} ms  {target:<16} {verdict}")


def transition_after(cluster: Cluster, target: str, to: str, since: float, timeout: float = 30) -> dict:
    observer = OBSERVER[target]
    return wait_for(lambda: next((e for e in cluster.events(observer, "health_transition")
                                  if e["neighbor"] == target and e["to"] == to and epoch_of(e) >= since), None),
                    timeout, f"{observer} to see {target} {to}")


def started_after(cluster: Cluster, program: str, since: float) -> dict:
    return wait_for(lambda: next((e for e in cluster.events(program, "daemon_started") if epoch_of(e) >= since), None),
                    30, f"{program} to serve again")


def kill_cycle(cluster: Cluster, target: str, detect: Series, recover: Series) -> None:
    killed = time.time()
    os.kill(cluster.pid(target), signal.SIGKILL)
    detect.samples.append(epoch_of(transition_after(cluster, target, "unavailable", killed)) - killed)
    serving = epoch_of(started_after(cluster, target, killed))
    recover.samples.append(epoch_of(transition_after(cluster, target, "healthy", killed)) - serving)


def stop_cycle(cluster: Cluster, target: str, detect: Series) -> None:
    requested = time.time()
    cluster.ctl("stop", target, check=True)
    stopping = next(e for e in cluster.events(target, "daemon_stopping") if epoch_of(e) >= requested)
    detect.samples.append(epoch_of(transition_after(cluster, target, "unavailable", requested)) - epoch_of(stopping))
    restarted = time.time()
    cluster.ctl("start", target, check=True)
    transition_after(cluster, target, "healthy", restarted)


def hang_cycle(cluster: Cluster, target: str, degraded: Series, unavailable: Series, recover: Series) -> None:
    pid = cluster.pid(target)
    stopped = time.time()
    os.kill(pid, signal.SIGSTOP)
    try:
        degraded.samples.append(epoch_of(transition_after(cluster, target, "degraded", stopped)) - stopped)
        unavailable.samples.append(epoch_of(transition_after(cluster, target, "unavailable", stopped)) - stopped)
    finally:
        resumed = time.time()
        os.kill(pid, signal.SIGCONT)
    recover.samples.append(epoch_of(transition_after(cluster, target, "healthy", resumed)) - resumed)


def idle_cost(cluster: Cluster, seconds: float) -> tuple[float, bool]:
    """(CPU of all six daemons as % of one core while idle, whether their TCP connections stayed the same)."""
    processes = [psutil.Process(cluster.pid(p)) for p in PROGRAMS]

    def connections():
        return {(p.pid, c.laddr, c.raddr) for p in processes for c in p.net_connections(kind="tcp") if c.raddr}

    before_connections = connections()
    before = [sum(p.cpu_times()[:2]) for p in processes]
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    used = sum(sum(p.cpu_times()[:2]) - b for p, b in zip(processes, before))
    return 100 * used / elapsed, connections() == before_connections


def transitions_under_load(cluster: Cluster, seconds: float, scans: int = 4) -> int:
    since = time.time()
    with full_scans(cluster.gateway, scans):
        time.sleep(seconds)
    return sum(1 for observer in set(OBSERVER.values()) for e in cluster.events(observer, "health_transition")
               if epoch_of(e) >= since)


def run(data_root: Path | None, faults: int) -> None:
    data_root = data_root or (REAL_DATA if REAL_DATA.is_dir() else Path("var/fire-data").resolve())
    kill_detect = Series("kill -9 -> unavailable", 0.100)
    kill_recover = Series("restarted daemon serving -> healthy", 0.200)
    stop_detect = Series("supervisorctl stop (SIGTERM) -> unavailable", 0.100)
    hang_degraded = Series("SIGSTOP -> degraded", 1.6)
    hang_unavailable = Series("SIGSTOP -> unavailable", 3.0)
    hang_recover = Series("SIGCONT -> healthy", 0.200)
    targets = list(OBSERVER)
    with tempfile.TemporaryDirectory(prefix="fire-health-bench-") as scratch:
        cluster = start_cluster(Path(scratch) / "cluster", data_root, Path(scratch) / "cache")
        try:
            for target in targets:
                transition_after(cluster, target, "healthy", 0.0)
            cpu, same_connections = idle_cost(cluster, 10.0)
            false_alarms = transitions_under_load(cluster, 15.0)
            for index in range(faults):
                kill_cycle(cluster, targets[index % len(targets)], kill_detect, kill_recover)
            for index in range(max(5, faults // 2)):
                stop_cycle(cluster, targets[index % len(targets)], stop_detect)
            for index in range(faults):
                hang_cycle(cluster, targets[index % len(targets)], hang_degraded, hang_unavailable, hang_recover)
        finally:
            cluster.stop()
    print(f"data: {data_root}")
    for series in (kill_detect, kill_recover, stop_detect, hang_degraded, hang_unavailable, hang_recover):
        print(series.line())
    print(f"{'idle CPU of all six daemons (% of one core)':<48} {cpu:.2f} %   target < 3 %  {'ok' if cpu < 3 else 'MISSED'}")
    print(f"{'idle TCP connections unchanged over 10 s':<48} {same_connections}")
    print(f"{'transitions during 15 s of 4 full scans':<48} {false_alarms}   target 0  {'ok' if not false_alarms else 'MISSED'}")
