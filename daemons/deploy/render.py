"""What one host of a layout runs: its daemons' configs and its supervisord's, derived.

The per-program configs (etc/<program>.json) are the one source of every daemon's settings and
the layout (layout.py) says where each program runs. From the two, for one host, this writes a
state folder, var/hosts/<layout>/<host>/, holding:
- etc/<program>.json for all six programs. Each listens on its host's address, at the port of
  its config (its metrics too; the gateway's dashboard stays where its config says, loopback as
  shipped), and reaches its children at their hosts' addresses. It holds the copies that the
  placement gives it (planning/placement.py: every partition survives any one daemon or any one
  host other than the gateway's), and the gateway's routes lead to those copies. All six are
  written, though the host runs only its own, because the gateway checks its routes against its
  siblings' configs.
- etc/supervisord.conf, running only this host's programs, with its socket, pid file, logs and
  caches inside the state folder. Several hosts started from one checkout (a shared home, or a
  test) never share one.
Every derived config is validated as the daemons will read it, so a layout that cannot work is
refused before anything starts.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemons.config import Address, ConfigError, load_config, read_document
from daemons.deploy.layout import Layout, load_layout
from daemons.planning.placement import REAL_DATA_ROWS, Overlay, PlacementError, place, routes_for
from daemons.quoting import quoted
from daemons.security.certs import tls_section

SUPERVISORD_CONF = "supervisord.conf"
CHECKOUT = Path(__file__).resolve().parents[2]  # whose bin/fire-daemon each host's supervisord runs


@dataclass(frozen=True)
class HostDeployment:
    layout: Layout
    host: str
    state: Path  # var/hosts/<layout>/<host>
    programs: tuple[str, ...]  # what this host runs
    addresses: Mapping[str, str]  # every program's "address:port"
    copies: Mapping[str, tuple[str, ...]]  # partition -> the daemons holding it, serving copy first
    tls: Path | None  # bin/gen-certs's folder when the daemons speak mutual TLS; None: plaintext

    @property
    def supervisord_conf(self) -> Path:
        return self.state / "etc" / SUPERVISORD_CONF

    @property
    def gateway(self) -> str | None:
        """The gateway's address, when this host runs it."""
        return self.addresses["gateway_a"] if "gateway_a" in self.programs else None


def program_names(etc: Path) -> tuple[str, ...]:
    """The programs supervisord runs, in its config's order: those the layout must place."""
    text = (etc / SUPERVISORD_CONF).read_text(encoding="utf-8")
    return tuple(re.findall(r"^\[program:([^\]]+)\]", text, flags=re.MULTILINE))


def _absolute(document: dict[str, Any], key: str, base: Path) -> None:
    if key in document:
        document[key] = str((base / Path(document[key]).expanduser()).resolve())


def render_host(etc: Path, layout_name: str, host_name: str, state_root: Path, tls: Path | None) -> HostDeployment:
    """Writes the state folder of host `host_name` of layout `layout_name` (etc/layouts/<name>.json);
    raises ConfigError (a file, a field, a problem) for a layout or config that cannot work. With
    `tls`, bin/gen-certs's folder, every daemon serves and calls with mutual TLS; without, plaintext,
    which its config then says explicitly ("insecure": true)."""
    etc = etc.resolve()
    programs = program_names(etc)
    layouts = etc / "layouts"
    if not (layouts / f"{layout_name}.json").is_file():
        known = ", ".join(sorted(path.stem for path in layouts.glob("*.json"))) or "none"
        raise ConfigError(layouts, "--layout", f"no layout {quoted(layout_name)} (the layouts here: {known})")
    layout = load_layout(layouts / f"{layout_name}.json", programs)
    host = layout.host(host_name)
    base = {program: read_document(etc / f"{program}.json") for program in programs}
    for program in programs:
        load_config(etc / f"{program}.json")  # the sources must be valid before anything is derived from them
    gateway = next(program for program in programs if base[program]["role"] == "gateway")
    links = tuple((parent, child["name"]) for parent in programs for child in base[parent].get("children", []))
    control = frozenset((parent, child["name"]) for parent in programs for child in base[parent].get("children", [])
                        if child.get("link") == "control")
    overlay = Overlay(gateway, links, control)
    # The deployed copies, serving copy first as the gateway's routes prefer them.
    deployed = {partition: tuple(dict.fromkeys(path[-1] for path in paths))
                for partition, paths in base[gateway]["routes"].items()}
    days = {spec["name"]: spec["days"] for program in programs
            for spec in base[program].get("data", {}).get("partitions", [])}
    try:
        copies = place({h.name: h.programs for h in layout.hosts}, {p: REAL_DATA_ROWS[p] for p in deployed},
                       deployed, overlay=overlay)
    except (PlacementError, KeyError) as error:
        raise ConfigError(layout.source, "hosts", f"no safe placement of the partitions: {error}") from None
    routes = routes_for(copies, {p: REAL_DATA_ROWS[p] for p in copies}, overlay)
    addresses = {program: str(Address(layout.host_of(program).address, int(base[program]["listen"].rsplit(":", 1)[1])))
                 for program in programs}
    state = state_root / layout.name / host.name
    for folder in ("etc", "logs", "run", "cache"):
        (state / folder).mkdir(parents=True, exist_ok=True)
    for program in programs:
        document = copy.deepcopy(base[program])
        document["listen"] = addresses[program]
        if "metrics_listen" in document:  # scraped from other hosts: at the host's address, at its port
            document["metrics_listen"] = str(Address(layout.host_of(program).address,
                                                     int(document["metrics_listen"].rsplit(":", 1)[1])))
        document["log_file"] = str(state / "logs" / f"{program}.log")
        for child in document.get("children", []):
            child["address"] = addresses[child["name"]]
        if "data" in document:
            _absolute(document["data"], "root", etc)
            document["data"]["cache_dir"] = str(state / "cache")
            document["data"]["partitions"] = [{"name": partition, "days": days[partition]}
                                              for partition, holders in copies.items() if program in holders]
        if program == gateway:
            document["routes"] = {partition: [list(path) for path in paths] for partition, paths in routes.items()}
            document["layout"] = {"name": layout.name, "hosts": {h.name: list(h.programs) for h in layout.hosts}}
            _absolute(document, "resume_key_file", etc)
        if tls is None:
            document["insecure"] = True
        else:
            document["tls"] = tls_section(tls, program)
        (state / "etc" / f"{program}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for program in programs:
        load_config(state / "etc" / f"{program}.json")  # as the daemon will: the gateway's checks its routes too
    (state / "etc" / SUPERVISORD_CONF).write_text(_supervisord_conf(etc, state, host.programs), encoding="utf-8")
    return HostDeployment(layout, host.name, state, host.programs, addresses, copies, tls)


def _supervisord_conf(etc: Path, state: Path, programs: tuple[str, ...]) -> str:
    """etc/supervisord.conf with only `programs`, its socket, pid file and logs in the state folder."""
    text = (etc / SUPERVISORD_CONF).read_text(encoding="utf-8")
    sections = re.split(r"(?m)^(?=\[)", text)
    kept = [section for section in sections
            if not (match := re.match(r"\[program:([^\]]+)\]", section)) or match.group(1) in programs]
    text = "".join(kept)
    text = text.replace("%(here)s/../var/run/", f"{state}/run/").replace("%(here)s/../logs", f"{state}/logs")
    return text.replace("%(here)s/../bin/", f"{CHECKOUT}/bin/").replace("directory=%(here)s/..", f"directory={CHECKOUT}")
