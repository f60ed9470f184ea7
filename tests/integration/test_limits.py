"""Bounded work on real daemons (issue 12): admission limits that leave health checks their threads,
slow readers cut off, memory per never-read scan, and a port that is already served.

Each test reproduces an adversarial user's finding against a private cluster on the real data:
calls are started on raw channels and never read, as a client that stopped reading does.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemons.client import FireClient
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc
from tests.cluster import REPO, Cluster, epoch_of, read_events, start_cluster
from tests.waiting import wait_for

HEALTH_DEADLINE = 0.6  # what the monitors give a HealthCheck (health_monitoring.timeout_seconds)
REAPER_CLIENT_LIMIT = 2
# gRPC shares one connection among channels to the same address unless told not to; a daemon
# counts calls from parents per connection.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
REAPER_INTERNAL_LIMIT = 4  # the reaper cluster's gateway: Node.Scan straight to it
REAPER_GATEWAY_IDLE = 4.0  # seconds: a stopped client is cut off after this
REAPER_LEADER_IDLE = 0.5  # leader_e: a stopped parent is cut off after ten times this
# Where leader_e's reach is scanned from leader_e itself: its own partition and its workers'.
LEADER_E_ROUTES = [pb.PartitionRoute(partition="sep05-13", path=["leader_e"]),
                   pb.PartitionRoute(partition="sep14-24", path=["leader_e", "worker_f"]),
                   pb.PartitionRoute(partition="aug27-sep04", path=["leader_e", "worker_d"])]


def _edit_reaper(program: str, document: dict) -> None:
    query = document.setdefault("query", {})
    if program == "gateway_a":
        query.update(client_idle_timeout_seconds=REAPER_GATEWAY_IDLE, max_concurrent_requests=REAPER_CLIENT_LIMIT,
                     max_internal_requests=REAPER_INTERNAL_LIMIT)
    elif program == "leader_e":
        query.update(client_idle_timeout_seconds=REAPER_LEADER_IDLE)


def _answering(cluster: Cluster) -> Cluster:
    """Waits until the gateway counts every row: its calls to the leaders connect. A gateway that
    started before a leader listened waits out its channel's reconnect backoff, and until then a
    Node.Scan routed through that leader fails at once (seen in CI, 2026-11-30)."""
    def complete() -> bool:
        with FireClient(cluster.gateway, deadline_seconds=10) as client:
            return bool(client.count()[1].complete)

    wait_for(complete, 60, "the gateway to count every row")
    return cluster


@pytest.fixture(scope="module")
def limits_cluster(tmp_path_factory, data_root, cache_dir):
    running = start_cluster(tmp_path_factory.mktemp("limits"), data_root, cache_dir)  # the shipped limits
    try:
        yield _answering(running)
    finally:
        running.stop()


@pytest.fixture(scope="module")
def reaper_cluster(tmp_path_factory, data_root, cache_dir):
    running = start_cluster(tmp_path_factory.mktemp("reaper"), data_root, cache_dir, edit=_edit_reaper)
    try:
        yield _answering(running)
    finally:
        running.stop()


def _address(cluster: Cluster, program: str) -> str:
    return f"127.0.0.1:{cluster.ports[program]}"


def _active(cluster: Cluster, program: str) -> int:
    with grpc.insecure_channel(_address(cluster, program)) as channel:
        return pb_grpc.NodeStub(channel).GetStatus(pb.StatusRequest(), timeout=5).active_requests


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kilobytes / 1024


def _settled_rss(pids: list[int], quiet: float = 2.0, timeout: float = 60.0) -> list[float]:
    """Resident sizes once none has moved by more than 1 MB for `quiet` seconds."""
    readings = [[_rss_mb(pid) for pid in pids]]
    still_since = time.monotonic()

    def settled() -> list[float] | None:
        nonlocal still_since
        now = [_rss_mb(pid) for pid in pids]
        if any(abs(a - b) > 1.0 for a, b in zip(now, readings[-1])):
            readings.append(now)
            still_since = time.monotonic()
        return now if time.monotonic() - still_since >= quiet else None

    return wait_for(settled, timeout, "resident memory to settle", 0.25)


@contextlib.contextmanager
def never_read(address: str, method: str, requests: list, channels: int) -> Iterator[list]:
    """Starts one server-streaming call per request on a few raw channels and never reads them; on
    leaving, cancels them all."""
    opened = [grpc.insecure_channel(address, options=OWN_CONNECTION) for _ in range(channels)]
    calls = [opened[index % channels].unary_stream(method, request_serializer=type(request).SerializeToString)(
                 request, timeout=300) for index, request in enumerate(requests)]
    try:
        yield calls
    finally:
        for call in calls:
            call.cancel()
        for channel in opened:
            channel.close()


def _health_answers(cluster: Cluster, program: str, rounds: int) -> list[float]:
    """Latencies of `rounds` of HealthCheck, grpc.health.v1 Check and GetStatus, each within the
    monitors' deadline (a call over it raises DEADLINE_EXCEEDED, as any refusal raises)."""
    latencies = []
    with grpc.insecure_channel(_address(cluster, program)) as channel:
        node = pb_grpc.NodeStub(channel)
        standard = health_pb2_grpc.HealthStub(channel)
        for _ in range(rounds):
            started = time.monotonic()
            answer = node.HealthCheck(pb.HealthRequest(requester_id="test_limits"), timeout=HEALTH_DEADLINE)
            latencies.append(time.monotonic() - started)
            assert answer.healthy
            check = standard.Check(health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_DEADLINE)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            node.GetStatus(pb.StatusRequest(), timeout=HEALTH_DEADLINE)
    return latencies


