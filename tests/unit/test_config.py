"""Daemon config files: valid ones become typed objects, every invalid one is one ConfigError line."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path

import pytest

from daemons.config import (
    DATA_DIR_ENV,
    INTERNAL_REQUESTS_BY_ROLE,
    PROBE_MINIMUM_SECONDS,
    Address,
    ConfigError,
    DaemonConfig,
    DataConfig,
    HealthConfig,
    Link,
    PartitionSpec,
    QueryConfig,
    load_config,
    parse_config,
)

REPO = Path(__file__).resolve().parents[2]
ETC = REPO / "etc"
DAEMONS = ("gateway_a", "leader_b", "leader_e", "worker_c", "worker_d", "worker_f")
DELETE = object()


def worker_doc() -> dict:
    return {
        "name": "worker_c",
        "role": "worker",
        "listen": "localhost:50053",
        "log_file": "../logs/worker_c.log",
        "data": {"root": "../data", "cache_dir": "../cache",
                 "partitions": [{"name": "aug18-26", "days": ["20200818-20200826"]}]},
    }


def leader_doc() -> dict:
    return {
        "name": "leader_b",
        "role": "leader",
        "listen": "localhost:50052",
        "log_file": "../logs/leader_b.log",
        "data": {"root": "../data", "cache_dir": "../cache",
                 "partitions": [{"name": "aug10-17", "days": ["20200810", "20200814-20200817"]}]},
        "children": [{"name": "worker_c", "address": "127.0.0.1:50053", "link": "query"},
                     {"name": "worker_d", "address": "127.0.0.1:50054", "link": "control"}],
        "query": {"default_chunk_size": 1000, "call_timeout_seconds": 30, "shutdown_grace_seconds": 2.5,
                  "max_concurrent_requests": 8},
    }


def gateway_doc() -> dict:
    return {
        "name": "gateway_a",
        "role": "gateway",
        "listen": "0.0.0.0:50051",
        "insecure": True,
        "log_file": "/var/log/fire/gateway_a.log",
        "children": [{"name": "leader_b", "address": "127.0.0.1:50052", "link": "query"},
                     {"name": "leader_e", "address": "127.0.0.1:50055", "link": "query"}],
        "routes": {"aug10-17": [["leader_b"]],
                   "aug18-26": [["leader_b", "worker_c"], ["leader_e", "worker_c"]]},
    }


BASES = {"worker": worker_doc, "leader": leader_doc, "gateway": gateway_doc}


def overlay_docs() -> dict[str, dict]:
    """gateway_doc with the configs of every daemon below it, consistent with its routes."""
    leader_e = edited(edited(leader_doc(), "name", "leader_e"), "listen", "localhost:50055")
    leader_e["children"] = [{"name": "worker_c", "address": "127.0.0.1:50053", "link": "query"}]
    leader_e["data"]["partitions"] = [{"name": "aug18-26", "days": ["20200818-20200826"]}]
    worker_d = edited(edited(worker_doc(), "name", "worker_d"), "listen", "localhost:50054")
    return {"gateway_a": gateway_doc(), "leader_b": leader_doc(), "leader_e": leader_e, "worker_c": worker_doc(),
            "worker_d": worker_d}


def write_overlay(folder: Path, documents: dict[str, dict]) -> Path:
    """Writes every document as <name>.json into `folder`, as a deployment's etc/; returns the gateway's."""
    for name, document in documents.items():
        write_config(folder, document, f"{name}.json")
    return (folder / "gateway_a.json").resolve()


def shipped_overlay(folder: Path, edit=None) -> Path:
    """The six shipped configs in `folder`, `edit(name, document)` applied to each; returns the gateway's."""
    documents = {name: json.loads((ETC / f"{name}.json").read_text()) for name in DAEMONS}
    for name, document in documents.items():
        if edit:
            edit(name, document)
    return write_overlay(folder, documents)


def edited(document: dict, path: str, value) -> dict:
    """A copy of `document` with the field at `path` ("a.b[0].c") set to `value`, or removed for DELETE.

    Missing objects along the path are created empty."""
    document = copy.deepcopy(document)
    steps = [int(step[1:-1]) if step.startswith("[") else step for step in re.findall(r"\[\d+\]|[^.\[\]]+", path)]
    parent = document
    for step in steps[:-1]:
        parent = parent.setdefault(step, {}) if isinstance(parent, dict) else parent[step]
    if value is DELETE:
        del parent[steps[-1]]
    else:
        parent[steps[-1]] = value
    return document


def write_config(folder: Path, document, name: str = "daemon.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path.resolve()


def config_error(path: Path, field_text: str) -> ConfigError:
    """Loads `path`, expecting a one-line ConfigError that starts with the file and the field."""
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"{path}: {field_text}: "), message
    assert "\n" not in message, message
    assert caught.value.problem, message
    return caught.value


# --- valid configs -------------------------------------------------------------------------------

