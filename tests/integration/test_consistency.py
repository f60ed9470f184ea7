"""Copies of the data that differ, and bad data, under real supervisord: never an answer marked
complete that is wrong, and never a daemon that stops serving what it can.

Each daemon given a data folder of its own here is what a host with its own copy of the data
looks like; the folders are symlink farms over the test data, with the difference made on purpose.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from daemons.client import FireClient
from daemons.rpc import airquality_pb2 as pb
from tests.cluster import Cluster, epoch_of, start_cluster
from tests.waiting import wait_for

SEP14_24 = [f"202009{day}" for day in range(14, 25)]


def csv_rows(paths: list[Path]) -> int:
    """Rows in AirNow files: one per line (no field holds a newline)."""
    return sum(path.read_bytes().count(b"\n") for path in paths)


def day_files(root: Path, day: str) -> list[Path]:
    return sorted((root / day).glob(f"{day}-*.csv"))


def symlink_farm(data_root: Path, farm: Path, *, drop_days=(), drop_files=(), extra: dict[str, str] | None = None):
    """A data folder linking to data_root's files, without some days or files, plus bad `extra`
    entries (relative path -> "fifo", "directory" or "dangling")."""
    for day_folder in sorted(data_root.iterdir()):
        if not day_folder.is_dir() or day_folder.name in drop_days:
            continue
        (farm / day_folder.name).mkdir(parents=True)
        for path in sorted(day_folder.iterdir()):
            if path.name not in drop_files:
                (farm / day_folder.name / path.name).symlink_to(path)
    for relative, kind in (extra or {}).items():
        target = farm / relative
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "directory":
            target.mkdir()
        else:
            target.symlink_to(farm / "nowhere.csv")
    return farm


def full_scan(cluster: Cluster, on_batch=lambda batch: None):
    """Rows delivered per partition (checked to be contiguous from 0: nothing twice) and completeness."""
    delivered: dict[str, int] = {}
    with FireClient(cluster.gateway, deadline_seconds=120) as client:
        stream = client.query(chunk_size=4096)
        for batch in stream:
            assert batch.offset == delivered.get(batch.partition, 0), "a row was repeated or skipped"
            delivered[batch.partition] = batch.offset + len(batch)
            on_batch(batch)
    assert stream.completeness is not None
    return delivered, stream.completeness


def statuses(completeness) -> dict[str, object]:
    return {status.partition: status for status in completeness.partitions}


@pytest.fixture(scope="module")
def day_missing(tmp_path_factory, data_root, cache_dir):
    """worker_f's copy lacks the day 20200914; worker_c's bad files sit in 20200818."""
    farm = tmp_path_factory.mktemp("farms")
    roots = {
        "worker_f": symlink_farm(data_root, farm / "f", drop_days={"20200914"}),
        "worker_c": symlink_farm(data_root, farm / "c", extra={"20200818/20200818-90.csv": "fifo",
                                                              "20200818/20200818-91.csv": "directory",
                                                              "20200818/20200818-92.csv": "dangling"}),
    }
    running = start_cluster(tmp_path_factory.mktemp("day-missing"), data_root, cache_dir, data_roots=roots)
    yield running
    running.stop()


def test_a_copy_missing_a_day_is_passed_over_and_the_answer_is_exact(day_missing, data_root):
    (missing,) = day_missing.events("worker_f", "partition_days_missing")
    assert (missing["partition"], missing["days"]) == ("sep14-24", ["20200914"])
    expected = csv_rows(sorted(data_root.glob("*/*.csv")))

    def counted() -> pb.AggregateResponse | None:
        """A count: incomplete (never wrong) until the gateway has learned every copy's content."""
        with FireClient(day_missing.gateway) as client:
            count, answer = client.count()
        assert count <= expected and (count == expected or not answer.complete)
        return answer if answer.complete else None

    answer = wait_for(counted, 30, "the gateway to learn which copies are complete", 0.2)
    assert {s.partition: s.served_by for s in answer.partitions}["sep14-24"] == "worker_c"
    delivered, completeness = full_scan(day_missing)
    assert completeness.complete and sum(delivered.values()) == expected


def test_bad_files_are_named_and_the_daemon_serves_the_rest(day_missing):
    (skipped,) = day_missing.events("worker_c", "data_files_skipped")
    assert skipped["partition"] == "aug18-26"
    assert skipped["files"] == ["20200818/20200818-90.csv: a FIFO, not a regular file",
                                "20200818/20200818-91.csv: a directory, not a regular file",
                                "20200818/20200818-92.csv: No such file or directory"]
    assert day_missing.state("worker_c") == "RUNNING"


