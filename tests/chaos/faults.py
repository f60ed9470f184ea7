"""One fault injected into one daemon of a running cluster, and the wait for it to serve again.

Kinds: kill -9 (supervisord restarts the daemon), SIGSTOP then SIGCONT a few seconds later (a
hang: the process keeps its sockets but answers nothing), and supervisorctl stop then start (a
graceful shutdown, some time down, a fresh start). The gateway gets only the first and the last:
nothing watches it, so a hang there would only stall the clients.
"""

from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass
from enum import StrEnum

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.cluster import PROGRAMS, Cluster, epoch_of
from tests.waiting import wait_for

GATEWAY = "gateway_a"
# A daemon serves about 0.3 s after it is spawned from the partition cache, and supervisord
# respawns a killed one within about a second; a minute means it is not coming back.
RECOVERY_TIMEOUT_SECONDS = 60.0


class FaultKind(StrEnum):
    KILL = "kill -9"
    HANG = "SIGSTOP, SIGCONT"
    STOP_START = "supervisorctl stop, start"


@dataclass
class Fault:
    kind: FaultKind
    target: str
    injected: float  # epoch seconds, just before the signal or the stop command
    serving_again: float | None = None  # epoch seconds; None while it is not (or never came back)
    settled: bool = False  # every monitor saw its neighbours healthy again afterwards

    def covers(self, moment: float, grace: float) -> bool:
        """Whether `moment` falls between the injection and `grace` seconds after the daemon
        served again (for ever, if it never did)."""
        end = float("inf") if self.serving_again is None else self.serving_again + grace
        return self.injected <= moment <= end

    def describe(self) -> str:
        return f"{self.kind} {self.target}"


def pick(rng: random.Random) -> tuple[FaultKind, str]:
    """A random daemon (the gateway one time in six) and a kind of fault it can take."""
    target = rng.choice(PROGRAMS)
    kinds = [FaultKind.KILL, FaultKind.STOP_START] if target == GATEWAY else list(FaultKind)
    return rng.choice(kinds), target


def inject(cluster: Cluster, kind: FaultKind, target: str, rng: random.Random) -> Fault:
    """Injects the fault and returns once the daemon serves again (its `serving_again` stays None
    when it has not within RECOVERY_TIMEOUT_SECONDS)."""
    pid = cluster.pid(target)
    fault = Fault(kind, target, time.time())
    if kind is FaultKind.KILL:
        os.kill(pid, signal.SIGKILL)
    elif kind is FaultKind.HANG:
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(rng.uniform(2.0, 5.0))  # past the 1.6 s its monitor takes to call it unavailable
        finally:
            os.kill(pid, signal.SIGCONT)
        fault.serving_again = _answering(cluster, target)
        return fault
    else:
        cluster.ctl("stop", target, check=True)
        time.sleep(rng.uniform(0.5, 3.0))  # down for a while: answers must fail over or be flagged partial
        cluster.ctl("start", target, check=True)
    fault.serving_again = _started(cluster, target, fault.injected)
    return fault


def _started(cluster: Cluster, target: str, since: float) -> float | None:
    """When the daemon logged daemon_started after `since`."""
    def started() -> float | None:
        return next((epoch_of(e) for e in cluster.events(target, "daemon_started") if epoch_of(e) >= since), None)
    try:
        return wait_for(started, RECOVERY_TIMEOUT_SECONDS, f"{target} to serve again", 0.05)
    except TimeoutError:
        return None


def _answering(cluster: Cluster, target: str) -> float | None:
    """When a resumed daemon answered a standard health check SERVING (a hang logs no new start)."""
    with grpc.insecure_channel(f"127.0.0.1:{cluster.ports[target]}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)

        def serving() -> float | None:
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            except grpc.RpcError:
                return None
            return time.time() if answer.status == health_pb2.HealthCheckResponse.SERVING else None
        try:
            return wait_for(serving, RECOVERY_TIMEOUT_SECONDS, f"{target} to answer again", 0.05)
        except TimeoutError:
            return None