def test_worker_config_parses_into_typed_objects(tmp_path):
    path = write_config(tmp_path / "etc", worker_doc())
    config = load_config(path, environ={})
    assert isinstance(config, DaemonConfig)
    assert (config.source, config.name, config.role) == (path, "worker_c", "worker")
    assert config.listen == Address("localhost", 50053)
    assert config.log_file == tmp_path / "logs" / "worker_c.log"
    assert config.data == DataConfig(
        root=tmp_path / "data", cache_dir=tmp_path / "cache",
        partitions=(PartitionSpec("aug18-26", tuple(f"202008{day}" for day in range(18, 27))),))
    assert (config.children, config.routes) == ((), {})
    assert config.query == QueryConfig(max_internal_requests=INTERNAL_REQUESTS_BY_ROLE["worker"])


def test_leader_config_parses_children_and_query_settings(tmp_path):
    config = load_config(write_config(tmp_path / "etc", leader_doc()), environ={})
    assert config.role == "leader"
    assert config.children == (Link("worker_c", Address("127.0.0.1", 50053), "query"),
                               Link("worker_d", Address("127.0.0.1", 50054), "control"))
    assert config.child("worker_d").kind == "control"
    assert config.data.partitions == (
        PartitionSpec("aug10-17", ("20200810", "20200814", "20200815", "20200816", "20200817")),)
    assert config.query == QueryConfig(default_chunk_size=1000, call_timeout_seconds=30.0,
                                       shutdown_grace_seconds=2.5, max_concurrent_requests=8)
    assert isinstance(config.query.call_timeout_seconds, float)
    assert config.routes == {}


def test_gateway_config_parses_routes_and_holds_no_data(tmp_path):
    config = load_config(write_overlay(tmp_path, overlay_docs()), environ={DATA_DIR_ENV: str(tmp_path)})
    assert config.role == "gateway"
    assert config.data is None
    assert config.listen == Address("0.0.0.0", 50051) and config.insecure
    assert config.log_file == Path("/var/log/fire/gateway_a.log")
    assert dict(config.routes) == {"aug10-17": (("leader_b",),),
                                   "aug18-26": (("leader_b", "worker_c"), ("leader_e", "worker_c"))}


@pytest.mark.parametrize("name", DAEMONS)
def test_every_shipped_config_loads(name):
    config = load_config(ETC / f"{name}.json", environ={})
    assert config.name == name
    assert config.role == name.split("_")[0]
    assert config.source == ETC / f"{name}.json"
    assert config.log_file == REPO / "logs" / f"{name}.log"
    if config.role == "gateway":
        assert config.data is None and config.routes
    else:
        assert config.data.root == REPO / "var" / "fire-data"
        assert config.data.cache_dir == REPO / "var" / "cache"
        assert config.data.partitions


@pytest.mark.parametrize("name", DAEMONS)
def test_fire_data_dir_overrides_the_data_root_of_shipped_configs(name, tmp_path):
    config = load_config(ETC / f"{name}.json", environ={DATA_DIR_ENV: str(tmp_path / "elsewhere" / "..")})
    if config.data is not None:
        assert config.data.root == tmp_path
        assert config.data.cache_dir == REPO / "var" / "cache"  # the cache is not moved with the data


def test_fire_data_dir_override_through_parse_config(tmp_path):
    source = tmp_path / "etc" / "worker.json"
    assert parse_config(worker_doc(), source, environ={DATA_DIR_ENV: "/srv/fire"}).data.root == Path("/srv/fire")
    assert parse_config(worker_doc(), source, environ={DATA_DIR_ENV: ""}).data.root == tmp_path / "data"
    assert parse_config(worker_doc(), source, environ={}).data.root == tmp_path / "data"


def test_shipped_gateway_routes_follow_child_links_to_the_partition_holder():
    configs = {name: load_config(ETC / f"{name}.json", environ={}) for name in DAEMONS}
    gateway = configs["gateway_a"]
    holders: dict[str, set[str]] = {}
    for name, config in configs.items():
        for spec in config.data.partitions if config.data else ():
            holders.setdefault(spec.name, set()).add(name)
    assert set(gateway.routes) == set(holders)
    for partition, paths in gateway.routes.items():
        for path in paths:
            hops = ("gateway_a", *path)
            for parent, child in itertools.pairwise(hops):
                assert child in {link.name for link in configs[parent].children}, (partition, path)
            assert path[-1] in holders[partition], (partition, path)


def test_relative_paths_resolve_against_the_config_folder_not_the_working_directory(tmp_path, monkeypatch):
    path = write_config(tmp_path / "etc", worker_doc())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = load_config(path, environ={})
    assert config.data.root == tmp_path / "data"
    assert config.data.cache_dir == tmp_path / "cache"
    assert config.log_file == tmp_path / "logs" / "worker_c.log"


def test_relative_config_path_still_gives_absolute_paths(tmp_path, monkeypatch):
    write_config(tmp_path / "etc", worker_doc())
    monkeypatch.chdir(tmp_path)
    config = load_config("etc/daemon.json", environ={})
    assert config.source == tmp_path / "etc" / "daemon.json"
    assert config.data.root == tmp_path / "data"
    assert config.log_file.is_absolute()