def _refused(calls: list) -> list:
    return [call for call in calls if call.done()]


# -- admission limits leave health checks their threads ----------------------------------------------


def test_never_read_scans_beyond_a_leaders_limit_leave_its_health_checks_answering(limits_cluster):
    """Before: 150 never-read calls took every server thread and HealthCheck failed with "Concurrent
    RPC limit exceeded". Now 180 over ten connections: 160 are admitted (leader_e's
    query.max_internal_requests), 20 refused at once, and health checks still find a thread."""
    requests = [pb.ScanRequest(request_id=f"never-read-{n}", routes=LEADER_E_ROUTES) for n in range(180)]
    with never_read(_address(limits_cluster, "leader_e"), "/airquality.v1.Node/Scan", requests, 10) as calls:
        wait_for(lambda: len(_refused(calls)) == 20 and _active(limits_cluster, "leader_e") == 160, 60,
                 "leader_e to admit 160 scans and refuse 20")
        for call in _refused(calls):
            assert call.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "query.max_internal_requests" in call.details()
        latencies = _health_answers(limits_cluster, "leader_e", rounds=40)
        assert _active(limits_cluster, "leader_e") == 160  # the scans were held all along
    assert max(latencies) < HEALTH_DEADLINE
    wait_for(lambda: _active(limits_cluster, "leader_e") == 0, 30, "leader_e to drop the cancelled scans")
    _went_to_every_cpu_and_back(limits_cluster, "leader_e")


def test_200_concurrent_clients_leave_the_gateways_health_answering(limits_cluster):
    requests = [pb.QueryRequest(request_id=f"client-{n}") for n in range(200)]
    with never_read(limits_cluster.gateway, "/airquality.v1.AirQuality/Query", requests, 20) as calls:
        wait_for(lambda: len(_refused(calls)) == 136 and _active(limits_cluster, "gateway_a") == 64, 60,
                 "the gateway to admit 64 clients and refuse 136")
        # Refused by admission, naming the limit, or, for calls beyond the server's threads (every
        # limit plus the reserve, 112 on the gateway), by gRPC itself: both at once.
        for call in _refused(calls):
            assert call.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "query.max_concurrent_requests" in call.details() or call.details() == "Concurrent RPC limit exceeded!"
        assert sum("query.max_concurrent_requests" in call.details() for call in _refused(calls)) >= 112 - 64 - 32
        latencies = _health_answers(limits_cluster, "gateway_a", rounds=40)
    assert max(latencies) < HEALTH_DEADLINE
    wait_for(lambda: _active(limits_cluster, "gateway_a") == 0, 30, "the gateway to drop the cancelled queries")
    _went_to_every_cpu_and_back(limits_cluster, "gateway_a")


