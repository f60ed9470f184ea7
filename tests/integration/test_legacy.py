"""The original system's contract (issue 11), asked as its clients ask: with stubs generated from
proto/fire_service.proto alone, against a real supervisord cluster on the real data."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from daemons.client import FireClient, make_filter
from daemons.rpc import fire_service_pb2 as fs
from daemons.rpc import fire_service_pb2_grpc as fs_grpc
from daemons.storage.columns import FIELDS
from tests.cluster import PROGRAMS, REAL_DATA, Cluster, start_cluster
from tests.waiting import wait_for

LETTERS = {program: program[-1].upper() for program in PROGRAMS}
# The query of issue 11: PM2.5 and PM10 with an AQI of at most 100 (a min_aqi of 0 is "not set"
# in this contract; a missing AQI, -999, matches no range).
SMOKE = fs.QueryFilter(parameters=["PM2.5", "PM10"], max_aqi=100)
SMOKE_ROWS_REAL = 420_920


@pytest.fixture(scope="module")
def legacy_cluster(tmp_path_factory, data_root, cache_dir) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("legacy-cluster"), data_root, cache_dir)
    yield running
    running.stop()


def _stub(cluster: Cluster, program: str) -> tuple[grpc.Channel, fs_grpc.FireQueryServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{cluster.ports[program]}")
    return channel, fs_grpc.FireQueryServiceStub(channel)


def _health(cluster: Cluster) -> dict[str, fs.HealthResponse | str]:
    """What the old health script sees: each daemon's answer, or why it has none."""
    seen: dict[str, fs.HealthResponse | str] = {}
    for program in PROGRAMS:
        channel, stub = _stub(cluster, program)
        with channel:
            try:
                seen[program] = stub.HealthCheck(fs.HealthRequest(requester_id="health-script"), timeout=5)
            except grpc.RpcError as error:
                seen[program] = error.code().name
    return seen


def _healthy(answer: fs.HealthResponse | str) -> bool:
    return isinstance(answer, fs.HealthResponse) and answer.healthy and answer.status == "healthy"


def test_the_health_script_sees_six_of_six_and_a_stopped_daemon_unreachable(legacy_cluster):
    seen = _health(legacy_cluster)
    assert all(_healthy(answer) for answer in seen.values()), seen
    assert {program: (answer.process_id, answer.role) for program, answer in seen.items()  # type: ignore[union-attr]
            } == {program: (LETTERS[program], program.split("_")[0]) for program in PROGRAMS}
    legacy_cluster.ctl("stop", "worker_c", check=True)
    try:
        seen = _health(legacy_cluster)
        assert seen["worker_c"] == "UNAVAILABLE"
        assert all(_healthy(answer) for program, answer in seen.items() if program != "worker_c"), seen
    finally:
        legacy_cluster.ctl("start", "worker_c", check=True)
    wait_for(lambda: _healthy(_health(legacy_cluster)["worker_c"]), 60, "worker_c to answer again")


def test_the_smoke_query_in_chunks_of_1000_returns_exactly_the_native_rows(legacy_cluster, data_root):
    channel, stub = _stub(legacy_cluster, "gateway_a")
    with channel:
        chunks = list(stub.Query(fs.QueryRequest(request_id=11, filter=SMOKE, query_type="filter",
                                                 require_chunked=True, max_results_per_chunk=1000), timeout=300))
    legacy_rows = sorted(tuple(getattr(m, field) for field in FIELDS) for chunk in chunks for m in chunk.measurements)
    assert [chunk.chunk_number for chunk in chunks] == list(range(len(chunks)))
    assert all(len(chunk.measurements) <= 1000 for chunk in chunks)
    assert [chunk.is_last_chunk for chunk in chunks] == [False] * (len(chunks) - 1) + [True]
    assert (chunks[-1].total_chunks, chunks[-1].total_results) == (len(chunks), len(legacy_rows))
    with FireClient(legacy_cluster.gateway, deadline_seconds=300) as client:
        stream = client.query(make_filter(parameters=["PM2.5", "PM10"], max_aqi=100))
        native_rows = sorted(row for batch in stream for row in batch.rows())
    assert stream.completeness is not None and stream.completeness.complete
    assert legacy_rows == native_rows
    if data_root == REAL_DATA:
        assert len(legacy_rows) == SMOKE_ROWS_REAL


def test_a_count_is_one_chunk_with_the_total(legacy_cluster):
    channel, stub = _stub(legacy_cluster, "gateway_a")
    with channel:
        (chunk,) = list(stub.Query(fs.QueryRequest(request_id=12, filter=SMOKE, query_type="count"), timeout=120))
    with FireClient(legacy_cluster.gateway, deadline_seconds=120) as client:
        rows, answer = client.count(make_filter(parameters=["PM2.5", "PM10"], max_aqi=100))
    assert answer.complete
    assert (chunk.is_last_chunk, chunk.total_chunks, chunk.total_results, len(chunk.measurements)) == (True, 1, rows, 0)


