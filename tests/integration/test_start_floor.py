"""The benchmark's first-start floor (tests/benchmarks/start_floor.py): twelve bare interpreters
standing in for the daemons and their monitors, one per partition reading its CSVs with Arrow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.benchmarks import start_floor


def test_one_stand_in_reads_each_partition_of_the_shipped_configs_and_all_end(data_root: Path) -> None:
    shares = start_floor.partitions()
    assert len(shares) == 5 and all(days for days in shares.values())
    assert start_floor.floor(data_root, runs=1) > 0


def test_a_stand_in_that_fails_fails_the_figure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="a stand-in failed"):
        start_floor.floor(tmp_path, runs=1)  # no CSVs there: Arrow's reader has nothing to read
