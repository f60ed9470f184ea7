"""Mutual TLS on a real supervisord cluster (issue 9): every daemon's config has a `tls` section
with certificates from bin/gen-certs's code. Plaintext and other CAs are refused, the client's
certificate reaches the gateway's AirQuality service and no daemon's Node service, a request is
cancelled only by its owner, and the health monitoring and failover work as without TLS."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from daemons.client import FireClient, client_channel
from daemons.rpc import airquality_pb2 as pb
from daemons.security.certs import tls_section, write_cluster
from tests.cluster import (
    PROGRAMS,
    REPO,
    Cluster,
    epoch_of,
    free_ports,
    healthlog_command,
    prepare_layout,
    start_cluster,
)
from tests.hosts import WATCHES
from tests.oracle import full_scan
from tests.waiting import wait_for

PER_CLIENT = 4
NODE_METHODS = {"Scan": (pb.ScanRequest, True), "ScanAggregate": (pb.ScanRequest, False),
                "GetStatus": (pb.StatusRequest, False), "HealthCheck": (pb.HealthRequest, False),
                "GetHealthStatus": (pb.HealthStatusRequest, False), "Events": (pb.EventsRequest, True)}


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tls")
    write_cluster(folder, {program: ["127.0.0.1", "localhost"] for program in PROGRAMS})
    return folder


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, data_root, cache_dir, certs) -> Iterator[Cluster]:
    def secure(program: str, document: dict) -> None:
        document["tls"] = tls_section(certs, program)
        if program == "gateway_a":
            document.setdefault("query", {})["max_requests_per_client"] = PER_CLIENT

    running = start_cluster(tmp_path_factory.mktemp("tls-cluster"), data_root, cache_dir, edit=secure)
    try:
        for observer, neighbor in WATCHES:
            wait_for(lambda o=observer, n=neighbor: _path(running, o, n, 0.0)[-1:] == ["healthy"], 30,
                     f"{observer} to see {neighbor} healthy over TLS")
        yield running
    finally:
        running.stop()


def _path(cluster: Cluster, observer: str, neighbor: str, since: float) -> list[str]:
    return [e["to"] for e in cluster.events(observer, "health_transition")
            if e["neighbor"] == neighbor and epoch_of(e) >= since]


def _tls_folder(certs: Path, identity: str, tmp_path: Path) -> Path:
    """A client's TLS folder (ca.pem, cert.pem, key.pem) holding `identity`'s certificate."""
    folder = tmp_path / identity
    folder.mkdir()
    for name in ("cert.pem", "key.pem"):
        (folder / name).write_bytes((certs / identity / name).read_bytes())
    (folder / "ca.pem").write_bytes((certs / "ca.pem").read_bytes())
    return folder


def test_a_full_scan_with_the_client_certificate_is_exact(tls_cluster, certs, expected):
    with FireClient(tls_cluster.gateway, tls_dir=certs / "client", deadline_seconds=300) as client:
        checksum, completeness = full_scan(client)
    assert checksum == expected and completeness.complete


def test_a_plaintext_client_and_another_cas_certificate_are_refused(tls_cluster, tmp_path):
    with FireClient(tls_cluster.gateway, deadline_seconds=3) as plaintext, pytest.raises(grpc.RpcError) as error:
        plaintext.count()
    assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    other = tmp_path / "other-ca"
    write_cluster(other, {})
    with FireClient(tls_cluster.gateway, tls_dir=other / "client", deadline_seconds=3) as stranger, \
            pytest.raises(grpc.RpcError) as error:
        stranger.count()
    assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.mark.parametrize("program", PROGRAMS)
def test_the_client_certificate_gets_permission_denied_on_every_node_method(tls_cluster, certs, program):
    with client_channel(f"127.0.0.1:{tls_cluster.ports[program]}", certs / "client",
                        [("grpc.ssl_target_name_override", program)]) as channel:
        for method, (request_type, streaming) in NODE_METHODS.items():
            call = (channel.unary_stream if streaming else channel.unary_unary)(
                f"/airquality.v1.Node/{method}", request_serializer=request_type.SerializeToString)

            def ask(call=call, request_type=request_type, streaming=streaming) -> None:
                answer = call(request_type(), timeout=10)
                if streaming:
                    list(answer)

            with pytest.raises(grpc.RpcError) as error:
                ask()
            assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED, (program, method)
            assert "internal service" in error.value.details()


def test_only_the_identity_that_started_a_request_cancels_it(tls_cluster, certs, tmp_path):
    owner = FireClient(tls_cluster.gateway, tls_dir=certs / "client", deadline_seconds=300)
    other = FireClient(tls_cluster.gateway, tls_dir=_tls_folder(certs, "worker_c", tmp_path), deadline_seconds=30)
    started = threading.Event()
    ended: list[grpc.StatusCode] = []
    stream = owner.query(chunk_size=100, request_id="tls-owned-scan")

    def read() -> None:
        try:
            for _ in stream:
                started.set()
        except grpc.RpcError as error:
            ended.append(error.code())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(started.is_set, 30, "the owner's scan to stream")
        with pytest.raises(grpc.RpcError) as error:
            other.stub.Cancel(pb.CancelRequest(request_id="tls-owned-scan"), timeout=10)
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "another identity" in error.value.details()
        assert owner.stub.Cancel(pb.CancelRequest(request_id="tls-owned-scan"), timeout=10).cancelled
        reader.join(30)
        assert ended == [grpc.StatusCode.CANCELLED]
    finally:
        reader.join(30)
        owner.close()
        other.close()


def test_health_monitoring_and_failover_work_over_tls(tls_cluster, certs, expected):
    killed = time.time()
    tls_cluster.ctl("signal", "KILL", "worker_f")
    wait_for(lambda: _path(tls_cluster, "leader_e", "worker_f", killed)[-1:] == ["unavailable"], 10,
             "leader_e to see worker_f unavailable")
    (down,) = [e for e in tls_cluster.events("leader_e", "health_transition")
               if e["neighbor"] == "worker_f" and e["to"] == "unavailable" and epoch_of(e) >= killed]
    assert epoch_of(down) - killed < 1.0
    with FireClient(tls_cluster.gateway, tls_dir=certs / "client", deadline_seconds=300) as client:
        checksum, completeness = full_scan(client)
    assert checksum == expected and completeness.complete
    wait_for(lambda: _path(tls_cluster, "leader_e", "worker_f", killed)[-1:] == ["healthy"], 30,
             "leader_e to see worker_f back (supervisord restarts it)")


def test_one_client_identity_cannot_take_every_request_slot(tls_cluster, certs, tmp_path):
    greedy = FireClient(tls_cluster.gateway, tls_dir=certs / "client", deadline_seconds=60)
    other = FireClient(tls_cluster.gateway, tls_dir=_tls_folder(certs, "worker_c", tmp_path), deadline_seconds=60)
    held = [greedy.query(chunk_size=100, request_id=f"held-{n}") for n in range(PER_CLIENT)]
    reading = [iter(stream) for stream in held]
    try:
        for batches in reading:
            next(batches)  # admitted, and then never read
        with pytest.raises(grpc.RpcError) as refused:
            greedy.stub.Aggregate(pb.AggregateRequest(request_id="one-more"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_requests_per_client" in refused.value.details()
        rows, answer = other.count()  # another identity still gets its answer
        assert answer.complete and rows > 0
    finally:
        for stream in held:
            stream.cancel()
        greedy.close()
        other.close()


def test_healthlog_status_and_follow_work_with_the_client_certificate(tls_cluster, certs):
    status = subprocess.run([str(REPO / "bin" / "healthlog"), "status", "--host", tls_cluster.gateway,
                             "--tls", str(certs / "client")], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "daemons healthy" in status.stdout and "leader_e" in status.stdout
    summary = subprocess.run(healthlog_command("--gateway", tls_cluster.gateway), cwd=REPO, capture_output=True,
                             text=True, timeout=60, env={**os.environ, "FIRE_TLS_DIR": str(certs / "client")})
    assert summary.returncode == 0, summary.stderr
    assert "worker_f" in summary.stdout


def test_bin_start_secure_makes_the_certificates_and_runs_the_one_host_system_with_tls(tmp_path, data_root,
                                                                                        cache_dir, expected):
    ports = dict(zip(PROGRAMS, free_ports(len(PROGRAMS))))
    prepare_layout(tmp_path, "one-host", {"h1": list(PROGRAMS)}, {"h1": "127.0.0.1"}, ports, cache_dir)
    shutil.rmtree(tmp_path / "tls")  # made by bin/start --secure itself
    where = ["--etc", str(tmp_path / "etc"), "--state", str(tmp_path / "state"), "--tls", str(tmp_path / "tls")]
    started = subprocess.run([str(REPO / "bin" / "start"), "--secure", *where], capture_output=True, text=True,
                             timeout=300, env={**os.environ, "FIRE_DATA_DIR": str(data_root)})
    try:
        assert started.returncode == 0, started.stderr
        assert "made the cluster's certificates" in started.stdout and "ready" in started.stdout
        gateway = f"127.0.0.1:{ports['gateway_a']}"
        with FireClient(gateway, tls_dir=tmp_path / "tls" / "client", deadline_seconds=120) as client:
            rows, answer = client.count()
        assert answer.complete and rows == expected[0]
        with FireClient(gateway, deadline_seconds=3) as plaintext, pytest.raises(grpc.RpcError):
            plaintext.count()
    finally:
        stopped = subprocess.run([str(REPO / "bin" / "stop"), "--secure", "--state", str(tmp_path / "state")],
                                 capture_output=True, text=True, timeout=120)
    assert stopped.returncode == 0, stopped.stderr


def test_a_daemon_stops_at_once_over_tls(tls_cluster):
    since = time.time()
    tls_cluster.ctl("stop", "worker_c", check=True)
    try:
        (stopped,) = [e for e in tls_cluster.events("worker_c", "daemon_stopped") if epoch_of(e) >= since]
        # Nothing holds it through its 5 s shutdown grace: the PING connections to it are aborted at
        # its GOAWAY (a TLS close waited for a close_notify that never came).
        assert stopped["seconds"] < 1.0
    finally:
        tls_cluster.ctl("start", "worker_c", check=True)
    wait_for(lambda: _path(tls_cluster, "leader_b", "worker_c", since)[-1:] == ["healthy"], 30,
             "leader_b to see worker_c back")