def _went_to_every_cpu_and_back(cluster: Cluster, program: str) -> None:
    """Busy, the daemon ran on every CPU; calm, it goes back to its own (daemons/affinity.py)."""
    every = sorted(os.sched_getaffinity(0))
    own = json.loads(cluster.config_path(program).read_text())["cpus"]
    if len(every) < 2 or not set(own) <= set(every):
        return  # nothing to move: it runs on all it may (a cpus_unavailable event says so)

    def moves() -> list[list[int]]:
        return [e["cpus"] for e in cluster.events(program, "cpus_changed")]

    assert every in moves()
    wait_for(lambda: moves()[-1] == own, 30, f"{program} to go back to its own CPUs")


def test_node_scan_on_the_gateway_is_admitted_up_to_the_internal_limit(reaper_cluster):
    """Before: Node.Scan on the gateway was only counted, never refused."""
    routes = [pb.PartitionRoute(partition="sep05-13", path=["gateway_a", "leader_e"])]
    requests = [pb.ScanRequest(request_id=f"direct-{n}", routes=routes) for n in range(REAPER_INTERNAL_LIMIT + 3)]
    # A connection each: one connection alone gets at most half the slots (see the next test).
    with never_read(reaper_cluster.gateway, "/airquality.v1.Node/Scan", requests, len(requests)) as calls:
        wait_for(lambda: len(_refused(calls)) == 3, 30, "the gateway to refuse the scans beyond its limit")
        assert {call.code() for call in _refused(calls)} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert _active(reaper_cluster, "gateway_a") == REAPER_INTERNAL_LIMIT
    wait_for(lambda: _active(reaper_cluster, "gateway_a") == 0, 30, "the gateway to drop the cancelled scans")


