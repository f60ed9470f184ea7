"""Where each program runs: a layout, `etc/layouts/<name>.json`.

    {"hosts": {"h1": {"address": "10.0.0.1", "programs": ["gateway_a", "leader_b", "worker_d"]},
               "h2": {"address": "10.0.0.2", "programs": ["worker_c", "leader_e", "worker_f"]}}}

The per-program configs (etc/<program>.json) stay the one source of each daemon's settings; a
layout only places programs on hosts, and every listen and neighbour address follows from it
(render.py). Validated once into typed objects; a problem is a ConfigError naming the file and
the field, as for the daemons' configs.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from daemons.config import ConfigError, FieldReader, read_document
from daemons.quoting import quoted

# A DNS host name (RFC 1123 labels), for hosts named rather than numbered.
_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")


@dataclass(frozen=True)
class Host:
    name: str
    address: str  # an IP address or a host name, where this host's daemons listen and are reached
    programs: tuple[str, ...]


@dataclass(frozen=True)
class Layout:
    name: str
    source: Path
    hosts: tuple[Host, ...]

    def host(self, name: str) -> Host:
        """The host called `name`; a ConfigError naming the hosts when the layout has none such."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise ConfigError(self.source, "hosts", f"no host {quoted(name)} in this layout (its hosts: "
                                                f"{', '.join(host.name for host in self.hosts)})")

    def host_of(self, program: str) -> Host:
        return next(host for host in self.hosts if program in host.programs)


def _address_problem(text: str) -> str | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None if _HOST_NAME.fullmatch(text) else f"{quoted(text)} is neither an IP address nor a host name"
    return None


def parse_layout(document: object, source: Path, programs: Sequence[str]) -> Layout:
    """Validates a layout document: every program of `programs` placed exactly once, on a host
    with an address."""
    reader = FieldReader(source)
    top = reader.object(document, "", {"hosts"}, {"hosts"})
    hosts_section = top["hosts"]
    if not isinstance(hosts_section, dict):
        raise reader.fail("hosts", "expected an object: host name -> {address, programs}")
    if not hosts_section:
        raise reader.fail("hosts", "needs at least one host")
    hosts = []
    placed: dict[str, str] = {}
    for name, raw in hosts_section.items():
        field = f"hosts.{name}"
        reader.name(name, field)
        section = reader.object(raw, field, {"address", "programs"}, {"address", "programs"})
        address = reader.typed(section["address"], f"{field}.address", str, _address_problem)
        listed = reader.list(section["programs"], f"{field}.programs")
        for index, program in enumerate(listed):
            at = f"{field}.programs[{index}]"
            reader.typed(program, at, str)
            if program not in programs:
                raise reader.fail(at, f"unknown program {quoted(program)} (the programs: {', '.join(programs)})")
            if program in placed:
                raise reader.fail(at, f"{program} is placed twice (also on {placed[program]})")
            placed[program] = name
        hosts.append(Host(name, address, tuple(listed)))
    missing = [program for program in programs if program not in placed]
    if missing:
        raise reader.fail("hosts", f"{', '.join(missing)} placed on no host: every program runs somewhere")
    return Layout(source.stem, source, tuple(hosts))


def load_layout(path: Path, programs: Sequence[str]) -> Layout:
    return parse_layout(read_document(path), path, programs)
