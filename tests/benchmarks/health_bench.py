"""Failure detection and recovery times, idle cost, and false alarms under load.

Injects faults into a private cluster under real supervisord and measures, from the JSON event
logs, the time from each fault to the monitor's transition: kill -9 and supervisorctl stop to
`unavailable`, SIGSTOP to `degraded` and `unavailable`, and a restarted daemon's first moment of
serving to `healthy`. Prints min / median / p99 next to the targets.

Then the same under load (`QueryLoad`: 200 clients scanning the whole table through the gateway,
retrying when it turns them away; 150 Node.Scan calls to leader_e whose answers are never read;
the largest aggregate, over and over): the health transitions and failovers while nothing is
faulted (target: none), and kill -9 and SIGSTOP detection times.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil

from daemons.channels import CHANNEL_OPTIONS
from daemons.rpc import airquality_pb2 as pb
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
    pid = cluster.pid(target)  # asked first: supervisord's answer must not count as detection time
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
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
    """(CPU of all six daemons and their monitor processes as % of one core while idle, whether
    their TCP connections stayed the same)."""
    daemons = [psutil.Process(cluster.pid(p)) for p in PROGRAMS]
    processes = daemons + [child for daemon in daemons for child in daemon.children()]

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


# -- load ------------------------------------------------------------------------------------------

LARGEST_GROUP_BY = ["parameter", "site", "agency", "day", "hour"]


class _Stoppable:
    def __init__(self) -> None:
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def _start(self, count: int, target: Any) -> None:
        self.threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
        for thread in self.threads:
            thread.start()

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


class FullScanClients(_Stoppable):
    """`clients` threads, each scanning the whole table through the gateway again and again; one
    turned away (RESOURCE_EXHAUSTED: the gateway admits 64) retries after a short pause, as a
    client would. Answers arrive as bytes, so the clients spend little CPU of the machine's own."""

    def __init__(self, gateway: str, clients: int):
        super().__init__()
        self.gateway = gateway
        self.completed = self.turned_away = 0
        self._start(clients, self._scan_until_stopped)

    def _scan_until_stopped(self) -> None:
        with grpc.insecure_channel(self.gateway, options=CHANNEL_OPTIONS) as channel:
            query = channel.unary_stream("/airquality.v1.AirQuality/Query",
                                         request_serializer=pb.QueryRequest.SerializeToString)
            while not self.stop.is_set():
                call = query(pb.QueryRequest(request_id=uuid.uuid4().hex), timeout=300)
                try:
                    for _ in call:
                        if self.stop.is_set():
                            call.cancel()
                            return
                    self.completed += 1
                except grpc.RpcError as error:
                    if error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED:
                        self.turned_away += 1
                        time.sleep(random.uniform(0.05, 0.3))
                    elif not self.stop.is_set():
                        self.errors.append(f"{error.code().name}: {error.details()}")
                        time.sleep(0.1)


class NeverReadScans:
    """`calls` Node.Scan calls straight to `leader`, over every partition it can reach, whose
    answers are never read: each holds a server thread blocked on flow control."""

    def __init__(self, cluster: Cluster, leader: str, calls: int):
        gateway = json.loads(cluster.config_path("gateway_a").read_text())
        self.routes = [pb.PartitionRoute(partition=partition, path=next(p for p in candidates if p[0] == leader))
                       for partition, candidates in gateway["routes"].items() if any(p[0] == leader for p in candidates)]
        self.channel = grpc.insecure_channel(f"127.0.0.1:{cluster.ports[leader]}", options=CHANNEL_OPTIONS)
        self._scan = self.channel.unary_stream("/airquality.v1.Node/Scan",
                                               request_serializer=pb.ScanRequest.SerializeToString)
        self.calls = [self._call() for _ in range(calls)]

    def _call(self) -> Any:
        return self._scan(pb.ScanRequest(request_id=uuid.uuid4().hex, routes=self.routes), timeout=600)

    def top_up(self) -> None:
        """Replaces the calls that ended (their daemon was killed) with new ones."""
        self.calls = [self._call() if call.done() else call for call in self.calls]

    def close(self) -> None:
        for call in self.calls:
            call.cancel()
        self.channel.close()