def test_with_the_complete_copies_down_the_answer_says_exactly_what_is_missing(day_missing, data_root):
    day_missing.ctl("stop", "worker_c", check=True)
    day_missing.ctl("stop", "worker_d", check=True)  # the other copy of aug18-26
    try:
        def partial_as_expected() -> bool:
            with FireClient(day_missing.gateway) as client:
                answer = client.aggregate()
            served = {s.partition: s for s in answer.partitions}
            return served["sep14-24"].served_by == "worker_f"
        wait_for(partial_as_expected, 30, "the gateway to plan around worker_c and worker_d")
        delivered, completeness = full_scan(day_missing)
        assert not completeness.complete and "sep14-24" in completeness.missing_partitions
        status = statuses(completeness)["sep14-24"]
        assert "day 20200914 missing on disk" in status.error
        assert delivered["sep14-24"] == csv_rows([f for day in SEP14_24[1:] for f in day_files(data_root, day)])
    finally:
        day_missing.ctl("start", "worker_c", "worker_d", check=True)


def test_a_stopped_daemon_with_a_fifo_in_its_data_stops_and_restarts_cleanly(day_missing):
    started = time.monotonic()
    day_missing.ctl("stop", "worker_c", check=True)
    assert time.monotonic() - started < 10
    since = time.time()
    day_missing.ctl("start", "worker_c", check=True)
    day_missing.wait_serving(["worker_c"], since=since)


def test_an_edited_cache_entry_is_rejected_and_rebuilt(day_missing, cache_dir, data_root):
    root_digest = hashlib.sha256(str(data_root.resolve()).encode()).hexdigest()[:8]  # entries are per data folder
    (entry,) = cache_dir.glob(f"sep05-13-{root_digest}-*.npz")
    with np.load(entry, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["n_aqi"] = arrays["n_aqi"][:1000]  # well formed, and short
    with entry.open("wb") as out:
        np.savez(out, allow_pickle=False, **arrays)
    since = time.time()
    os.kill(day_missing.pid("leader_e"), signal.SIGKILL)
    day_missing.wait_serving(["leader_e"], since=since)
    rejected = [e for e in day_missing.events("leader_e", "cache_rejected") if epoch_of(e) >= since]
    assert rejected and "column aqi" in rejected[0]["reason"]
    wait_for(lambda: FireClient(day_missing.gateway).count()[1].complete, 30, "every partition to answer again")
    with FireClient(day_missing.gateway) as client:
        count, answer = client.count()
    assert answer.complete and count == csv_rows(sorted(data_root.glob("*/*.csv")))


@pytest.fixture(scope="module")
def copies_differ(tmp_path_factory, data_root, cache_dir):
    """worker_f's copy of sep14-24 lacks one hour file, with every day present: it differs from
    worker_c's without knowing it."""
    dropped = day_files(data_root, "20200916")[5]
    farm = symlink_farm(data_root, tmp_path_factory.mktemp("farm-f"), drop_files={dropped.name})
    running = start_cluster(tmp_path_factory.mktemp("copies-differ"), data_root, cache_dir,
                            data_roots={"worker_f": farm})
    yield running, dropped
    running.stop()


def test_copies_that_differ_are_logged_and_never_called_complete(copies_differ, data_root):
    cluster, dropped = copies_differ
    wait_for(lambda: cluster.events("gateway_a", "replica_mismatch"), 30, "the gateway to compare the copies")
    (mismatch,) = cluster.events("gateway_a", "replica_mismatch")
    assert (mismatch["partition"], mismatch["preferred"], mismatch["other"]) == ("sep14-24", "worker_f", "worker_c")
    worker_f_rows = csv_rows([f for day in SEP14_24 for f in day_files(data_root, day) if f != dropped])
    assert mismatch["preferred_fingerprint"].startswith(f"{worker_f_rows}:")
    delivered, completeness = full_scan(cluster)
    assert completeness.missing_partitions == ["sep14-24"]
    assert "copies disagree" in statuses(completeness)["sep14-24"].error
    assert delivered["sep14-24"] == worker_f_rows


def test_a_failover_mid_stream_never_continues_on_a_copy_that_differs(copies_differ):
    cluster, _ = copies_differ
    killed: list[int] = []

    def kill_worker_f_once_streaming(batch) -> None:
        if not killed and batch.partition == "sep14-24" and batch.offset >= 20_000:
            killed.append(batch.offset)
            os.kill(cluster.pid("worker_f"), signal.SIGKILL)

    delivered, completeness = full_scan(cluster, kill_worker_f_once_streaming)  # asserts nothing twice
    assert killed
    assert not completeness.complete and completeness.missing_partitions == ["sep14-24"]
    assert delivered["sep14-24"] >= killed[0]
    failovers = [e for e in cluster.events("gateway_a", "partition_failover") if e["partition"] == "sep14-24"]
    assert all(e["to"] != "worker_c" for e in failovers)  # worker_c holds other rows
