"""Layouts (daemons/deploy/layout.py): the shipped ones load, and each bad one is refused with one
line naming the file, the field and the problem."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from daemons.config import ConfigError
from daemons.deploy.layout import load_layout

ETC = Path(__file__).resolve().parents[2] / "etc"
PROGRAMS = ("gateway_a", "leader_b", "worker_c", "worker_d", "leader_e", "worker_f")
TWO_HOSTS: dict[str, Any] = {"hosts": {"h1": {"address": "10.0.0.1", "programs": ["gateway_a", "leader_b", "worker_d"]},
                                       "h2": {"address": "10.0.0.2", "programs": ["worker_c", "leader_e", "worker_f"]}}}


def write(tmp_path: Path, document: Any, name: str = "two-hosts") -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("name, hosts", [("one-host", 1), ("two-hosts", 2), ("three-hosts", 3)])
def test_the_shipped_layouts_place_every_program_once(name: str, hosts: int) -> None:
    layout = load_layout(ETC / "layouts" / f"{name}.json", PROGRAMS)
    assert layout.name == name and len(layout.hosts) == hosts
    assert sorted(program for host in layout.hosts for program in host.programs) == sorted(PROGRAMS)


def test_a_layout_says_where_each_program_runs(tmp_path: Path) -> None:
    layout = load_layout(write(tmp_path, TWO_HOSTS), PROGRAMS)
    assert layout.host_of("worker_d").name == "h1"
    assert layout.host("h2").address == "10.0.0.2"


def edited(change: Any) -> Any:
    document = copy.deepcopy(TWO_HOSTS)
    change(document)
    return document


def _move_to_h1(document: dict[str, Any]) -> None:
    document["hosts"]["h1"]["programs"].append("worker_c")


@pytest.mark.parametrize("document, field, problem", [
    ([], "(top level)", "expected an object"),
    ({}, "hosts", "required field is missing"),
    ({"hosts": {}}, "hosts", "needs at least one host"),
    ({"hosts": []}, "hosts", "expected an object"),
    (edited(lambda d: d["hosts"]["h1"]["programs"].append("worker_z")), "hosts.h1.programs[3]", "unknown program 'worker_z'"),
    (edited(_move_to_h1), "hosts.h2.programs[0]", "worker_c is placed twice (also on h1)"),
    (edited(lambda d: d["hosts"]["h2"]["programs"].remove("worker_f")), "hosts", "worker_f placed on no host"),
    (edited(lambda d: d["hosts"]["h1"].pop("address")), "hosts.h1.address", "required field is missing"),
    (edited(lambda d: d["hosts"]["h1"].update(address="10.0.0.1:50051")), "hosts.h1.address",
     "is neither an IP address nor a host name"),
    (edited(lambda d: d["hosts"]["h1"].update(address=7)), "hosts.h1.address", "expected str"),
    (edited(lambda d: d["hosts"]["h1"].update(port=1)), "hosts.h1.port", "unknown field"),
    (edited(lambda d: d["hosts"].update(H3={"address": "h3.example", "programs": []})), "hosts.H3", "not a valid name"),
])
def test_a_bad_layout_is_refused_naming_the_field(tmp_path: Path, document: Any, field: str, problem: str) -> None:
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as refused:
        load_layout(path, PROGRAMS)
    assert str(refused.value).startswith(f"{path}: {field}: "), str(refused.value)
    assert problem in refused.value.problem
    assert "\n" not in str(refused.value)


def test_a_host_the_layout_does_not_list_is_refused(tmp_path: Path) -> None:
    layout = load_layout(write(tmp_path, TWO_HOSTS), PROGRAMS)
    with pytest.raises(ConfigError) as refused:
        layout.host("h9")
    assert refused.value.field == "hosts" and "no host 'h9' in this layout (its hosts: h1, h2)" in refused.value.problem


def test_host_names_and_ipv6_addresses_are_addresses(tmp_path: Path) -> None:
    document = edited(lambda d: (d["hosts"]["h1"].update(address="fire-1.example.org"),
                                 d["hosts"]["h2"].update(address="fd00::2")))
    layout = load_layout(write(tmp_path, document), PROGRAMS)
    assert [host.address for host in layout.hosts] == ["fire-1.example.org", "fd00::2"]
