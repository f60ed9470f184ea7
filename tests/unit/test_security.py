"""Who may call what (daemons/security/identity.py), a config's `tls` section checked at start, and
a request cancelled only by its owner: through the seams, without sockets."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import grpc
import pytest

from daemons.config import ConfigError, parse_config
from daemons.events import EventRecorder
from daemons.security.certs import cert_pem, daemon_leaf, issue, key_pem, make_ca, tls_section, write_cluster
from daemons.security.identity import Caller, caller_of, may_cancel, refusal
from daemons.servicers.requests import NotOwner, RequestRegistry
from tests.unit.fakes import FakeContext, FakeRpcError

DAEMON = {"peer_spiffe_id": [b"spiffe://fire.cluster/daemon/leader_e"]}
CLIENT = {"peer_spiffe_id": [b"spiffe://fire.cluster/client/client"]}


def test_the_caller_is_the_spiffe_id_of_its_certificate():
    assert caller_of(DAEMON) == Caller("daemon", "leader_e")
    assert caller_of(CLIENT) == Caller("client", "client")
    assert caller_of({}) is None  # no TLS
    assert caller_of({"peer_spiffe_id": [b"spiffe://elsewhere/daemon/x"]}) is None
    assert caller_of({"peer_spiffe_id": [b"spiffe://fire.cluster/daemon/"]}) is None


def test_node_answers_daemons_only_and_the_rest_any_cluster_identity():
    daemon, client = Caller("daemon", "gateway_a"), Caller("client", "client")
    for method in ("/airquality.v1.Node/Scan", "/airquality.v1.Node/HealthCheck", "/airquality.v1.Node/Events"):
        assert refusal(method, daemon) is None
        assert "internal service" in (refusal(method, client) or "")
    for method in ("/airquality.v1.AirQuality/Query", "/grpc.health.v1.Health/Check",
                   "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"):
        assert refusal(method, daemon) is None and refusal(method, client) is None
    assert "no daemon nor client" in (refusal("/airquality.v1.AirQuality/Query", None) or "")


def test_only_the_owner_cancels_when_callers_are_known():
    alice, bob = Caller("client", "alice"), Caller("client", "bob")
    assert may_cancel(alice, alice) and not may_cancel(alice, bob) and not may_cancel(alice, None)
    assert may_cancel(None, bob)  # without TLS nobody is known: as before


def test_the_registry_refuses_a_cancel_from_another_identity():
    serving = threading.Event()
    serving.set()
    registry = RequestRegistry("gateway_a", serving, 4, EventRecorder())
    context = FakeContext()
    context.identity = CLIENT
    registry.admit(context, "r1", kind="query", limited=True)
    with pytest.raises(NotOwner, match="another identity"):
        registry.cancel("r1", Caller("daemon", "worker_c"))
    assert registry.cancel("r1", Caller("client", "client"))


# -- the tls section --------------------------------------------------------------------------------


def _worker(tls: dict) -> dict:
    return {"name": "worker_c", "role": "worker", "listen": "127.0.0.1:50053", "log_file": "../logs/worker_c.log",
            "data": {"root": "../data", "cache_dir": "../cache",
                     "partitions": [{"name": "aug18-26", "days": ["20200818-20200826"]}]},
            "tls": tls}


def _problem(document: dict, tmp_path: Path) -> tuple[str, str]:
    with pytest.raises(ConfigError) as error:
        parse_config(document, tmp_path / "etc" / "worker_c.json", environ={})
    return error.value.field, error.value.problem


def test_a_tls_section_of_gen_certs_files_is_read_once(tmp_path):
    write_cluster(tmp_path, {"worker_c": ["127.0.0.1"]})
    config = parse_config(_worker(tls_section(tmp_path, "worker_c")), tmp_path / "etc" / "worker_c.json", environ={})
    assert config.tls is not None and config.tls.cert_pem == (tmp_path / "worker_c" / "cert.pem").read_bytes()


def test_a_tls_section_that_cannot_work_names_its_field(tmp_path):
    write_cluster(tmp_path, {"worker_c": ["127.0.0.1"], "worker_d": ["127.0.0.1"]})
    section = tls_section(tmp_path, "worker_c")
    assert _problem(_worker({**section, "key": str(tmp_path / "nowhere.pem")}), tmp_path)[0] == "tls.key"
    assert _problem(_worker({**section, "key": str(tmp_path / "worker_d" / "key.pem")}), tmp_path) == (
        "tls.key", "not the key of the certificate of tls.cert")
    assert _problem(_worker({**section, "cert": str(tmp_path / "ca-key.pem")}), tmp_path)[0] == "tls.cert"
    other = tmp_path / "other"
    write_cluster(other, {})
    assert _problem(_worker({**section, "ca": str(other / "ca.pem")}), tmp_path) == (
        "tls.cert", "not signed by the CA of tls.ca")
    assert _problem(_worker({"ca": section["ca"]}), tmp_path)[0] == "tls.cert"  # missing


def test_an_expired_certificate_is_refused_at_start(tmp_path):
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=1000)
    ca_key, ca_cert = make_ca(long_ago)
    key, cert = issue(ca_key, ca_cert, daemon_leaf("worker_c", ["127.0.0.1"]), long_ago, days=30)
    for name, data in (("ca.pem", cert_pem(ca_cert)), ("worker_c/cert.pem", cert_pem(cert)),
                       ("worker_c/key.pem", key_pem(key))):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    field, problem = _problem(_worker(tls_section(tmp_path, "worker_c")), tmp_path)
    assert field == "tls.cert" and "not now" in problem and "--rotate" in problem


def test_one_client_identity_holds_at_most_its_limit_of_requests():
    serving = threading.Event()
    serving.set()
    registry = RequestRegistry("gateway_a", serving, 8, EventRecorder(), max_per_client=2)

    def admit(identity: dict, request_id: str) -> FakeContext:
        context = FakeContext()
        context.identity = identity
        registry.admit(context, request_id, kind="query", limited=True)
        return context

    first = admit(CLIENT, "c1")
    admit(CLIENT, "c2")
    with pytest.raises(FakeRpcError) as refused:
        admit(CLIENT, "c3")
    assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "query.max_requests_per_client" in refused.value.details()
    admit(DAEMON, "d1")  # another identity is not held back
    first.end()
    admit(CLIENT, "c3")  # one ended: room again
    registry_without_tls = RequestRegistry("gateway_a", serving, 8, EventRecorder(), max_per_client=1)
    for request_id in ("p1", "p2"):  # plaintext clients are not told apart: only the overall limit
        registry_without_tls.admit(FakeContext(), request_id, kind="query", limited=True)