def test_home_relative_paths_expand(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(write_config(tmp_path, edited(worker_doc(), "data.cache_dir", "~/cache")), environ={})
    assert config.data.cache_dir == tmp_path / "home" / "cache"


@pytest.mark.parametrize("days, expected", [
    (["20200814-20200817"], ["20200814", "20200815", "20200816", "20200817"]),
    (["20200817", "20200814-20200816", "20200815", "20200816-20200817"],
     ["20200814", "20200815", "20200816", "20200817"]),
    (["20200830-20200902"], ["20200830", "20200831", "20200901", "20200902"]),
    (["20200228-20200301"], ["20200228", "20200229", "20200301"]),
    (["20200910", "20200810"], ["20200810", "20200910"]),
    (["20200814-20200814"], ["20200814"]),
])
def test_day_ranges_expand_sorted_and_deduplicated(days, expected, tmp_path):
    document = edited(worker_doc(), "data.partitions[0].days", days)
    assert load_config(write_config(tmp_path, document), environ={}).data.partitions[0].days == tuple(expected)


def test_cpus_are_a_set_and_absent_means_every_cpu(tmp_path):
    assert load_config(write_config(tmp_path, edited(worker_doc(), "cpus", [3, 0, 8191])), environ={}).cpus == {0, 3, 8191}
    assert load_config(write_config(tmp_path, worker_doc()), environ={}).cpus is None


@pytest.mark.parametrize("size", [1, 65536])
def test_chunk_size_limits_are_inclusive(size, tmp_path):
    document = edited(worker_doc(), "query", {"default_chunk_size": size})
    assert load_config(write_config(tmp_path, document), environ={}).query.default_chunk_size == size


@pytest.mark.parametrize("text, expected", [
    ("localhost:1", Address("localhost", 1)),
    ("127.0.0.1:65535", Address("127.0.0.1", 65535)),
    ("[::1]:50051", Address("::1", 50051)),
])
def test_listen_addresses_parse(text, expected, tmp_path):
    assert load_config(write_config(tmp_path, edited(worker_doc(), "listen", text)), environ={}).listen == expected


def test_address_text_is_host_colon_port():
    assert str(Address("127.0.0.1", 50052)) == "127.0.0.1:50052"


def test_ipv6_address_text_keeps_its_brackets(tmp_path):
    config = load_config(write_config(tmp_path, edited(worker_doc(), "listen", "[::1]:50051")), environ={})
    assert str(config.listen) == "[::1]:50051"


# --- invalid configs -----------------------------------------------------------------------------

INVALID = [
    # unknown fields
    ("worker", "colour", "blue", "colour"),
    ("worker", "data.partitions[0].size", 3, "data.partitions[0].size"),
    ("worker", "data.compression", "zstd", "data.compression"),
    ("worker", "query.chunk", 10, "query.chunk"),
    ("leader", "children[0].colour", "red", "children[0].colour"),
    # missing required fields
    ("worker", "name", DELETE, "name"),
    ("worker", "role", DELETE, "role"),
    ("worker", "listen", DELETE, "listen"),
    ("worker", "log_file", DELETE, "log_file"),
    ("worker", "data.root", DELETE, "data.root"),
    ("worker", "data.cache_dir", DELETE, "data.cache_dir"),
    ("worker", "data.partitions", DELETE, "data.partitions"),
    ("worker", "data.partitions[0].days", DELETE, "data.partitions[0].days"),
    ("worker", "data.partitions[0].name", DELETE, "data.partitions[0].name"),
    ("leader", "children[0].link", DELETE, "children[0].link"),
    ("leader", "children[1].address", DELETE, "children[1].address"),
    # wrong types
    ("worker", "name", 5, "name"),
    ("worker", "role", ["worker"], "role"),
    ("worker", "listen", 50053, "listen"),
    ("worker", "log_file", ["a.log"], "log_file"),
    ("worker", "log_file", "", "log_file"),
    ("worker", "data", [], "data"),
    ("worker", "data.root", None, "data.root"),
    ("worker", "data.partitions", {"name": "x"}, "data.partitions"),
    ("worker", "data.partitions[0]", "aug18-26", "data.partitions[0]"),
    ("worker", "data.partitions[0].days", "20200818", "data.partitions[0].days"),
    ("worker", "data.partitions[0].days", [20200818], "data.partitions[0].days[0]"),
    ("worker", "query", [1], "query"),
    ("worker", "query.default_chunk_size", "8192", "query.default_chunk_size"),
    ("worker", "query.default_chunk_size", 8192.0, "query.default_chunk_size"),
    ("worker", "query.default_chunk_size", True, "query.default_chunk_size"),
    ("worker", "query.max_concurrent_requests", True, "query.max_concurrent_requests"),
    ("worker", "query.call_timeout_seconds", False, "query.call_timeout_seconds"),
    ("worker", "query.call_timeout_seconds", "300", "query.call_timeout_seconds"),
    ("leader", "children", {"worker_c": "127.0.0.1:50053"}, "children"),
    ("leader", "children[0]", "worker_c", "children[0]"),
    # names
    ("worker", "name", "Worker C", "name"),
    ("worker", "name", "", "name"),
    ("worker", "name", "9lives", "name"),
    ("worker", "data.partitions[0].name", "Aug 18", "data.partitions[0].name"),
    ("leader", "children[0].name", "Worker_C", "children[0].name"),
    # addresses
    ("worker", "listen", "localhost", "listen"),
    ("worker", "listen", "localhost:", "listen"),
    ("worker", "listen", ":50053", "listen"),
    ("worker", "listen", "localhost:http", "listen"),
    ("worker", "listen", "localhost:-1", "listen"),
    ("worker", "listen", "localhost:0", "listen"),
    ("worker", "listen", "localhost:65536", "listen"),
    ("leader", "children[0].address", "127.0.0.1:99999", "children[0].address"),
    # roles and what each role may hold
    ("worker", "role", "master", "role"),
    ("worker", "role", "Worker", "role"),
    ("worker", "children", [{"name": "worker_d", "address": "127.0.0.1:50054", "link": "query"}], "children"),
    ("worker", "data", DELETE, "data"),
    ("worker", "data.partitions", [], "data"),
    ("worker", "routes", {"aug18-26": [["worker_d"]]}, "routes"),
    ("leader", "children", DELETE, "children"),
    ("leader", "children", [], "children"),
    ("leader", "data", DELETE, "data"),
    ("leader", "routes", {"aug10-17": [["worker_c"]]}, "routes"),
    ("leader", "children[0].link", "fast", "children[0].link"),
    ("leader", "children[1].name", "worker_c", "children[1].name"),
    ("leader", "children[0].name", "leader_b", "children[0].name"),
    ("gateway", "data", {"root": "d", "cache_dir": "c", "partitions": [{"name": "p", "days": ["20200810"]}]}, "data"),
    ("gateway", "children", DELETE, "children"),
    ("gateway", "children", [], "children"),
    ("gateway", "routes", DELETE, "routes"),
    # partitions and days
    ("worker", "data.partitions", [{"name": "aug18-26", "days": ["20200818"]},
                                   {"name": "aug18-26", "days": ["20200819"]}], "data.partitions[1].name"),
    ("worker", "data.partitions[0].days", [], "data.partitions[0].days"),
    ("worker", "data.partitions[0].days", ["2020081"], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", [""], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", ["2020-08-18"], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", ["20200231"], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", ["20201301"], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", ["20200818", "2020818x"], "data.partitions[0].days[1]"),
    ("worker", "data.partitions[0].days", ["-20200818"], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", ["20200818-2020082"], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", ["20200818-20200819-20200820"], "data.partitions[0].days[0]"),
    ("worker", "data.partitions[0].days", ["20200810", "20200826-20200818"], "data.partitions[0].days[1]"),
    # gateway routes
    ("gateway", "routes", [["leader_b"]], "routes"),
    ("gateway", "routes", {}, "routes"),
    ("gateway", "routes", {"aug10-17": [["worker_c"]]}, "routes.aug10-17[0]"),
    ("gateway", "routes", {"aug10-17": [["gateway_a", "leader_b"]]}, "routes.aug10-17[0]"),
    ("gateway", "routes", {"aug18-26": [["leader_b", "worker_c"], ["worker_c"]]}, "routes.aug18-26[1]"),
    ("gateway", "routes", {"aug18-26": [["leader_b", "worker_c", "leader_b"]]}, "routes.aug18-26[0]"),
    ("gateway", "routes", {"aug18-26": [["leader_b", "leader_b"]]}, "routes.aug18-26[0]"),
    ("gateway", "routes", {"aug18-26": [[]]}, "routes.aug18-26[0]"),
    ("gateway", "routes", {"aug18-26": []}, "routes.aug18-26"),
    ("gateway", "routes", {"aug18-26": "leader_b"}, "routes.aug18-26"),
    ("gateway", "routes", {"aug18-26": ["leader_b"]}, "routes.aug18-26[0]"),
    ("gateway", "routes", {"aug18-26": [["leader_b", 7]]}, "routes.aug18-26[0]"),
    ("gateway", "routes", {"Aug 18": [["leader_b"]]}, "routes.Aug 18"),
    # query settings
    ("worker", "query.default_chunk_size", 0, "query.default_chunk_size"),
    ("worker", "query.default_chunk_size", 70000, "query.default_chunk_size"),
    ("worker", "query.default_chunk_size", 65537, "query.default_chunk_size"),
    ("worker", "query.default_chunk_size", -1, "query.default_chunk_size"),
    ("leader", "query.call_timeout_seconds", -1, "query.call_timeout_seconds"),
    ("leader", "query.call_timeout_seconds", 0, "query.call_timeout_seconds"),
    ("leader", "query.shutdown_grace_seconds", -0.5, "query.shutdown_grace_seconds"),
    ("leader", "query.max_concurrent_requests", 0, "query.max_concurrent_requests"),
    # health monitoring: probe timings are checked by the reader, thresholds by the state machine
    ("leader", "health_monitoring", {"interval_seconds": 0}, "health_monitoring.interval_seconds"),
    ("leader", "health_monitoring", {"jitter_fraction": 0.9}, "health_monitoring.jitter_fraction"),
    ("leader", "health_monitoring", {"enabled": "yes"}, "health_monitoring.enabled"),
    ("leader", "health_monitoring", {"failures_before_degraded": 0}, "health_monitoring.failures_before_degraded"),
    ("leader", "health_monitoring", {"failures_before_degraded": 4}, "health_monitoring.failures_before_unavailable"),
    ("leader", "health_monitoring", {"failures_before_unavailable": 2.5},
     "health_monitoring.failures_before_unavailable"),
    ("leader", "health_monitoring", {"successes_before_healthy": 0}, "health_monitoring.successes_before_healthy"),
    ("leader", "health_monitoring", {"startup_grace_seconds": -1}, "health_monitoring.startup_grace_seconds"),
    ("leader", "health_monitoring", {"window_seconds": 0}, "health_monitoring.window_seconds"),
    ("leader", "health_monitoring", {"probes": 3}, "health_monitoring.probes"),
    ("worker", "log_rotation", {"max_bytes": 100}, "log_rotation.max_bytes"),
    ("worker", "log_rotation", {"backups": 0}, "log_rotation.backups"),
    ("worker", "log_rotation", {"backups": "5"}, "log_rotation.backups"),
    ("worker", "log_rotation", {"keep": 5}, "log_rotation.keep"),
    # CPUs
    ("worker", "cpus", [], "cpus"),
    ("worker", "cpus", 0, "cpus"),
    ("worker", "cpus", [0, 0], "cpus"),
    ("worker", "cpus", [-1], "cpus[0]"),
    ("worker", "cpus", [0, 8192], "cpus[1]"),
    ("worker", "cpus", ["0"], "cpus[0]"),
    ("worker", "cpus", [True], "cpus[0]"),
]


@pytest.mark.parametrize("role, path, value, field", INVALID,
                         ids=[f"{role}-{path}={'<deleted>' if value is DELETE else json.dumps(value)[:30]}"
                              for role, path, value, _ in INVALID])
def test_invalid_config_is_one_line_naming_file_and_field(role, path, value, field, tmp_path):
    error = config_error(write_config(tmp_path, edited(BASES[role](), path, value)), field)
    assert error.field == field


@pytest.mark.parametrize("document", [[], "worker", 7, None])
def test_top_level_must_be_an_object(document, tmp_path):
    config_error(write_config(tmp_path, document), "(top level)")


def test_unknown_field_error_lists_the_allowed_fields(tmp_path):
    error = config_error(write_config(tmp_path, edited(worker_doc(), "query.chunk", 10)), "query.chunk")
    assert "default_chunk_size" in error.problem


@pytest.mark.parametrize("text, position", [
    ('{"name": ', "(line 1 column 10)"),
    ('{\n  "name": "worker_c",\n  oops\n}', "(line 3 column 3)"),
    ("", "(line 1 column 1)"),
    ('{"name": "a",}', "(line 1 column 14)"),
])
def test_invalid_json_names_the_position(text, position, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(text, encoding="utf-8")
    assert "invalid JSON" in config_error(path, position).problem


def test_missing_file_is_a_config_error(tmp_path):
    error = config_error(tmp_path / "absent.json", "(file)")
    assert "No such file" in error.problem


def test_directory_instead_of_file_is_a_config_error(tmp_path):
    config_error(tmp_path, "(file)")


def test_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "daemon.json"
    path.write_bytes(b'{"name": "caf\xe9"}')
    config_error(path, "(file)")


def test_range_without_an_end_is_rejected(tmp_path):
    config_error(write_config(tmp_path, edited(worker_doc(), "data.partitions[0].days", ["20200818-"])),
                 "data.partitions[0].days[0]")


def test_name_with_a_trailing_newline_is_rejected(tmp_path):
    config_error(write_config(tmp_path, edited(worker_doc(), "name", "worker_c\n")), "name")


def test_unknown_field_with_a_newline_still_gives_one_line(tmp_path):
    path = write_config(tmp_path, edited(worker_doc(), "colour\nred", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "\n" not in str(caught.value)


# --- duplicate keys ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, field", [
    ('{"name": "worker_c", "name": "worker_d"}', "name"),
    ('{"name": "w", "data": {"root": "a", "cache_dir": "c", "root": "b"}}', "data.root"),
    ('{"data": {"partitions": [{"name": "p", "days": []}, {"name": "q", "days": [], "days": []}]}}',
     "data.partitions[1].days"),
    ('{"query": {"unknown": 1, "unknown": 2}}', "query.unknown"),  # found before the unknown field
    ('{"a": {"x": 1, "x": 2}, "b": {"y": 1, "y": 2}}', "a.x"),  # the first in document order
    ('{"a": [[{"z": 1, "z": 1}]]}', "a[0][0].z"),
])
def test_a_key_given_twice_is_refused_with_its_path(text, field, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(text, encoding="utf-8")
    assert "twice" in config_error(path, field).problem


def test_a_duplicate_key_in_a_long_key_is_named_cut_short(tmp_path):
    key = "k" * 1000
    path = tmp_path / "daemon.json"
    path.write_text(f'{{"{key}": 1, "{key}": 2}}', encoding="utf-8")
    error = config_error(path, "k" * 40 + "…")
    assert len(str(error)) < len(str(path)) + 200


@pytest.mark.parametrize("text", ["1" * 5000, "[" * 100_000 + "]" * 100_000])
def test_json_that_python_cannot_hold_is_a_config_error(text, tmp_path):
    path = tmp_path / "daemon.json"
    path.write_text(text, encoding="utf-8")
    assert "invalid JSON" in config_error(path, "(file)").problem


# --- health monitoring: lower bounds and relations -----------------------------------------------

@pytest.mark.parametrize("settings, field", [
    ({"interval_seconds": 1e-6}, "interval_seconds"),
    ({"interval_seconds": 0.049}, "interval_seconds"),
    ({"timeout_seconds": 0.049}, "timeout_seconds"),
    ({"check_interval_seconds": 0.49}, "check_interval_seconds"),
    ({"confirm_interval_seconds": 0.0049}, "confirm_interval_seconds"),
    ({"confirm_interval_seconds": 0}, "confirm_interval_seconds"),
    ({"interval_seconds": float("nan")}, "interval_seconds"),
    ({"timeout_seconds": float("inf")}, "timeout_seconds"),
    ({"interval_seconds": 2e6}, "interval_seconds"),
    # at most 100 probes outstanding: timeout / the shorter of the two intervals
    ({"interval_seconds": 0.4, "timeout_seconds": 40.1}, "timeout_seconds"),
    ({"interval_seconds": 1, "check_interval_seconds": 0.5, "timeout_seconds": 51}, "timeout_seconds"),
])
def test_probe_timings_below_their_bounds_are_refused(settings, field, tmp_path):
    error = config_error(write_config(tmp_path, edited(leader_doc(), "health_monitoring", settings)),
                         f"health_monitoring.{field}")
    assert error.problem.startswith("must be")


@pytest.mark.parametrize("settings", [
    {"interval_seconds": 0.05, "timeout_seconds": 0.05, "check_interval_seconds": 0.5,
     "confirm_interval_seconds": 0.005},
    {"interval_seconds": 0.4, "timeout_seconds": 40},
    {"interval_seconds": 1, "check_interval_seconds": 0.5, "timeout_seconds": 50},
    {"interval_seconds": 0.05, "timeout_seconds": 5},
])
def test_probe_timings_at_their_bounds_are_accepted(settings, tmp_path):
    health = load_config(write_config(tmp_path, edited(leader_doc(), "health_monitoring", settings)), environ={}).health
    assert {name: getattr(health, name) for name in settings} == settings


def test_the_shipped_probe_timings_are_within_the_bounds():
    shipped = {name: getattr(HealthConfig(), name) for name in PROBE_MINIMUM_SECONDS}
    assert all(shipped[name] >= minimum for name, minimum in PROBE_MINIMUM_SECONDS.items())


# --- query limits --------------------------------------------------------------------------------

def test_query_limits_parse_and_default(tmp_path):
    limits = {"max_internal_requests": 16, "client_idle_timeout_seconds": 2.5, "max_aggregate_groups": 500}
    query = load_config(write_config(tmp_path, edited(worker_doc(), "query", limits)), environ={}).query
    assert (query.max_internal_requests, query.client_idle_timeout_seconds, query.max_aggregate_groups) == (16, 2.5, 500)
    assert isinstance(load_config(write_config(tmp_path, edited(worker_doc(), "query.client_idle_timeout_seconds", 30)),
                                  environ={}).query.client_idle_timeout_seconds, float)
    defaults = load_config(write_config(tmp_path, worker_doc()), environ={}).query
    assert (defaults.max_internal_requests, defaults.client_idle_timeout_seconds,
            defaults.max_aggregate_groups) == (320, 30.0, 100_000)


def test_the_default_limit_for_calls_from_parents_depends_on_the_role(tmp_path):
    docs = overlay_docs()
    limits = {name: parse_config(docs[name], tmp_path / f"{name}.json", environ={}).query.max_internal_requests
              for name in ("gateway_a", "leader_b", "worker_c")}
    assert limits == {"gateway_a": 16, "leader_b": 160, "worker_c": 320}


@pytest.mark.parametrize("field, value", [
    ("max_internal_requests", 0),
    ("max_internal_requests", -5),
    ("max_internal_requests", 8.0),
    ("max_internal_requests", True),
    ("max_internal_requests", "128"),
    ("max_internal_requests", 10**7),
    ("client_idle_timeout_seconds", 0),
    ("client_idle_timeout_seconds", -1),
    ("client_idle_timeout_seconds", "30"),
    ("client_idle_timeout_seconds", False),
    ("client_idle_timeout_seconds", float("nan")),
    ("client_idle_timeout_seconds", 2e6),
    ("max_aggregate_groups", 0),
    ("max_aggregate_groups", 1.5),
    ("max_aggregate_groups", None),
])
def test_invalid_query_limits_are_refused(field, value, tmp_path):
    config_error(write_config(tmp_path, edited(worker_doc(), f"query.{field}", value)), f"query.{field}")


# --- values from the file: ASCII digits only, shown cut short ------------------------------------

def other_digits(text: str, zero: str) -> str:
    """`text` with its ASCII digits written in another script's digits, from that script's zero."""
    return text.translate(str.maketrans("0123456789", "".join(chr(ord(zero) + d) for d in range(10))))


FULL_WIDTH_ZERO, ARABIC_INDIC_ZERO = "\uff10", "\u0660"


@pytest.mark.parametrize("path, value, field", [
    ("listen", "localhost:" + other_digits("50053", FULL_WIDTH_ZERO), "listen"),
    ("listen", "localhost:" + other_digits("50053", ARABIC_INDIC_ZERO), "listen"),
    ("data.partitions[0].days", [other_digits("20200818", FULL_WIDTH_ZERO)], "data.partitions[0].days[0]"),
    ("data.partitions[0].days", ["20200818-" + other_digits("20200820", FULL_WIDTH_ZERO)],
     "data.partitions[0].days[0]"),
])
def test_only_ascii_digits_count_as_digits(path, value, field, tmp_path):
    config_error(write_config(tmp_path, edited(worker_doc(), path, value)), field)


@pytest.mark.parametrize("path, value, field", [
    ("listen", "x" * 1_000_000, "listen"),
    ("name", "N" * 1_000_000, "name"),
    ("data.partitions[0].days", ["9" * 1_000_000], "data.partitions[0].days[0]"),
    ("query.default_chunk_size", "8" * 1_000_000, "query.default_chunk_size"),
])
def test_a_long_bad_value_is_quoted_cut_short_with_its_length(path, value, field, tmp_path):
    error = config_error(write_config(tmp_path, edited(worker_doc(), path, value)), field)
    assert "(1,000,000 characters)" in error.problem and len(error.problem) < 200


def test_a_long_unknown_key_is_named_cut_short(tmp_path):
    error = config_error(write_config(tmp_path, edited(worker_doc(), "q" * 1_000_000, 1)), "q" * 40 + "…")
    assert len(str(error)) < len(str(tmp_path)) + 400


# --- gateway routes against the overlay of the configs in its folder ----------------------------

def test_parse_config_checks_a_gateway_document_alone(tmp_path):
    config = parse_config(gateway_doc(), tmp_path / "nowhere" / "gateway_a.json", environ={})
    assert set(config.routes) == {"aug10-17", "aug18-26"}


def test_the_shipped_overlay_copied_elsewhere_loads(tmp_path):
    assert load_config(shipped_overlay(tmp_path / "etc"), environ={}).routes


def test_a_route_over_a_control_link_is_accepted(tmp_path):
    def route_over_control_link(name, document):
        if name == "gateway_a":
            document["routes"]["aug27-sep04"] = [["leader_b", "worker_d"]]

    config = load_config(shipped_overlay(tmp_path, route_over_control_link), environ={})
    assert config.routes["aug27-sep04"] == (("leader_b", "worker_d"),)


def routed(partition: str, paths: list[list[str]]):
    def edit(name, document):
        if name == "gateway_a":
            document["routes"][partition] = paths
    return edit


@pytest.mark.parametrize("edit, field, problem", [
    (routed("aug18-26", [["leader_b", "worker_c"], ["leader_b", "worker_f"]]), "routes.aug18-26[1]",
     "leader_b has no child link to worker_f (its children: worker_c, worker_d)"),
    (routed("aug18-26", [["leader_b", "worker_z"]]), "routes.aug18-26[0]", "leader_b has no child link to worker_z"),
    (routed("aug18-26", [["leader_b", "worker_c", "worker_d"]]), "routes.aug18-26[0]",
     "worker_c has no child link to worker_d (its children: none)"),
    (routed("sep14-24", [["leader_e", "worker_d"]]), "routes.sep14-24[0]",
     "worker_d, the end of the path, does not hold sep14-24, nor does any daemon on this path"),
    (routed("aug10-17", [["leader_b", "worker_c"]]), "routes.aug10-17[0]",
     "worker_c, the end of the path, does not hold aug10-17; leader_b on this path does, so end the path there"),
    (routed("oct01-09", [["leader_b"]]), "routes.oct01-09[0]", "leader_b, the end of the path, does not hold oct01-09"),
])
def test_a_route_that_does_not_follow_the_overlay_is_refused(edit, field, problem, tmp_path):
    assert problem in config_error(shipped_overlay(tmp_path, edit), field).problem


def test_a_daemon_on_a_route_without_a_config_is_refused(tmp_path):
    gateway = shipped_overlay(tmp_path)
    (tmp_path / "worker_f.json").unlink()
    problem = config_error(gateway, "routes.sep14-24[0]").problem
    assert problem.startswith(f"cannot check worker_f against its config: {tmp_path / 'worker_f.json'}: (file): ")


def test_an_invalid_config_on_a_route_is_refused_naming_both_files(tmp_path):
    def break_worker_c(name, document):
        if name == "worker_c":
            document["listen"] = "nowhere"

    problem = config_error(shipped_overlay(tmp_path, break_worker_c), "routes.aug18-26[0]").problem
    assert f"{tmp_path / 'worker_c.json'}: listen: " in problem


def test_a_duplicate_key_in_a_config_on_a_route_is_refused(tmp_path):
    gateway = shipped_overlay(tmp_path)
    worker_c = tmp_path / "worker_c.json"
    worker_c.write_text(worker_c.read_text().replace('"role": "worker",', '"role": "worker", "role": "worker",'))
    assert f"{worker_c}: role: " in config_error(gateway, "routes.aug18-26[0]").problem


def test_a_config_named_for_another_daemon_is_refused(tmp_path):
    def rename_worker_c(name, document):
        if name == "worker_c":
            document["name"] = "worker_x"

    problem = config_error(shipped_overlay(tmp_path, rename_worker_c), "routes.aug18-26[0]").problem
    assert "is the config of 'worker_x', not of 'worker_c'" in problem


def test_a_partition_held_below_the_gateway_but_routed_nowhere_is_refused(tmp_path):
    def unroute_sep14(name, document):
        if name == "gateway_a":
            del document["routes"]["sep14-24"]

    problem = config_error(shipped_overlay(tmp_path, unroute_sep14), "routes.sep14-24").problem
    assert problem.startswith(f"no route: worker_c holds it ({tmp_path / 'worker_c.json'})")


def limited(program: str, field: str, value: int):
    def edit(name, document):
        if name == program:
            document.setdefault("query", {})[field] = value
    return edit


@pytest.mark.parametrize("edit, child, problem", [
    (limited("leader_e", "max_internal_requests", 158), "leader_e",
     "half of it (79) admits less from one connection than gateway_a can forward over one (80: its "
     "query.max_internal_requests plus query.max_concurrent_requests); make it at least 160"),
    (limited("gateway_a", "max_concurrent_requests", 65), "leader_b", "than gateway_a can forward over one (81"),
    (limited("leader_e", "max_internal_requests", 200), "worker_f", "than leader_e can forward over one (200: its "
                                                                    "query.max_internal_requests)"),
    (limited("worker_d", "max_internal_requests", 300), "worker_d", "than leader_b can forward over one (160"),
])
def test_a_child_that_cannot_admit_what_its_parent_forwards_is_refused(edit, child, problem, tmp_path):
    with pytest.raises(ConfigError) as refused:
        load_config(shipped_overlay(tmp_path, edit), environ={})
    assert (refused.value.source, refused.value.field) == (str(tmp_path / f"{child}.json"), "query.max_internal_requests")
    assert problem in refused.value.problem


def test_limits_that_hold_what_each_parent_forwards_are_accepted(tmp_path):
    def raise_all(name, document):
        exactly_enough = {"gateway_a": 36, "leader_b": 200, "leader_e": 200}.get(name, 400)  # 36 + 64 clients
        document["query"]["max_internal_requests"] = exactly_enough
    assert load_config(shipped_overlay(tmp_path, raise_all), environ={}).routes


def test_a_child_of_a_leader_without_a_config_is_refused_even_when_no_route_names_it(tmp_path):
    def add_worker_z(name, document):
        if name == "leader_e":
            document["children"].append({"name": "worker_z", "address": "127.0.0.1:50099", "link": "query"})

    problem = config_error(shipped_overlay(tmp_path, add_worker_z), "routes").problem
    assert problem.startswith("cannot check worker_z against its config: ")


def test_a_gateway_may_name_its_host_layout_and_nobody_else_may(tmp_path):
    layout = {"name": "two-hosts", "hosts": {"h1": ["gateway_a", "leader_b"], "h2": ["leader_e"]}}
    config = parse_config(edited(gateway_doc(), "layout", layout), tmp_path / "gateway_a.json", environ={})
    assert config.layout == ("two-hosts", (("h1", ("gateway_a", "leader_b")), ("h2", ("leader_e",))))
    assert parse_config(gateway_doc(), tmp_path / "gateway_a.json", environ={}).layout is None
    with pytest.raises(ConfigError) as refused:
        parse_config(edited(worker_doc(), "layout", layout), tmp_path / "worker_c.json", environ={})
    assert refused.value.field == "layout"
    with pytest.raises(ConfigError) as refused:
        parse_config(edited(edited(gateway_doc(), "layout", layout), "layout.hosts", []), tmp_path / "gateway_a.json",
                     environ={})
    assert refused.value.field == "layout.hosts"


@pytest.mark.parametrize("listen", ["localhost:50053", "127.0.0.2:50053", "[::1]:50053"])
def test_plaintext_on_loopback_needs_no_word(listen, tmp_path):
    config = load_config(write_config(tmp_path, {**worker_doc(), "listen": listen}))
    assert config.tls is None and not config.insecure


@pytest.mark.parametrize("listen", ["10.44.0.1:50053", "0.0.0.0:50053", "fire-h1:50053"])
def test_plaintext_beyond_loopback_is_refused_unless_said_insecure(listen, tmp_path):
    error = config_error(write_config(tmp_path, {**worker_doc(), "listen": listen}), "listen")
    assert "tls" in error.problem and '"insecure": true' in error.problem
    assert load_config(write_config(tmp_path, {**worker_doc(), "listen": listen, "insecure": True})).insecure