def test_one_connection_flooding_a_daemon_leaves_its_parent_room(reaper_cluster):
    """Calls on one connection get at most half the slots for parents: a flood of never-read scans
    on one channel (the 150 of issue 12 took every slot at leader_e, and the gateway's scans were
    turned away) leaves the others room."""
    routes = [pb.PartitionRoute(partition="sep05-13", path=["gateway_a", "leader_e"])]
    requests = [pb.ScanRequest(request_id=f"flood-{n}", routes=routes) for n in range(REAPER_INTERNAL_LIMIT)]
    with never_read(reaper_cluster.gateway, "/airquality.v1.Node/Scan", requests, 1) as calls:
        wait_for(lambda: len(_refused(calls)) == REAPER_INTERNAL_LIMIT // 2, 30, "the flood to be capped")
        assert all("this connection" in call.details() for call in _refused(calls))
        with grpc.insecure_channel(reaper_cluster.gateway, options=OWN_CONNECTION) as other:
            scan = other.unary_stream("/airquality.v1.Node/Scan", request_serializer=pb.ScanRequest.SerializeToString,
                                      response_deserializer=pb.QueryResponse.FromString)
            answered = list(scan(pb.ScanRequest(request_id="parent", routes=routes), timeout=30))
        assert answered[-1].partitions[0].complete
    wait_for(lambda: _active(reaper_cluster, "gateway_a") == 0, 30, "the gateway to drop the cancelled scans")


def test_a_flood_on_one_connection_to_a_leader_makes_no_failover(limits_cluster):
    """Before: 150 never-read Node.Scan calls on one channel to leader_e, over all it reaches, took
    half its slots; leader_e forwarded them to worker_f and worker_d, whose one connection from
    leader_e then had no room left for the gateway's calls: 192-425 failovers in 30 s under the
    load of issue 12. Every level now admits from one connection all its parent can forward."""
    def count(stub: pb_grpc.AirQualityStub, name: str) -> tuple[bool, int]:
        answer = stub.Aggregate(pb.AggregateRequest(request_id=name), timeout=120)
        return answer.complete, answer.groups[0].rows

    with grpc.insecure_channel(limits_cluster.gateway) as channel:
        quiet = count(pb_grpc.AirQualityStub(channel), "before-the-flood")
    assert quiet[0]
    requests = [pb.ScanRequest(request_id=f"flood-{n}", routes=LEADER_E_ROUTES) for n in range(150)]
    since = time.time()
    with never_read(_address(limits_cluster, "leader_e"), "/airquality.v1.Node/Scan", requests, 1) as calls:
        wait_for(lambda: len(_refused(calls)) == 70 and _active(limits_cluster, "leader_e") == 80, 60,
                 "leader_e to admit 80 of the flood, half its limit, and refuse 70")
        with grpc.insecure_channel(limits_cluster.gateway) as channel, futures.ThreadPoolExecutor(16) as pool:
            stub = pb_grpc.AirQualityStub(channel)
            answers = list(pool.map(lambda n: count(stub, f"count-{n}"), range(32)))
    assert set(answers) == {quiet}
    assert [event for event in limits_cluster.events("gateway_a", "partition_failover") if epoch_of(event) >= since] == []
    wait_for(lambda: _active(limits_cluster, "leader_e") == 0, 30, "leader_e to drop the cancelled scans")


# -- memory per never-read scan --------------------------------------------------------------------------


def test_never_read_full_scans_hold_a_few_mb_each_and_give_it_back_when_cancelled(limits_cluster):
    """Before: 32 never-read full scans took the gateway from 61 to 1,850 MB (56 MB each) and
    leader_e from 102 to 534 MB; cancelled, they left 1,350 and 430 MB behind."""
    programs = ["gateway_a", "leader_e"]
    pids = [limits_cluster.pid(program) for program in programs]
    with grpc.insecure_channel(limits_cluster.gateway) as channel:  # every buffer and thread used once
        for _ in range(2):
            assert sum(1 for _ in pb_grpc.AirQualityStub(channel).Query(pb.QueryRequest(request_id="warm-up"),
                                                                       timeout=120)) > 100
    before = _settled_rss(pids)
    requests = [pb.QueryRequest(request_id=f"stuck-{n}") for n in range(32)]
    with never_read(limits_cluster.gateway, "/airquality.v1.AirQuality/Query", requests, 32):
        wait_for(lambda: _active(limits_cluster, "gateway_a") == 32, 30, "the 32 scans to be admitted")
        during = _settled_rss(pids)
    per_scan = {program: (d - b) / 32 for program, b, d in zip(programs, before, during)}
    assert per_scan["gateway_a"] < 12 and per_scan["leader_e"] < 12, per_scan
    wait_for(lambda: _active(limits_cluster, "gateway_a") == 0 and _active(limits_cluster, "leader_e") == 0, 30,
             "the cancelled scans to end")
    after = _settled_rss(pids)
    left = {program: a - b for program, b, a in zip(programs, before, after)}
    assert all(megabytes < 40 for megabytes in left.values()), (before, during, after)


# -- slow readers are cut off ------------------------------------------------------------------------------


def _drained_code(call) -> grpc.StatusCode:
    """How a call ended, as its client learns it: only once it has read what it was sent (gRPC
    delivers a stream's status after its messages)."""
    with pytest.raises(grpc.RpcError) as ended:
        for _ in call:
            pass
    return ended.value.code()


def _cut_off(cluster: Cluster, program: str) -> dict[str, dict]:
    return {e["request_id"]: e for e in cluster.events(program, "request_idle_cut_off")}


def _outcomes(cluster: Cluster, prefix: str) -> dict[str, str]:
    return {e["request_id"]: e["outcome"] for e in cluster.events("gateway_a", "query_finished")
            if e["request_id"].startswith(prefix)}


def test_a_client_that_stops_reading_is_cut_off_and_its_slot_released(reaper_cluster):
    """Before: a client that stopped reading held its slot, a thread and its buffers until its deadline."""
    requests = [pb.QueryRequest(request_id=f"stops-reading-{n}") for n in range(REAPER_CLIENT_LIMIT)]
    names = [request.request_id for request in requests]
    started = time.monotonic()
    with never_read(reaper_cluster.gateway, "/airquality.v1.AirQuality/Query", requests, 1) as calls, \
            grpc.insecure_channel(reaper_cluster.gateway) as channel:
        wait_for(lambda: _active(reaper_cluster, "gateway_a") == REAPER_CLIENT_LIMIT, 30, "both to be admitted")
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.AirQualityStub(channel).Aggregate(pb.AggregateRequest(request_id="one-too-many"), timeout=30)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED

        wait_for(lambda: set(names) <= set(_cut_off(reaper_cluster, "gateway_a")), REAPER_GATEWAY_IDLE + 30,
                 "both readers to be cut off")
        assert time.monotonic() - started >= REAPER_GATEWAY_IDLE
        wait_for(lambda: _active(reaper_cluster, "gateway_a") == 0, 2, "their slots to be released")
        assert pb_grpc.AirQualityStub(channel).Aggregate(pb.AggregateRequest(request_id="now-admitted"),
                                                         timeout=60).complete
        assert [_drained_code(call) for call in calls] == [grpc.StatusCode.CANCELLED] * len(calls)
    for name in names:
        cut = _cut_off(reaper_cluster, "gateway_a")[name]
        assert cut["kind"] == "query" and cut["idle_seconds"] >= REAPER_GATEWAY_IDLE
    assert _outcomes(reaper_cluster, "stops-reading") == dict.fromkeys(names, "idle_cut_off")
    wait_for(lambda: sum(_active(reaper_cluster, p) for p in ("leader_b", "leader_e", "worker_c", "worker_d",
                                                              "worker_f")) == 0, 10, "the scans downstream to end")


def test_a_cancelled_request_of_a_client_that_stopped_reading_ends_at_once(reaper_cluster):
    """Before: Cancel stopped the work downstream, but the slot stayed taken until the client went away."""
    with never_read(reaper_cluster.gateway, "/airquality.v1.AirQuality/Query",
                    [pb.QueryRequest(request_id="cancel-me")], 1) as [call], \
            grpc.insecure_channel(reaper_cluster.gateway) as channel:
        wait_for(lambda: _active(reaper_cluster, "gateway_a") == 1, 30, "the query to be admitted")
        cancelled_at = time.monotonic()
        assert pb_grpc.AirQualityStub(channel).Cancel(pb.CancelRequest(request_id="cancel-me"), timeout=5).cancelled
        assert _active(reaper_cluster, "gateway_a") == 0  # the slot is free at once
        wait_for(lambda: _outcomes(reaper_cluster, "cancel-me") == {"cancel-me": "cancelled"}, 2,
                 "the call to end at the gateway")
        assert time.monotonic() - cancelled_at < REAPER_GATEWAY_IDLE  # not the idle cut-off
        assert _drained_code(call) is grpc.StatusCode.CANCELLED
    assert "cancel-me" not in _cut_off(reaper_cluster, "gateway_a")


def test_a_direct_node_scan_that_is_never_read_is_cut_off_after_the_parents_limit(reaper_cluster):
    """Calls from parents are cut off too, after ten times the client limit (5 s at leader_e here)."""
    with never_read(_address(reaper_cluster, "leader_e"), "/airquality.v1.Node/Scan",
                    [pb.ScanRequest(request_id="parent-stopped", routes=LEADER_E_ROUTES)], 1) as [call]:
        wait_for(lambda: "parent-stopped" in _cut_off(reaper_cluster, "leader_e"), 10 * REAPER_LEADER_IDLE + 30,
                 "the scan to be cut off")
        wait_for(lambda: _active(reaper_cluster, "leader_e") == 0, 2, "leader_e to release the scan")
        assert _drained_code(call) is grpc.StatusCode.CANCELLED
    cut = _cut_off(reaper_cluster, "leader_e")["parent-stopped"]
    assert cut["kind"] == "scan" and cut["idle_seconds"] >= 10 * REAPER_LEADER_IDLE


# -- a port already served ---------------------------------------------------------------------------------


def test_a_port_already_served_by_another_grpc_server_makes_the_daemon_fail(tmp_path, limits_cluster):
    """Before: gRPC binds with SO_REUSEPORT, so the daemon shared the other server's port."""
    other = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # gRPC's defaults: SO_REUSEPORT
    port = other.add_insecure_port("127.0.0.1:0")
    other.start()
    try:
        document = json.loads(limits_cluster.config_path("worker_f").read_text())
        document.update(listen=f"127.0.0.1:{port}", log_file=str(tmp_path / "worker_f.log"))
        config = tmp_path / "worker_f.json"
        config.write_text(json.dumps(document))
        result = subprocess.run([str(REPO / "bin" / "fire-daemon"), str(config)], capture_output=True, text=True,
                                timeout=30, env=limits_cluster.environment)
    finally:
        other.stop(0)
    assert result.returncode == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    failed = [e for e in read_events(tmp_path / "worker_f.log") if e["event"] == "daemon_failed"]
    assert len(failed) == 1 and f"127.0.0.1:{port}" in failed[0]["error"]
