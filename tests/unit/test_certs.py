"""bin/gen-certs (daemons/security): the cluster's CA, daemons' and client's certificates, made and
checked with `cryptography`, and used for a real mutual-TLS call."""

from __future__ import annotations

import datetime as dt
import shutil
import stat
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from daemons.security.certs import write_cluster
from daemons.security.gencerts import ETC, main, places


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(cert: x509.Certificate) -> list[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in names]


def test_every_daemon_and_the_client_get_a_certificate_of_the_cluster_ca(tmp_path):
    written = write_cluster(tmp_path, {"worker_c": ["127.0.0.1", "10.44.0.2", "h2"]})
    ca = _cert(tmp_path / "ca.pem")
    worker = _cert(tmp_path / "worker_c" / "cert.pem")
    client = _cert(tmp_path / "client" / "cert.pem")
    for leaf in (worker, client):
        leaf.verify_directly_issued_by(ca)
        assert leaf.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    assert _names(worker) == ["spiffe://fire.cluster/daemon/worker_c", "worker_c", "127.0.0.1", "10.44.0.2", "h2"]
    assert _names(client) == ["spiffe://fire.cluster/client/client"]
    usages = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]  # a client certificate cannot serve
    assert (tmp_path / "client" / "ca.pem").read_bytes() == (tmp_path / "ca.pem").read_bytes()
    for key in [tmp_path / "ca-key.pem", tmp_path / "cluster.key", *tmp_path.glob("*/key.pem")]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert set(written) >= {tmp_path / "worker_c" / "key.pem", tmp_path / "cluster.key"}


def test_running_again_keeps_everything_and_rotating_issues_new_certificates_from_the_same_ca(tmp_path):
    write_cluster(tmp_path, {"worker_c": ["127.0.0.1"]})
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert write_cluster(tmp_path, {"worker_c": ["127.0.0.1"]}) == []
    (tmp_path / "worker_c" / "key.pem").unlink()  # a missing piece is made again
    assert write_cluster(tmp_path, {"worker_c": ["127.0.0.1"]}) == [tmp_path / "worker_c" / "key.pem",
                                                                     tmp_path / "worker_c" / "cert.pem"]
    write_cluster(tmp_path, {"worker_c": ["127.0.0.1"]}, rotate=True)
    after = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    for kept in ("ca.pem", "ca-key.pem", "cluster.key"):
        assert after[tmp_path / kept] == before[tmp_path / kept]
    assert after[tmp_path / "client" / "cert.pem"] != before[tmp_path / "client" / "cert.pem"]
    _cert(tmp_path / "worker_c" / "cert.pem").verify_directly_issued_by(_cert(tmp_path / "ca.pem"))


def test_each_daemon_is_named_at_every_address_it_has_in_the_shipped_layouts():
    found = places(ETC)
    assert sorted(found) == ["gateway_a", "leader_b", "leader_e", "worker_c", "worker_d", "worker_f"]
    assert set(found["worker_c"]) == {"localhost", "127.0.0.1", "h1", "10.44.0.1", "h2", "10.44.0.2"}


def test_a_layout_that_cannot_be_read_exits_2_naming_it(tmp_path):
    etc = tmp_path / "etc"
    shutil.copytree(ETC, etc)
    (etc / "layouts" / "two-hosts.json").write_text('{"hosts": {"h1": {"programs": []}}}')
    result = CliRunner().invoke(main, [str(tmp_path / "certs"), "--etc", str(etc)])
    assert result.exit_code == 2
    assert "two-hosts.json" in result.output and not (tmp_path / "certs").exists()


def test_the_certificates_carry_a_mutual_tls_call_and_name_the_caller(tmp_path):
    write_cluster(tmp_path, {"worker_c": ["127.0.0.1"], "gateway_a": ["127.0.0.1"]})

    def read(name: str) -> bytes:
        return (tmp_path / name).read_bytes()

    def who(_request: bytes, context: grpc.ServicerContext) -> bytes:
        return b",".join(context.auth_context()["peer_spiffe_id"])

    server = grpc.server(futures.ThreadPoolExecutor(1))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "t.T", {"Who": grpc.unary_unary_rpc_method_handler(who)})])
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
        [(read("worker_c/key.pem"), read("worker_c/cert.pem"))], root_certificates=read("ca.pem"),
        require_client_auth=True))
    server.start()
    try:
        for caller, identity in (("gateway_a", b"spiffe://fire.cluster/daemon/gateway_a"),
                                 ("client", b"spiffe://fire.cluster/client/client")):
            credentials = grpc.ssl_channel_credentials(read("ca.pem"), read(f"{caller}/key.pem"),
                                                       read(f"{caller}/cert.pem"))
            # The channel checks the server is worker_c, whatever address it is reached at.
            with grpc.secure_channel(f"127.0.0.1:{port}", credentials,
                                     options=[("grpc.ssl_target_name_override", "worker_c")]) as channel:
                assert channel.unary_unary("/t.T/Who")(b"", timeout=10) == identity
        with grpc.insecure_channel(f"127.0.0.1:{port}") as plaintext, pytest.raises(grpc.RpcError):
            plaintext.unary_unary("/t.T/Who")(b"", timeout=5)
    finally:
        server.stop(None)
