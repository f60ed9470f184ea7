"""Fixtures shared by the integration tests and the benchmarks' helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import oracle
from tests.cluster import REAL_DATA, start_cluster


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """The real 2020 data when it is beside the checkout, else the embedded generated set."""
    if REAL_DATA.is_dir():
        return REAL_DATA
    from daemons.datagen import ensure_generated

    root = tmp_path_factory.getbasetemp() / "fire-data"
    ensure_generated(root)
    return root


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One partition cache for every cluster of the session, so only the first start parses CSVs."""
    return tmp_path_factory.mktemp("partition-cache")


@pytest.fixture(scope="session")
def expected(data_root):
    """(rows, checksum) of the whole data set, from the independent CSV scan (tests/oracle.py)."""
    return oracle.column_checksum(oracle.column_row_hashes(oracle.rows_as_columns(oracle.load_rows(data_root))))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, data_root, cache_dir):
    """A cluster the read-only tests share; tests that stop daemons start their own."""
    running = start_cluster(tmp_path_factory.mktemp("cluster"), data_root, cache_dir)
    yield running
    running.stop()
