"""The benchmark's in-process figure (tests/benchmarks/in_process.py): the six daemons' code, wired in
one process without gRPC, answers one-site queries on the real partitions completely, and the CPU
they cost is measured."""

from __future__ import annotations

from daemons.config import load_config
from daemons.storage.partition import load_partition
from tests.benchmarks import in_process
from tests.cluster import ETC


def test_the_daemons_code_alone_answers_one_site_queries_and_reports_their_cpu(data_root, cache_dir) -> None:
    config = load_config(ETC / "worker_f.json")
    assert config.data is not None
    partition = load_partition(config.data.partitions[0], data_root, cache_dir)
    sites = sorted(set(partition.values["site_name"].tolist()))[:5]
    cpu = in_process.cpu_per_query(data_root, cache_dir, sites, seconds=0.5)  # raises on an incomplete answer
    assert 0 < cpu < 1
