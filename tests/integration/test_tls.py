"""Mutual TLS on a real supervisord cluster (issue 9): every daemon's config has a `tls` section
with certificates from bin/gen-certs's code. Plaintext and other CAs are refused, the client's
certificate reaches the gateway's AirQuality service and no daemon's Node service, a request is
cancelled only by its owner, and the health monitoring and failover work as without TLS."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from daemons.client import FireClient, client_channel
from daemons.health.seal import Kind, Seal
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc
from daemons.security.certs import CLUSTER_KEY_FILE, cert_pem, client_leaf, issue, key_pem, tls_section, write_cluster
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


def test_an_expired_certificate_is_refused_and_the_daemon_logs_one_clear_line(tls_cluster, certs, tmp_path):
    ca_key = serialization.load_pem_private_key((certs / "ca-key.pem").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, cert = issue(ca_key, ca_cert, client_leaf("expired"), dt.datetime.now(dt.UTC) - dt.timedelta(days=30),
                      days=7)
    folder = tmp_path / "expired"
    folder.mkdir()
    (folder / "key.pem").write_bytes(key_pem(key))
    (folder / "cert.pem").write_bytes(cert_pem(cert))
    (folder / "ca.pem").write_bytes((certs / "ca.pem").read_bytes())
    since = time.time()
    for _ in range(5):  # a client trying again and again
        with FireClient(tls_cluster.gateway, tls_dir=folder, deadline_seconds=3) as expired, \
                pytest.raises(grpc.RpcError) as error:
            expired.count()
        assert error.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    def lines() -> list[dict]:
        return [e for e in tls_cluster.events("gateway_a", "tls_handshake_failed") if epoch_of(e) >= since]

    wait_for(lines, 10, "the gateway to log the expired certificate")
    (line,) = lines()  # the retries are counted into the next line of the kind, a minute on
    assert "certificate has expired" in line["error"] and "bin/gen-certs --rotate" in line["meaning"]


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
            # The first call on a new channel: a handshake that fails once under CI's load (seen
            # 2026-11-30: "Handshake write failed") is tried again rather than taken for the answer.
            other.stub.Cancel(pb.CancelRequest(request_id="tls-owned-scan"), timeout=10, wait_for_ready=True)
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


# -- health datagrams: sealed with the cluster key --------------------------------------------------


def _node_status(cluster: Cluster, certs: Path, program: str, tmp_path: Path) -> pb.StatusResponse:
    """`program`'s GetStatus, asked with a daemon's certificate (Node answers daemons only)."""
    folder = tmp_path / "as-gateway_a"
    if not folder.exists():
        _tls_folder(certs, "gateway_a", tmp_path).rename(folder)
    with client_channel(f"127.0.0.1:{cluster.ports[program]}", folder,
                        [("grpc.ssl_target_name_override", program)]) as channel:
        status: pb.StatusResponse = pb_grpc.NodeStub(channel).GetStatus(pb.StatusRequest(), timeout=10)
    return status


def _sealed_request(seal: Seal, timestamp_us: int | None = None, target: str = "worker_f") -> bytes:
    stamp = int(time.time() * 1e6) if timestamp_us is None else timestamp_us
    return seal.seal(Kind.REQUEST, pb.HealthRequest(requester_id="test_tls", timestamp=stamp,
                                                    gasp_token=os.urandom(16), target=target))


def test_forged_truncated_oversized_stale_and_replayed_probes_are_dropped_and_counted(tls_cluster, certs, tmp_path):
    seal = Seal((certs / CLUSTER_KEY_FILE).read_bytes())
    since = time.time()
    good = _sealed_request(seal)
    target = ("127.0.0.1", tls_cluster.ports["worker_f"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for datagram in (b"\xff" * 10, pb.HealthRequest(requester_id="x", timestamp=1).SerializeToString(),
                         Seal(os.urandom(32)).seal(Kind.REQUEST, pb.HealthRequest(requester_id="x")),
                         good[:-4], good + b"\0" * 4096, _sealed_request(seal, target="worker_c"), good):
            sock.sendto(datagram, target)
        reply = seal.open_response(Kind.REPLY, sock.recv(4096))  # the one good probe is answered
        assert reply.daemon == "worker_f" and reply.healthy
        # Played again, or a minute old: answered (a reply no prober awaits), registering nothing.
        sock.sendto(good, target)
        sock.sendto(_sealed_request(seal, int((since - 60) * 1e6)), target)
        for _ in range(2):
            seal.open_response(Kind.REPLY, sock.recv(4096))

    def counted() -> dict[str, int]:
        return dict(_node_status(tls_cluster, certs, "worker_f", tmp_path).datagrams_dropped)

    wait_for(lambda: counted().get("request: replayed", 0) >= 1, 10, "worker_f to count the replay")
    dropped = counted()
    assert dropped["request: unauthenticated"] >= 4 and dropped["request: oversized"] >= 1
    assert dropped["request: stale"] >= 1 and dropped["request: misdirected"] >= 1
    assert _path(tls_cluster, "leader_e", "worker_f", since) == []  # nobody's view of it changed
    wait_for(lambda: any(epoch_of(e) >= since for e in tls_cluster.events("worker_f", "datagrams_dropped")), 15,
             "worker_f to log the dropped datagrams")


def _monitor_sockets_to(port: int) -> list[int]:
    """The local ports of the connected UDP sockets that probe `port` (a monitor process's)."""
    listing = subprocess.run(["ss", "-u", "-n", "-H", "state", "established", "dst", f"127.0.0.1:{port}"],
                             capture_output=True, text=True, check=True).stdout
    return [int(line.split()[-2].rsplit(":", 1)[1]) for line in listing.splitlines() if line.strip()]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _forge_port_unreachable(raw: socket.socket, local_port: int, remote_port: int) -> None:
    """An ICMP port unreachable, as if 127.0.0.1:remote_port had refused a datagram from local_port."""
    quoted_ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, socket.IPPROTO_UDP, 0,
                            socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1"))
    quoted_udp = struct.pack("!HHHH", local_port, remote_port, 8, 0)
    body = quoted_ip + quoted_udp
    header = struct.pack("!BBHI", 3, 3, 0, 0)
    message = struct.pack("!BBHI", 3, 3, _checksum(header + body), 0) + body
    raw.sendto(message, ("127.0.0.1", 0))


@pytest.mark.skipif(os.geteuid() != 0, reason="forging ICMP takes a raw socket, which needs root")
def test_forged_icmp_port_unreachable_at_a_monitor_makes_no_transition(tls_cluster):
    port = tls_cluster.ports["worker_f"]
    wait_for(lambda: bool(_monitor_sockets_to(port)), 10, "leader_e's monitor socket to worker_f")
    since = time.time()
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as victim:  # the forgery is one the kernel believes
            victim.connect(("127.0.0.1", port))
            _forge_port_unreachable(raw, victim.getsockname()[1], port)
            victim.settimeout(5)
            with pytest.raises(ConnectionRefusedError):
                victim.recv(100)
        for _ in range(30):
            for local_port in _monitor_sockets_to(port):
                _forge_port_unreachable(raw, local_port, port)
            time.sleep(0.1)  # the pace of the attack, not a wait for a condition
    time.sleep(1.0)  # what the forgeries could have caused has had its time to show
    assert _path(tls_cluster, "leader_e", "worker_f", since) == []


def test_an_impostor_on_a_stopped_daemons_port_is_not_believed_and_the_daemon_starts_beside_it(
        tls_cluster, certs, tmp_path, expected):
    port = tls_cluster.ports["worker_f"]
    stopped = time.time()
    tls_cluster.ctl("stop", "worker_f", check=True)
    impostor = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    answering = threading.Event()
    answering.set()
    answered = []

    def answer_healthy() -> None:
        """Whatever it is asked, says worker_f is healthy, in every way it can without the key."""
        impostor.settimeout(0.2)
        while answering.is_set():
            try:
                data, sender = impostor.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            lie = pb.HealthResponse(healthy=True, status="SERVING", daemon="worker_f", process_id=1,
                                    request_timestamp=int(time.time() * 1e6))
            for forged in (lie.SerializeToString(), data, Seal(os.urandom(32)).seal(Kind.REPLY, lie),
                           data[:-5], data + b"\0" * 4096):
                with contextlib.suppress(OSError):
                    impostor.sendto(forged, sender)
            answered.append(sender)

    try:
        impostor.bind(("127.0.0.1", port))
        threading.Thread(target=answer_healthy, daemon=True).start()
        wait_for(lambda: _path(tls_cluster, "leader_e", "worker_f", stopped)[-1:] == ["unavailable"], 10,
                 "leader_e to see worker_f unavailable")
        wait_for(lambda: len(answered) >= 10, 15, "the impostor to be probed")
        assert _path(tls_cluster, "leader_e", "worker_f", stopped)[-1:] == ["unavailable"]
        dropped = _node_status(tls_cluster, certs, "leader_e", tmp_path).datagrams_dropped
        assert dropped["worker_f: unauthenticated"] >= 10 and dropped["worker_f: oversized"] >= 1

        started = time.time()
        tls_cluster.ctl("start", "worker_f", check=True)  # its UDP port is held: it starts all the same
        tls_cluster.wait_serving(["worker_f"], since=started)
        (held,) = [e for e in tls_cluster.events("worker_f", "datagram_port_held") if epoch_of(e) >= started]
        assert held["port"] == port and "in use" in held["error"].lower()
        assert _node_status(tls_cluster, certs, "worker_f", tmp_path).serving  # it serves gRPC
        with FireClient(tls_cluster.gateway, tls_dir=certs / "client", deadline_seconds=300) as client:
            checksum, completeness = full_scan(client)
        assert checksum == expected and completeness.complete
    finally:
        answering.clear()
        impostor.close()
    # The port is free: worker_f takes it, and its watcher hears it again.
    wait_for(lambda: any(epoch_of(e) >= stopped for e in tls_cluster.events("worker_f", "datagram_port_bound")), 10,
             "worker_f to bind its UDP port")
    wait_for(lambda: _path(tls_cluster, "leader_e", "worker_f", stopped)[-1:] == ["healthy"], 30,
             "leader_e to see worker_f healthy")


# -- rotation: runs last in this module, as it replaces the certificates the cluster started with --------


def _served_certificate(port: int, program: str, client: Path) -> x509.Certificate:
    """The certificate the daemon at `port` presents now (asked with the client's certificate)."""
    context = ssl.create_default_context(cafile=str(client / "ca.pem"))
    context.load_cert_chain(client / "cert.pem", client / "key.pem")
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=program) as secured:
        der = secured.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_rotated_certificates_and_restarts_one_at_a_time_keep_every_answer_exact(tls_cluster, certs, expected):
    write_cluster(certs, {program: ["127.0.0.1", "localhost"] for program in PROGRAMS}, rotate=True)
    rotated = {program: x509.load_pem_x509_certificate((certs / program / "cert.pem").read_bytes()).serial_number
               for program in PROGRAMS}
    answers: list[tuple[int, bool, list[str]]] = []
    failures: list[str] = []
    asking = threading.Event()
    asking.set()

    def ask_until_done() -> None:
        """A client asking all along, with the new client certificate (the old one works as well:
        the CA is the same)."""
        with FireClient(tls_cluster.gateway, tls_dir=certs / "client", deadline_seconds=120) as client:
            while asking.is_set():
                try:
                    rows, answer = client.count()
                except grpc.RpcError as error:
                    failures.append(f"{error.code().name}: {error.details()}")
                    continue
                answers.append((rows, answer.complete, list(answer.missing_partitions)))

    asker = threading.Thread(target=ask_until_done, daemon=True)
    asker.start()
    try:
        for program in ("worker_c", "worker_f", "worker_d", "leader_b", "leader_e", "gateway_a"):
            since = time.time()
            tls_cluster.ctl("restart", program, check=True)
            tls_cluster.wait_serving([program], since=since)
            for observer, neighbor in WATCHES:
                if neighbor == program:
                    wait_for(lambda o=observer, n=neighbor, t=since: _path(tls_cluster, o, n, t)[-1:] == ["healthy"], 30,
                             f"{observer} to see the restarted {program} healthy")
            assert _served_certificate(tls_cluster.ports[program], program, certs / "client").serial_number \
                == rotated[program]
            answered = len(answers)
            wait_for(lambda a=answered: len(answers) > a + 3, 60, f"answers after {program}'s restart")
        with FireClient(tls_cluster.gateway, tls_dir=certs / "client", deadline_seconds=300) as client:
            checksum, completeness = full_scan(client)
        assert checksum == expected and completeness.complete
    finally:
        asking.clear()
        asker.join(150)
    wrong = [answer for answer in answers if answer != (expected[0], True, [])]
    assert not wrong and not failures, (wrong[:5], failures[:5], len(answers))
