"""What the daemons' own code costs a one-site query: the other half of the 16-client figure.

grpc_floor.py measures the calls and messages of a one-site query on bare gRPC, with none of our
work. This measures the reverse: the six daemons' servicers, fan-outs, merges and scans on the
real partitions, wired in one process through the in-memory edges the gateway tests use
(tests/overlay.py), with no gRPC at all. The chunks are still serialized and parsed at every
edge, and each child's stream still runs on a pump thread, as between the processes. The two
CPU figures add up to about what the cluster spends a query one at a time: on 2026-12-01, 6.0-8.3
ms here and 6.2-6.5 ms on bare gRPC (one client), against 12.5-14.5 ms for the cluster.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from daemons.config import PartitionSpec
from daemons.rpc import airquality_pb2 as pb
from daemons.storage.partition import Partition, load_partition
from tests.overlay import build_overlay
from tests.unit.fakes import FakeContext

WARM_UP_QUERIES = 50


def cpu_per_query(data_root: Path, cache_dir: Path, sites: list[str], seconds: float = 5.0) -> float:
    """CPU seconds of this process per one-site query over all days, the queries one after another
    for `seconds` on the shipped overlay holding the partitions of `data_root` (read from
    `cache_dir`, which a cluster that ran on them has filled)."""
    loaded: dict[str, Partition] = {}

    def partition_of(spec: PartitionSpec) -> Partition:  # one copy of each, as its holders load the same
        if spec.name not in loaded:
            loaded[spec.name] = load_partition(spec, data_root, cache_dir)
        return loaded[spec.name]

    gateway = build_overlay(partition_of).gateway()
    numbers = itertools.count()

    def ask(site: str) -> None:
        request = pb.QueryRequest(request_id=f"in-process-{next(numbers)}", filter=pb.QueryFilter(site_names=[site]))
        context = FakeContext(timeout=30)
        answer = list(gateway.Query(request, context))
        context.end()  # what gRPC does once the last message is sent: the request leaves the registry
        last = pb.QueryResponse.FromString(answer[-1] if isinstance(answer[-1], bytes) else answer[-1].SerializeToString())
        if not (last.is_last_chunk and last.complete):
            raise RuntimeError(f"the in-process answer for {site!r} was not complete")

    turns = itertools.cycle(sites)
    for _ in range(WARM_UP_QUERIES):
        ask(next(turns))
    asked, started, cpu_before = 0, time.monotonic(), time.process_time()
    while time.monotonic() - started < seconds:
        ask(next(turns))
        asked += 1
    return (time.process_time() - cpu_before) / asked
