"""The shipped overlay in one process: every daemon a real Fanout and NodeServicer, the edges
between them in-memory fakes (tests/unit/fakes.py InProcessChild), which can die or hang
mid-stream. The gateway tests use it with small synthetic partitions; the query benchmark with
the real ones, to measure what the daemons' own code costs a query without gRPC."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from daemons.config import DaemonConfig, PartitionSpec, load_config
from daemons.events import EventRecorder
from daemons.fanout.engine import Fanout
from daemons.health.status import Status
from daemons.servicers.gateway import GatewayServicer, Replicas
from daemons.servicers.node import NodeServicer
from daemons.servicers.replicas import ReplicaDirectory
from daemons.servicers.requests import RequestRegistry
from daemons.servicers.tokens import ResumeTokens
from daemons.storage.partition import Partition
from tests.cluster import ETC, PROGRAMS
from tests.unit.fakes import InProcessChild
from tests.unit.helpers import CRESCENT_CITY, partition_from_measurements

ROWS_PER_PARTITION = 40


def rows_of(partition: str) -> list[tuple[str, int, str]]:
    """What a partition holds, as (partition, position, site): distinct across partitions."""
    return [(partition, i, f"{partition} site {i}") for i in range(ROWS_PER_PARTITION)]


@dataclass
class FixedHealthView:
    """The gateway's health view, set by the test: every daemon not named is healthy."""

    known: dict[str, Status]

    def statuses(self) -> dict[str, Status]:
        return dict(self.known)

    def process_ids(self) -> dict[str, int]:
        return {}  # no process known: nothing is pruned here (tests/unit/test_plan.py prunes)


@dataclass
class Overlay:
    configs: dict[str, DaemonConfig]
    log: EventRecorder
    fanouts: dict[str, Fanout] = field(default_factory=dict)
    edges: dict[tuple[str, str], InProcessChild] = field(default_factory=dict)  # (parent, child) -> edge
    health: FixedHealthView = field(default_factory=lambda: FixedHealthView({}))  # what the gateway believes
    # daemon -> the children its own health monitor has declared unavailable
    down_as_seen_by: dict[str, set[str]] = field(default_factory=dict)
    token_key: bytes = b"k" * 32  # the gateway's, kept across its restarts

    def seen_down_by(self, observer: str, child: str) -> bool:
        return child in self.down_as_seen_by.get(observer, set())

    def edge(self, parent: str, child: str) -> InProcessChild:
        return self.edges[parent, child]

    def gateway(self, replicas: Replicas | None = None) -> GatewayServicer:
        """A gateway process over this overlay (call again for a restarted one); by default it
        learns the copies' contents from the leaders, as the daemon does."""
        config = self.configs["gateway_a"]
        registry = RequestRegistry("gateway_a", serving(), config.query.max_concurrent_requests, self.log)
        if replicas is None:
            leaders = {name: self.edge("gateway_a", name) for name in ("leader_b", "leader_e")}
            replicas = directory = ReplicaDirectory(config.routes, leaders, self.log)
            directory.refresh()  # what its thread does at start; the in-memory leaders answer at once
        return GatewayServicer(config, self.fanouts["gateway_a"], registry, self.health, self.log,
                               ResumeTokens(self.token_key), replicas)

    def replace_copy(self, daemon: str, partition: str, rows: list[tuple[str, int, str]],
                     missing_days: tuple[str, ...] = ()) -> None:
        """Gives `daemon` another copy of `partition`: these rows, with these days missing on disk."""
        copy = partition_from_measurements([CRESCENT_CITY._replace(site_name=site, aqi=i) for _, i, site in rows],
                                           partition)
        copy.missing_days = missing_days
        self.fanouts[daemon].partitions[partition] = copy


def serving() -> threading.Event:
    serving = threading.Event()
    serving.set()
    return serving


def synthetic_partition(spec: PartitionSpec) -> Partition:
    """ROWS_PER_PARTITION rows, each naming its own site (rows_of)."""
    return partition_from_measurements(
        [CRESCENT_CITY._replace(site_name=site, aqi=i) for _, i, site in rows_of(spec.name)], spec.name)


def build_overlay(partition_of: Callable[[PartitionSpec], Partition] = synthetic_partition) -> Overlay:
    """The shipped configs' six daemons, each holding `partition_of` each partition its config names."""
    configs = {program: load_config(ETC / f"{program}.json") for program in PROGRAMS}
    overlay = Overlay(configs, EventRecorder())
    for program in ("worker_c", "worker_d", "worker_f", "leader_b", "leader_e", "gateway_a"):  # children first
        config = configs[program]
        children = {}
        for link in config.children:
            node = NodeServicer(configs[link.name], overlay.fanouts[link.name],
                                RequestRegistry(link.name, serving(), 64, overlay.log), 0.0, lambda: True, dict)
            children[link.name] = overlay.edges[program, link.name] = InProcessChild(link.name, node)
        fanout = Fanout(program, children, config.query.call_timeout_seconds, overlay.log,
                        unavailable=functools.partial(overlay.seen_down_by, program))
        for spec in config.data.partitions if config.data else ():
            fanout.partitions[spec.name] = partition_of(spec)
        overlay.fanouts[program] = fanout
    return overlay