class LargestAggregates(_Stoppable):
    """The largest aggregate (every group key), asked again as soon as it is answered or refused."""

    def __init__(self, gateway: str):
        super().__init__()
        self.gateway = gateway
        self.outcomes: dict[str, int] = {}
        self._start(1, self._ask_until_stopped)

    def _ask_until_stopped(self) -> None:
        with grpc.insecure_channel(self.gateway, options=CHANNEL_OPTIONS) as channel:
            aggregate = channel.unary_unary("/airquality.v1.AirQuality/Aggregate",
                                            request_serializer=pb.AggregateRequest.SerializeToString,
                                            response_deserializer=pb.AggregateResponse.FromString)
            while not self.stop.is_set():
                future = aggregate.future(pb.AggregateRequest(request_id=uuid.uuid4().hex, group_by=LARGEST_GROUP_BY),
                                          timeout=300)
                while not future.done() and not self.stop.wait(0.05):
                    pass
                if not future.done():
                    future.cancel()
                    return
                try:
                    future.result()
                    outcome = "OK"
                except grpc.RpcError as error:
                    outcome = error.code().name
                    time.sleep(0.1)
                self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class QueryLoad:
    """The load of issue 12, while the block runs: 200 full scans through the gateway, 150 never-read
    Node.Scan calls to leader_e and the largest aggregate."""

    def __init__(self, cluster: Cluster, scans: int = 200, never_read: int = 150):
        self.scans = FullScanClients(cluster.gateway, scans)
        self.never_read = NeverReadScans(cluster, "leader_e", never_read)
        self.aggregates = LargestAggregates(cluster.gateway)

    def __enter__(self) -> QueryLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        for load in (self.scans, self.aggregates, self.never_read):
            load.close()

    def describe(self) -> str:
        return (f"load: {self.scans.completed} full scans completed, {self.scans.turned_away} turned away and "
                f"retried; largest aggregate: {self.aggregates.outcomes}; other errors: "
                f"{len(self.scans.errors) + len(self.aggregates.errors)}")


def alarms_since(cluster: Cluster, since: float) -> tuple[list[dict], list[dict]]:
    """(health transitions, failovers) logged since `since`, leaving out a restarted monitor's first
    look at its neighbours (from unknown)."""
    transitions = [e for observer in set(OBSERVER.values()) for e in cluster.events(observer, "health_transition")
                   if epoch_of(e) >= since and e["from"] != "unknown"]
    failovers = [e for e in cluster.events("gateway_a", "partition_failover") if epoch_of(e) >= since]
    return transitions, failovers


def refused_for_load(failover: dict) -> bool:
    """A failover away from a copy whose daemon turned the scan away for lack of room (admission
    limits), rather than one that failed or that a health monitor declared unavailable."""
    return "RESOURCE_EXHAUSTED" in failover["reason"]


def describe(transitions: list[dict]) -> str:
    return "; ".join(f"{e['daemon']}: {e['neighbor']} {e['from']}->{e['to']} ({e['reason']})" for e in transitions[:5])


def under_load(cluster: Cluster, quiet_seconds: float, faults: int) -> list[str]:
    """Lines reporting false alarms and detection times while the cluster serves a QueryLoad."""
    kill_detect = Series("under load: kill -9 -> unavailable", 0.100)
    hang_degraded = Series("under load: SIGSTOP -> degraded", 1.6)
    hang_unavailable = Series("under load: SIGSTOP -> unavailable", 3.0)
    targets = list(OBSERVER)
    faulted: list[tuple[str, float, float]] = []  # (target, from, to): its transitions are expected then
    with QueryLoad(cluster) as load:
        time.sleep(3)  # the load builds up: every admission slot taken, the never-read calls blocked
        since = time.time()
        time.sleep(quiet_seconds)
        transitions, failovers = alarms_since(cluster, since)
        for index in range(2 * faults):
            target = targets[index % len(targets)]
            began = time.time()
            if index < faults:
                kill_cycle(cluster, target, kill_detect, Series("", None))
            else:
                hang_cycle(cluster, target, hang_degraded, hang_unavailable, Series("", None))
            faulted.append((target, began, time.time() + 1))
            load.never_read.top_up()
        others = [e for e in alarms_since(cluster, faulted[0][1])[0]
                  if not any(e["neighbor"] == target and began <= epoch_of(e) <= ended for target, began, ended in faulted)]
    lines = [load.describe(),
             f"{'under load, nothing faulted: transitions':<48} {len(transitions)} in {quiet_seconds:.0f} s   target 0  "
             f"{'ok' if not transitions else 'MISSED: ' + describe(transitions)}",
             f"{'under load, nothing faulted: failovers':<48} {len(failovers)}   target 0  {'ok' if not failovers else 'MISSED'}"
             f"  ({sum(map(refused_for_load, failovers))} of them away from a daemon that turned the scan away: "
             f"RESOURCE_EXHAUSTED)"]
    lines += [series.line() for series in (kill_detect, hang_degraded, hang_unavailable)]
    lines.append(f"{'under load, faults: transitions of the others':<48} {len(others)}   target 0  "
                 f"{'ok' if not others else 'MISSED: ' + describe(others)}")
    return lines


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
            loaded = under_load(cluster, 30.0, faults)
        finally:
            cluster.stop()
    print(f"data: {data_root}")
    for series in (kill_detect, kill_recover, stop_detect, hang_degraded, hang_unavailable, hang_recover):
        print(series.line())
    print(f"{'idle CPU of all six daemons (% of one core)':<48} {cpu:.2f} %   target < 3 %  {'ok' if cpu < 3 else 'MISSED'}")
    print(f"{'idle TCP connections unchanged over 10 s':<48} {same_connections}")
    print(f"{'transitions during 15 s of 4 full scans':<48} {false_alarms}   target 0  {'ok' if not false_alarms else 'MISSED'}")
    for line in loaded:
        print(line)