def test_a_running_query_is_cancelled_by_its_id_and_its_status_read(legacy_cluster):
    channel, stub = _stub(legacy_cluster, "gateway_a")
    with channel:
        stream = stub.Query(fs.QueryRequest(request_id=13, max_results_per_chunk=100), timeout=300)
        first = next(stream)  # it runs, and nobody reads on
        assert first.chunk_number == 0 and len(first.measurements) == 100
        running = stub.GetStatus(fs.StatusRequest(request_id=13), timeout=10)
        assert running.status == "processing" and running.chunks_delivered >= 1
        cancelled = stub.CancelRequest(fs.StatusRequest(request_id=13, action="cancel"), timeout=10)
        assert cancelled.status == "cancelled"
        with pytest.raises(grpc.RpcError) as ended:
            for _ in stream:
                pass
        assert ended.value.code() == grpc.StatusCode.CANCELLED
        assert stub.GetStatus(fs.StatusRequest(request_id=13), timeout=10).status == "cancelled"
        # The one before ended in full, and says so.
        done = stub.GetStatus(fs.StatusRequest(request_id=12), timeout=10)
        assert (done.status, done.chunks_delivered, done.total_chunks) == ("completed", 1, 1)
        with pytest.raises(grpc.RpcError) as unknown:
            stub.GetStatus(fs.StatusRequest(request_id=999), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_old_topologys_internal_calls_and_queries_at_a_worker_say_where_to_go(legacy_cluster):
    for program, method, request in (("gateway_a", "InternalQuery", fs.InternalQueryRequest()),
                                     ("gateway_a", "Notify", fs.InternalQueryRequest()),
                                     ("worker_f", "GetStatus", fs.StatusRequest(request_id=1))):
        channel, stub = _stub(legacy_cluster, program)
        with channel, pytest.raises(grpc.RpcError) as error:
            getattr(stub, method)(request, timeout=10)
        assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert ("old system's topology" if method != "GetStatus" else "ask the gateway") in error.value.details()


def test_queries_the_old_contract_could_not_express_are_refused_clearly(legacy_cluster):
    channel, stub = _stub(legacy_cluster, "gateway_a")
    with channel:
        for request, words in ((fs.QueryRequest(request_id=14, max_results_per_chunk=-1), "max_results_per_chunk"),
                               (fs.QueryRequest(request_id=15, filter=fs.QueryFilter(min_datetime="yesterday")),
                                "datetime_from")):
            with pytest.raises(grpc.RpcError) as error:
                list(stub.Query(request, timeout=10))
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in error.value.details()


def test_concurrent_legacy_queries_do_not_share_an_id(legacy_cluster):
    channel, stub = _stub(legacy_cluster, "gateway_a")
    with channel:
        held = stub.Query(fs.QueryRequest(request_id=16, max_results_per_chunk=100), timeout=60)
        next(held)
        with pytest.raises(grpc.RpcError) as error:
            list(stub.Query(fs.QueryRequest(request_id=16, query_type="count"), timeout=10))
        assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS
        held.cancel()


def test_an_answer_missing_a_partition_ends_with_an_error_naming_it_after_the_rows_found(legacy_cluster):
    """Both copies of sep14-24 down (worker_f, worker_c): the old contract has no completeness
    field, so the rows found come, then UNAVAILABLE naming what is missing."""
    for program in ("worker_f", "worker_c"):
        legacy_cluster.ctl("stop", program, check=True)
    channel, stub = _stub(legacy_cluster, "gateway_a")
    try:
        with channel:
            received: list[fs.QueryResponseChunk] = []
            stream = stub.Query(fs.QueryRequest(request_id=17, filter=SMOKE, max_results_per_chunk=5000), timeout=120)
            with pytest.raises(grpc.RpcError) as partial:
                received.extend(stream)
            assert partial.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "sep14-24" in partial.value.details() and "incomplete" in partial.value.details()
            assert received and not any(chunk.is_last_chunk for chunk in received)
            with pytest.raises(grpc.RpcError) as count:
                list(stub.Query(fs.QueryRequest(request_id=18, filter=SMOKE, query_type="count"), timeout=120))
            assert count.value.code() == grpc.StatusCode.UNAVAILABLE and "sep14-24" in count.value.details()
    finally:
        for program in ("worker_f", "worker_c"):
            legacy_cluster.ctl("start", program, check=True)
    wait_for(lambda: all(_healthy(answer) for answer in _health(legacy_cluster).values()), 60, "all six back")
