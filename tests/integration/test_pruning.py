"""Partition pruning on a real cluster (issue 13): a query whose time range misses a partition's
rows never contacts its holders, so it is complete with those holders stopped, and says which
partitions it answered without asking; a range that reaches a stopped partition still says it
is missing. Rows are checked against the source CSVs read independently (tests/oracle.py)."""

from __future__ import annotations

import pytest

from daemons.client import FireClient, make_filter
from tests import oracle
from tests.cluster import Cluster, start_cluster
from tests.waiting import wait_for

DAY = "2020-08-15"  # in aug10-17 alone
STOPPED = ("worker_c", "worker_f")  # every copy of sep14-24; worker_c holds aug18-26's and sep05-13's too


@pytest.fixture(scope="module")
def pruning_cluster(tmp_path_factory, data_root, cache_dir):
    running = start_cluster(tmp_path_factory.mktemp("pruning"), data_root, cache_dir)
    yield running
    running.stop()


def _day_rows(data_root, site: str | None = None) -> list[tuple]:
    wanted = oracle.row_filter(sites=[site] if site else (), datetime_from=DAY, datetime_to=DAY)
    return [row for row in oracle.load_rows(data_root) if wanted(row)]


def _finished(cluster: Cluster, request_id: str) -> dict:
    return wait_for(lambda: next((e for e in cluster.events("gateway_a", "query_finished")
                                  if e["request_id"] == request_id), None), 10, f"query_finished of {request_id}")


def test_a_day_is_answered_whole_with_the_holders_of_other_days_stopped(pruning_cluster: Cluster, data_root):
    with FireClient(pruning_cluster.gateway, deadline_seconds=60) as client:
        expected = _day_rows(data_root)
        site = expected[0][oracle.SITE]
        everything_else = ["aug18-26", "aug27-sep04", "sep05-13", "sep14-24"]
        attempts = iter(range(1000))

        def day_answered_pruning_the_rest() -> bool:
            """While all serve: the gateway learns every copy's minutes (its status fetch) and every
            holder's process (its health view, a second old at most)."""
            request_id = f"day-all-up-{next(attempts)}"
            stream = client.query(make_filter(datetime_from=DAY, datetime_to=DAY), request_id=request_id)
            assert oracle.checksum(row for batch in stream for row in batch.rows()) == oracle.checksum(expected)
            return sorted(_finished(pruning_cluster, request_id)["pruned_partitions"]) == everything_else

        wait_for(day_answered_pruning_the_rest, 20, "the gateway to prune the partitions a day misses")
        for program in STOPPED:
            pruning_cluster.ctl("stop", program, check=True)
        try:
            stream = client.query(make_filter(sites=[site], datetime_from=DAY, datetime_to=DAY), request_id="day-site")
            rows = [row for batch in stream for row in batch.rows()]
            assert stream.completeness is not None and stream.completeness.complete
            assert oracle.checksum(rows) == oracle.checksum(_day_rows(data_root, site))
            pruned = {status.partition for status in stream.completeness.partitions if status.pruned}
            assert sorted(pruned) == everything_else
            finished = _finished(pruning_cluster, "day-site")
            assert finished["complete"] and sorted(finished["pruned_partitions"]) == everything_else

            count, answer = client.count(make_filter(datetime_from=DAY, datetime_to=DAY))
            assert answer.complete and count == len(expected)

            # A range reaching sep14-24, whose copies are all stopped, says so.
            stream = client.query(make_filter(sites=[site], datetime_from=DAY, datetime_to="2020-09-20"))
            list(stream)
            assert stream.completeness is not None and not stream.completeness.complete
            assert "sep14-24" in stream.completeness.missing_partitions
        finally:
            for program in STOPPED:
                pruning_cluster.ctl("start", program, check=True)
