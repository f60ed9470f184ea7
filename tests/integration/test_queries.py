"""Query answers from the real daemons under supervisord, checked against an independent CSV scan."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import time

import grpc
import pytest

from daemons.client import FireClient, make_filter
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc
from daemons.storage.columns import DICTIONARY, FIELDS
from tests import oracle
from tests.cluster import REPO
from tests.waiting import wait_for

PARTITIONS = {"aug10-17", "aug18-26", "aug27-sep04", "sep05-13", "sep14-24"}


@pytest.fixture(scope="module")
def rows(data_root):
    return oracle.load_rows(data_root)


@pytest.fixture(scope="module")
def client(cluster):
    with FireClient(cluster.gateway, deadline_seconds=120) as connected:
        yield connected


def _pick(rows, column, index=0):
    """A value that occurs in the data, chosen deterministically."""
    return sorted({row[column] for row in rows})[index]


FILTER_CASES = ("everything", "pm_aqi_0_100", "parameter_any_case", "site_any_case", "agency", "aqs_code",
                "full_aqs_code", "bbox", "datetime_minutes", "datetime_dates", "upper_date_only", "concentration_range",
                "concentration_min_only", "aqi_max_only", "combined", "nothing")


def filter_cases(rows):
    site = _pick(rows, oracle.SITE, 7)
    agency = _pick(rows, oracle.AGENCY, 3)
    short_aqs = next(row[oracle.AQS] for row in rows if row[oracle.AQS] != row[oracle.FULL_AQS])
    return {
        "everything": {},
        "pm_aqi_0_100": dict(parameters=["PM2.5", "PM10"], min_aqi=0, max_aqi=100),
        "parameter_any_case": dict(parameters=["ozone"]),
        "site_any_case": dict(sites=[site.upper(), "no such site"]),
        "agency": dict(agencies=[agency]),
        "aqs_code": dict(aqs_codes=[short_aqs]),
        "full_aqs_code": dict(aqs_codes=[rows[0][oracle.FULL_AQS]]),
        "bbox": dict(bbox=(36.0, -123.0, 39.5, -119.5)),
        "datetime_minutes": dict(datetime_from="2020-08-20T05:00", datetime_to="2020-09-02T13:00"),
        "datetime_dates": dict(datetime_from="2020-09-13", datetime_to="2020-09-14"),
        "upper_date_only": dict(datetime_to="2020-08-14"),
        "concentration_range": dict(min_concentration=-1.0, max_concentration=12.5),
        "concentration_min_only": dict(min_concentration=250),
        "aqi_max_only": dict(max_aqi=0),
        "combined": dict(parameters=["PM2.5"], bbox=(32.0, -125.0, 42.0, -114.0), datetime_from="2020-09-01",
                         min_aqi=151, max_concentration=500),
        "nothing": dict(sites=["no such site"]),
    }


def _query_checksum(client, query_filter, **kwargs):
    stream = client.query(query_filter, **kwargs)
    checksum = oracle.checksum(row for batch in stream for row in batch.rows())
    return checksum, stream.completeness


@pytest.mark.parametrize("case", FILTER_CASES)
def test_rows_match_an_independent_scan(client, rows, case):
    arguments = filter_cases(rows)[case]
    expected = oracle.checksum(row for row in rows if oracle.row_filter(**arguments)(row))
    received, completeness = _query_checksum(client, make_filter(**arguments))
    assert received == expected
    assert completeness.complete and completeness.missing_partitions == []
    assert completeness.total_results == expected[0]
    assert {s.partition for s in completeness.partitions} == PARTITIONS


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("group_by", [(), ("parameter",), ("site",), ("agency", "day"), ("hour",), ("parameter", "hour")])
def test_aggregates_match_an_independent_scan(client, rows, group_by):
    arguments = dict(datetime_from="2020-08-16", datetime_to="2020-09-20", max_aqi=400)
    accept = oracle.row_filter(**arguments)
    expected = oracle.aggregate((row for row in rows if accept(row)), group_by)
    answer = client.aggregate(make_filter(**arguments), group_by)
    assert answer.complete
    received = {tuple(group.key): group for group in answer.groups}
    assert received.keys() == expected.keys()
    for key, want in expected.items():
        group = received[key]
        assert group.rows == want["rows"]
        for metric in ("concentration", "aqi"):
            count, total, low, high = want[metric]
            stats = getattr(group, metric)
            assert stats.count == count
            if count:
                assert _close(stats.min, low) and _close(stats.max, high)
                assert _close(stats.mean, total / count)
            else:
                assert not stats.HasField("mean")


def test_chunks_are_numbered_sized_and_terminated(cluster):
    stub = pb_grpc.AirQualityStub(grpc.insecure_channel(cluster.gateway))
    request = pb.QueryRequest(request_id="chunks", filter=pb.QueryFilter(parameters=["CO"]), chunk_size=1000)
    chunks = list(stub.Query(request, timeout=60))
    assert [c.chunk_number for c in chunks] == list(range(len(chunks)))
    assert all(c.request_id == "chunks" for c in chunks)
    assert [c.is_last_chunk for c in chunks].count(True) == 1 and chunks[-1].is_last_chunk
    assert all(0 < c.columns.row_count <= 1000 for c in chunks[:-1])
    assert chunks[-1].total_results == sum(c.columns.row_count for c in chunks[:-1])
    for partition in PARTITIONS:  # offsets within each partition run 0, 1000, 2000, ... with no gap
        offsets = [c.partition_offset for c in chunks if c.partition == partition]
        assert offsets == list(range(0, 1000 * len(offsets), 1000))


def test_measurement_encoding_matches_columns(cluster, rows):
    stub = pb_grpc.AirQualityStub(grpc.insecure_channel(cluster.gateway))
    site = _pick(rows, oracle.SITE, 11)
    request = pb.QueryRequest(request_id="rows", filter=pb.QueryFilter(site_names=[site]),
                              encoding=pb.ROW_ENCODING_MEASUREMENTS)
    received = [tuple(getattr(m, f.name) for f in pb.FireMeasurement.DESCRIPTOR.fields)
                for chunk in stub.Query(request, timeout=60) for m in chunk.measurements]
    expected = [row for row in rows if row[oracle.SITE] == site]
    assert sorted(received) == sorted(expected)


@pytest.mark.parametrize("request_fields, message", [
    (dict(request_id=""), "request_id"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(chunk_size=-5), "chunk_size"),
    (dict(chunk_size=1_000_000), "chunk_size"),
    (dict(filter=pb.QueryFilter(datetime_from="2020-13-01")), "datetime_from"),
    (dict(filter=pb.QueryFilter(datetime_to="yesterday")), "datetime_to"),
    (dict(filter=pb.QueryFilter(datetime_from="2020-09-02", datetime_to="2020-09-01")), "inverted"),
    (dict(filter=pb.QueryFilter(min_aqi=100, max_aqi=50)), "inverted"),
    (dict(filter=pb.QueryFilter(min_concentration=float("nan"))), "finite"),
    (dict(filter=pb.QueryFilter(bbox=pb.BoundingBox(min_latitude=40, max_latitude=30, min_longitude=-120,
                                                    max_longitude=-110))), "bbox"),
    (dict(filter=pb.QueryFilter(bbox=pb.BoundingBox(min_latitude=-100, max_latitude=30))), "bbox"),
    (dict(filter=pb.QueryFilter(parameters=["PM25"])), "parameters"),
    (dict(filter=pb.QueryFilter(site_names=[" "])), "site_names[0]"),
    (dict(encoding=7), "encoding"),
])
def test_bad_requests_are_rejected_with_a_reason(cluster, request_fields, message):
    stub = pb_grpc.AirQualityStub(grpc.insecure_channel(cluster.gateway))
    request = pb.QueryRequest(**{"request_id": "bad", **request_fields})
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Query(request, timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


@pytest.mark.parametrize("request_fields, message", [
    (dict(group_by=["parameter", "weekday"]), "group_by[1]"),
    (dict(group_by=["site", "site"]), "repeated"),
    (dict(request_id=""), "request_id"),
])
def test_bad_aggregates_are_rejected_with_a_reason(cluster, request_fields, message):
    stub = pb_grpc.AirQualityStub(grpc.insecure_channel(cluster.gateway))
    with pytest.raises(grpc.RpcError) as raised:
        stub.Aggregate(pb.AggregateRequest(**{"request_id": "bad", **request_fields}), timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


def _scans_running(cluster) -> int:
    total = 0
    for program in ("leader_b", "leader_e", "worker_c", "worker_d", "worker_f"):
        stub = pb_grpc.NodeStub(grpc.insecure_channel(f"127.0.0.1:{cluster.ports[program]}"))
        total += stub.GetStatus(pb.StatusRequest(), timeout=10).active_requests
    return total


def test_cancel_request_stops_the_work_downstream(client, cluster):
    stream = client.query(chunk_size=500, request_id="to-cancel")
    batches = iter(stream)
    next(batches)
    assert _scans_running(cluster) > 0
    assert stream.cancel()
    with pytest.raises(grpc.RpcError) as raised:
        for _ in batches:
            pass
    assert raised.value.code() == grpc.StatusCode.CANCELLED
    wait_for(lambda: _scans_running(cluster) == 0, 10, "every daemon to drop the cancelled scan")
    wait_for(lambda: any(e["request_id"] == "to-cancel" and e["outcome"] == "cancelled"
                         for e in cluster.events("gateway_a", "query_finished")), 10, "the gateway to log the cancel")
    assert not client.cancel("to-cancel")  # no longer running


def test_a_client_that_disconnects_cancels_the_work_downstream(cluster):
    script = (
        "import os, sys\n"
        "from daemons.client import FireClient\n"
        f"stream = FireClient({cluster.gateway!r}).query(chunk_size=500, request_id='walk-away')\n"
        "batches = iter(stream)\n"  # held: an iteration dropped unfinished cancels its call at once
        "next(batches)\n"
        "print('got a chunk', flush=True)\n"
        "sys.stdin.readline()\n"
        "os._exit(0)\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert reader.stdout.readline().strip() == "got a chunk"
        assert _scans_running(cluster) > 0
        reader.stdin.write("\n")
        reader.stdin.flush()
        reader.wait(timeout=10)
    finally:
        reader.kill()
    wait_for(lambda: _scans_running(cluster) == 0, 10, "every daemon to drop the abandoned scan")
    wait_for(lambda: any(e["request_id"] == "walk-away" and e["outcome"] == "client_gone"
                         for e in cluster.events("gateway_a", "query_finished")), 10, "the gateway to log it")


def test_a_small_query_is_not_stuck_behind_full_scans(client, rows):
    site = _pick(rows, oracle.SITE, 5)
    scans = [client.query(chunk_size=2000) for _ in range(3)]
    readers = [iter(scan) for scan in scans]
    for reader in readers:
        next(reader)  # every scan is running and holding its buffers full
    started = time.monotonic()
    count, _ = oracle.checksum(row for batch in client.query(make_filter(sites=[site])) for row in batch.rows())
    elapsed = time.monotonic() - started
    for scan in scans:
        scan.cancel()
    assert count == sum(1 for row in rows if row[oracle.SITE] == site)
    assert elapsed < 5.0, f"a one-site query took {elapsed:.2f} s behind three paused full scans"


def _run_query(cluster, *args):
    return subprocess.run([str(REPO / "bin" / "query"), "--host", cluster.gateway, *args], capture_output=True,
                          text=True, timeout=120)


def test_cli_count_and_csv(cluster, rows):
    site = _pick(rows, oracle.SITE, 3)
    counted = _run_query(cluster, "--count", "--parameter", "pm2.5")
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.strip() == str(sum(1 for row in rows if row[oracle.PARAMETER] == "PM2.5"))

    listed = _run_query(cluster, "--site", site, "--format", "csv")
    assert listed.returncode == 0, listed.stderr
    lines = list(csv.reader(io.StringIO(listed.stdout)))
    assert lines[0] == ["latitude", "longitude", "datetime", "parameter", "concentration", "unit",
                        "raw_concentration", "aqi", "category", "site_name", "agency_name", "aqs_code",
                        "full_aqs_code"]
    parsed = [(float(f[0]), float(f[1]), f[2], f[3], float(f[4]), f[5], float(f[6]), int(f[7]), int(f[8]), *f[9:])
              for f in lines[1:]]
    assert sorted(parsed) == sorted(row for row in rows if row[oracle.SITE] == site)


def test_cli_csv_and_json_lines_are_byte_for_byte_the_source_rows_as_python_writes_them(cluster, rows):
    """The chunk-at-a-time text (daemons/query/text.py) against the source CSVs read independently
    (tests/oracle.py): each row as the csv module and json.dumps write it, as bin/query did row by row."""
    wanted = [row for row in rows if row[oracle.PARAMETER] == "PM10"]
    expected_csv = io.StringIO()
    csv.writer(expected_csv, lineterminator="\n").writerows(wanted)
    expected_jsonl = [json.dumps(dict(zip(FIELDS, row))) for row in wanted]
    for output_format, expected in (("csv", expected_csv.getvalue().splitlines()), ("jsonl", expected_jsonl)):
        listed = _run_query(cluster, "--parameter", "PM10", "--format", output_format)
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        if output_format == "csv":
            assert lines.pop(0) == ",".join(FIELDS)
        assert len(lines) == len(expected)
        assert sorted(lines) == sorted(expected), output_format  # rows come in partition order, not the files'


def test_a_full_scan_as_an_arrow_table_holds_every_row_once(client, expected):
    stream = client.query(chunk_size=65536)
    table = stream.to_arrow().unify_dictionaries()
    assert stream.completeness is not None and stream.completeness.complete
    columns: dict = {}
    for name in FIELDS:
        column = table.column(name).combine_chunks()
        if name in DICTIONARY:
            columns[name] = (column.dictionary.to_numpy(zero_copy_only=False), column.indices.to_numpy())
        elif name == "datetime":
            columns[name] = column.cast("int64").to_numpy() // 60  # seconds, UTC, back to epoch minutes
        else:
            columns[name] = column.to_numpy()
    assert oracle.column_checksum(oracle.column_row_hashes(columns)) == expected


def test_cli_rejects_bad_arguments_with_exit_2(cluster):
    for args in (["--bbox", "1,2,3"], ["--from", "2020-09-02", "--to", "2020-09-01"], ["--chunk-size", "0"],
                 ["--group-by", "weekday"], ["--count", "--group-by", "site"]):
        result = _run_query(cluster, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip()


def test_cli_aggregate_output(cluster, rows):
    result = _run_query(cluster, "--group-by", "parameter", "--agg", "count", "--agg", "max", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = oracle.aggregate(rows, ("parameter",))
    assert {line["parameter"]: line["rows"] for line in lines} == {k[0]: v["rows"] for k, v in expected.items()}
    assert {line["parameter"]: line["aqi_max"] for line in lines} == {
        k[0]: (v["aqi"][3] if v["aqi"][0] else None) for k, v in expected.items()}
