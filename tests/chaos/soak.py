"""One soak: a private cluster, the oracle's answers, clients checking every answer while faults
are injected one at a time, and the tally. The cluster is always stopped, a hung daemon always
resumed, whatever ends the run (a failure, Ctrl-C).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc
from tests.chaos import faults, workloads
from tests.chaos.expected import Reference
from tests.chaos.layout import partition_days
from tests.chaos.tally import Tally
from tests.chaos.transitions import unexplained
from tests.cluster import PROGRAMS, REAL_DATA, REPO, Cluster, start_cluster
from tests.waiting import wait_for

# Before the next fault every monitor must see its neighbours healthy again, so faults never
# overlap; a cluster that takes longer than this to settle counts the fault as not recovered.
SETTLE_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Settings:
    seconds: float  # of fault injection; requests in flight at the end are still answered
    seed: int
    data_root: Path
    scanning_clients: int = 2
    mixed_clients: int = 2


def default_data_root() -> Path:
    """The real 2020 data beside the checkout, else the generated set in var/ (written if absent)."""
    if REAL_DATA.is_dir():
        return REAL_DATA
    from daemons.datagen import ensure_generated

    generated = REPO / "var" / "fire-data"
    ensure_generated(generated)
    return generated


def progress(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True)


def run(settings: Settings, home: Path, cache_dir: Path, say: Callable[[str], None] = progress) -> Tally:
    """Runs the soak with the cluster's folders under `home` and the partition cache in `cache_dir`."""
    tally = Tally(settings.seed, settings.seconds, str(settings.data_root))
    rng = random.Random(settings.seed)
    say(f"starting a cluster in {home} on {settings.data_root}")
    cluster = start_cluster(home, settings.data_root, cache_dir, wait=False)
    try:
        say("reading the data with the oracle")
        reference = Reference(settings.data_root, partition_days([cluster.config_path(p) for p in PROGRAMS]))
        requests = workloads.catalogue(rng.choice(reference.sites()))
        expected = workloads.expectations(reference, requests)
        del reference  # the answers are all the soak needs; the rows are most of the process's memory
        say("waiting for the cluster to serve")
        cluster.wait_serving(timeout=120)
        wait_for(lambda: all_healthy(cluster), SETTLE_TIMEOUT_SECONDS, "every monitor to see its neighbours healthy")
        since = time.time()
        say(f"soaking for {settings.seconds:.0f} s (seed {settings.seed})")
        with workloads.running_clients(cluster.gateway, requests, expected, tally.record, settings.scanning_clients,
                                       settings.mixed_clients, settings.seed):
            inject_faults(cluster, rng, settings.seconds, tally, say)
            say("faults over; the clients finish the requests in hand")
        tally.unexplained = unexplained([e for p in PROGRAMS for e in cluster.events(p, "health_transition")],
                                        tally.faults, since)
    finally:
        say("stopping the cluster")
        cluster.stop()
    return tally


def inject_faults(cluster: Cluster, rng: random.Random, seconds: float, tally: Tally,
                  say: Callable[[str], None]) -> None:
    """One fault at a time until `seconds` have passed, each after a random pause and once the
    previous one has settled; stops early when one does not."""
    end = time.monotonic() + seconds
    while True:
        time.sleep(rng.uniform(1.0, 4.0))
        if time.monotonic() >= end:
            return
        kind, target = faults.pick(rng)
        fault = faults.inject(cluster, kind, target, rng)
        tally.faults.append(fault)
        if fault.serving_again is not None:
            try:
                wait_for(lambda: all_healthy(cluster), SETTLE_TIMEOUT_SECONDS, "the cluster to settle", 0.1)
                fault.settled = True
            except TimeoutError:
                pass
        say(f"{fault.describe()}: "
            + (f"serving again after {fault.serving_again - fault.injected:.1f} s" if fault.settled else
               "NOT RECOVERED; no more faults"))
        if not fault.settled:
            return


def all_healthy(cluster: Cluster) -> bool:
    """Whether the gateway and every monitor below it see all their neighbours healthy."""
    with grpc.insecure_channel(cluster.gateway) as channel:
        try:
            view = pb_grpc.NodeStub(channel).GetHealthStatus(pb.HealthStatusRequest(cluster=True), timeout=5)
        except grpc.RpcError:
            return False
    return (len(view.neighbors) == len(PROGRAMS) - 1 and all(n.status == "healthy" for n in view.neighbors)
            and not view.unreachable_observers)
