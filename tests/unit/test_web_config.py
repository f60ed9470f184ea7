"""The HTTP endpoints in a daemon's config (daemons/config.py): `metrics_listen` on any daemon and
`dashboard_listen` on the gateway (which serves it on loopback when its config names none), each
on loopback unless TLS or "insecure" says otherwise, on a port of its own; and the shipped
etc/prometheus.yml scraping exactly the shipped daemons' metrics addresses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from daemons.config import DEFAULT_DASHBOARD_LISTEN, Address, ConfigError, load_config, parse_config
from daemons.security.certs import tls_section, write_cluster

ETC = Path(__file__).resolve().parents[2] / "etc"


def worker_doc(**fields: Any) -> dict[str, Any]:
    return {"name": "worker_c", "role": "worker", "listen": "localhost:50053", "log_file": "../logs/worker_c.log",
            "data": {"root": "../data", "cache_dir": "../cache",
                     "partitions": [{"name": "aug18-26", "days": ["20200818-20200826"]}]}, **fields}


def leader_doc(**fields: Any) -> dict[str, Any]:
    return {**worker_doc(), "name": "leader_b", "role": "leader", "listen": "localhost:50052",
            "children": [{"name": "worker_c", "address": "127.0.0.1:50053", "link": "query"}], **fields}


def gateway_doc(**fields: Any) -> dict[str, Any]:
    return {"name": "gateway_a", "role": "gateway", "listen": "localhost:50051", "log_file": "../logs/gateway_a.log",
            "children": [{"name": "leader_b", "address": "127.0.0.1:50052", "link": "query"}],
            "routes": {"aug18-26": [["leader_b", "worker_c"]]}, **fields}


DOCS = {"worker": worker_doc, "leader": leader_doc, "gateway": gateway_doc}


def parsed(document: dict[str, Any], folder: Path):
    return parse_config(document, folder / "etc" / f"{document['name']}.json", environ={})


def refused(document: dict[str, Any], folder: Path) -> ConfigError:
    """The ConfigError a document gets: one line that starts with the file and the field."""
    source = folder / "etc" / f"{document['name']}.json"
    with pytest.raises(ConfigError) as caught:
        parse_config(document, source, environ={})
    error = caught.value
    assert str(error).startswith(f"{source}: {error.field}: "), str(error)
    assert "\n" not in str(error) and "\r" not in str(error)
    return error


# -- where they listen ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["worker", "leader", "gateway"])
def test_any_daemon_may_serve_metrics(role, tmp_path):
    config = parsed(DOCS[role](metrics_listen="127.0.0.1:9150"), tmp_path)
    assert config.metrics_listen == Address("127.0.0.1", 9150)


@pytest.mark.parametrize("role", ["worker", "leader", "gateway"])
def test_without_metrics_listen_there_is_no_metrics_endpoint(role, tmp_path):
    assert parsed(DOCS[role](), tmp_path).metrics_listen is None


def test_a_gateway_serves_its_dashboard_on_loopback_when_its_config_names_no_address(tmp_path):
    assert DEFAULT_DASHBOARD_LISTEN == "127.0.0.1:8050"
    assert parsed(gateway_doc(), tmp_path).dashboard_listen == Address("127.0.0.1", 8050)
    assert parsed(gateway_doc(dashboard_listen="[::1]:8443"), tmp_path).dashboard_listen == Address("::1", 8443)


@pytest.mark.parametrize("role", ["worker", "leader"])
def test_only_a_gateway_serves_the_dashboard(role, tmp_path):
    assert parsed(DOCS[role](), tmp_path).dashboard_listen is None
    error = refused(DOCS[role](dashboard_listen="127.0.0.1:8050"), tmp_path)
    assert error.field == "dashboard_listen" and "only a gateway" in error.problem


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.0.0.2", "[::1]"])
def test_plain_http_on_loopback_needs_no_word(host, tmp_path):
    config = parsed(gateway_doc(metrics_listen=f"{host}:9151", dashboard_listen=f"{host}:8050"), tmp_path)
    assert config.metrics_listen is not None and config.metrics_listen.port == 9151
    assert config.dashboard_listen is not None and config.dashboard_listen.port == 8050
    assert config.tls is None and not config.insecure


@pytest.mark.parametrize("field", ["metrics_listen", "dashboard_listen"])
@pytest.mark.parametrize("host", ["0.0.0.0", "10.44.0.1", "fire-h1", "[::]"])
def test_plain_http_beyond_loopback_is_refused_naming_the_field(field, host, tmp_path):
    error = refused(gateway_doc(**{field: f"{host}:9000"}), tmp_path)
    assert error.field == field
    assert "tls" in error.problem and '"insecure": true' in error.problem
    assert f"{host}:9000" in error.problem


@pytest.mark.parametrize("field", ["metrics_listen", "dashboard_listen"])
def test_plain_http_beyond_loopback_is_accepted_when_said_insecure(field, tmp_path):
    config = parsed(gateway_doc(insecure=True, **{field: "0.0.0.0:9000"}), tmp_path)
    assert getattr(config, field) == Address("0.0.0.0", 9000)


def test_with_tls_the_endpoints_may_listen_beyond_loopback(tmp_path):
    write_cluster(tmp_path / "certs", {"worker_c": ["127.0.0.1"], "gateway_a": ["127.0.0.1"]})
    worker = parsed(worker_doc(metrics_listen="0.0.0.0:9153", tls=tls_section(tmp_path / "certs", "worker_c")),
                    tmp_path)
    assert worker.metrics_listen == Address("0.0.0.0", 9153) and worker.tls is not None
    gateway = parsed(gateway_doc(metrics_listen="10.44.0.1:9151", dashboard_listen="10.44.0.1:8050",
                                 tls=tls_section(tmp_path / "certs", "gateway_a")), tmp_path)
    assert gateway.dashboard_listen == Address("10.44.0.1", 8050) and not gateway.insecure


@pytest.mark.parametrize("fields, field, taken_by", [
    ({"metrics_listen": "127.0.0.1:50051"}, "metrics_listen", "listen"),
    ({"metrics_listen": "127.0.0.2:50051"}, "metrics_listen", "listen"),  # another address, the same port
    ({"dashboard_listen": "127.0.0.1:50051"}, "dashboard_listen", "listen"),
    ({"metrics_listen": "127.0.0.1:9151", "dashboard_listen": "localhost:9151"}, "dashboard_listen", "metrics_listen"),
])
def test_each_endpoint_needs_a_port_of_its_own(fields, field, taken_by, tmp_path):
    error = refused(gateway_doc(**fields), tmp_path)
    assert error.field == field
    port = fields[field].rpartition(":")[2]
    assert error.problem == f"port {port} is {taken_by}'s already"


def test_the_default_dashboard_port_is_taken_on_a_gateway_only(tmp_path):
    for fields in ({"metrics_listen": "127.0.0.1:8050"}, {"listen": "localhost:8050"}):
        error = refused(gateway_doc(**fields), tmp_path)
        assert "port 8050" in error.problem and "dashboard_listen" in str(error)
        assert "its default, 127.0.0.1:8050" in error.problem
    # A worker has no dashboard: the port is its own to take.
    assert parsed(worker_doc(metrics_listen="127.0.0.1:8050"), tmp_path).metrics_listen == Address("127.0.0.1", 8050)
    assert parsed(worker_doc(listen="localhost:8050"), tmp_path).listen == Address("localhost", 8050)


@pytest.mark.parametrize("value, problem", [
    (9151, "expected str, got int 9151"), ("localhost", 'expected "host:port"'), ("127.0.0.1:0", "1..65535"),
    ("127.0.0.1:65536", "1..65535"), (":9151", 'expected "host:port"'), ("127.0.0.1:91\n51", 'expected "host:port"')])
@pytest.mark.parametrize("field", ["metrics_listen", "dashboard_listen"])
def test_an_unreadable_address_is_one_line_naming_its_field(field, value, problem, tmp_path):
    error = refused(gateway_doc(**{field: value}), tmp_path)
    assert error.field == field and problem in error.problem


# -- as shipped -------------------------------------------------------------------------------------


def shipped() -> dict[str, Any]:
    configs = {path.stem: load_config(path, environ={}) for path in sorted(ETC.glob("*.json"))}
    assert len(configs) == 6
    return configs


def test_the_shipped_daemons_serve_metrics_on_loopback_each_on_its_own_port():
    configs = shipped()
    addresses = {name: config.metrics_listen for name, config in configs.items()}
    assert all(address is not None and address.host == "127.0.0.1" for address in addresses.values()), addresses
    ports = [address.port for address in addresses.values() if address is not None]
    ports += [config.listen.port for config in configs.values()]
    ports.append(configs["gateway_a"].dashboard_listen.port)
    assert len(ports) == len(set(ports)) == 13
    assert configs["gateway_a"].dashboard_listen == Address("127.0.0.1", 8050)


def test_prometheus_scrapes_every_shipped_daemon_every_5_seconds_labelled_with_its_name():
    document = yaml.safe_load((ETC / "prometheus.yml").read_text())
    assert document["global"]["scrape_interval"] == "5s"
    scraped: list[tuple[str, str]] = []
    for job in document["scrape_configs"]:
        assert job.get("scrape_interval", "5s") == "5s"
        for group in job["static_configs"]:
            scraped += [(target, group["labels"]["daemon"]) for target in group["targets"]]
    expected = {str(config.metrics_listen): name for name, config in shipped().items()}
    assert len(scraped) == len(set(scraped)) == 6
    assert dict(scraped) == expected
