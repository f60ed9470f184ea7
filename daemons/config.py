"""Daemon configuration: one JSON file per daemon, validated once at start into typed objects.

Every problem is reported as one `ConfigError` naming the file, the field and what is wrong, so a
daemon with a bad config exits with a single readable line instead of failing later at runtime.
Relative paths in a config are relative to the directory of the config file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from daemons.health.state import MAX_SECONDS_OR_COUNT, InvalidThreshold, Thresholds

DATA_DIR_ENV = "FIRE_DATA_DIR"
ROLES = ("gateway", "leader", "worker")
LINK_KINDS = ("query", "control")
MAX_CHUNK_SIZE = 65536  # chunk dictionaries index rows with uint16 codes

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_DAY = re.compile(r"\d{8}")

T = TypeVar("T")


class ConfigError(Exception):
    """A config problem: `<file>: <field>: <what is wrong>`."""

    def __init__(self, source: Path | str, field: str, problem: str):
        super().__init__(_one_line(f"{source}: {field}: {problem}"))
        self.source, self.field, self.problem = str(source), field, problem


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PartitionSpec:
    name: str
    days: tuple[str, ...]  # day folder names, YYYYMMDD, ascending


@dataclass(frozen=True)
class DataConfig:
    root: Path
    cache_dir: Path
    partitions: tuple[PartitionSpec, ...]


@dataclass(frozen=True)
class Link:
    """An overlay edge to a child. Control links carry no queries unless a route names them."""

    name: str
    address: Address
    kind: str


@dataclass(frozen=True)
class QueryConfig:
    default_chunk_size: int = 8192
    call_timeout_seconds: float = 300.0
    shutdown_grace_seconds: float = 5.0
    max_concurrent_requests: int = 64
    # Calls from parents served at once (every daemon); beyond it a call gets RESOURCE_EXHAUSTED,
    # so that no caller can take every thread of the server.
    max_internal_requests: int = 128
    # A client (or parent) that reads nothing of a streamed answer for this long is cut off, and
    # its memory and admission slot are released.
    client_idle_timeout_seconds: float = 30.0
    # An aggregate with more groups than this is refused with INVALID_ARGUMENT.
    max_aggregate_groups: int = 100_000


@dataclass(frozen=True)
class HealthConfig:
    """How this daemon watches the children it reaches over query links (control links: never)."""

    enabled: bool = True
    interval_seconds: float = 0.4  # between datagram probes, which do not wait for each other
    timeout_seconds: float = 0.6  # a probe's deadline: the only way to notice a hung neighbour
    check_interval_seconds: float = 5.0  # between regular gRPC HealthCheck calls
    jitter_fraction: float = 0.05  # spreads probes so that monitors do not fire in lockstep
    confirm_interval_seconds: float = 0.02  # after a failure, how soon to probe again to confirm it
    # The state machine's thresholds, read from the same section's flat fields.
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True)
class DaemonConfig:
    source: Path
    name: str
    role: str
    listen: Address
    log_file: Path
    data: DataConfig | None
    children: tuple[Link, ...]
    # partition -> candidate paths from this daemon's children down to a holder, primary first
    routes: Mapping[str, tuple[tuple[str, ...], ...]]
    query: QueryConfig
    health: HealthConfig

    def child(self, name: str) -> Link:
        return next(link for link in self.children if link.name == name)

    @property
    def watched(self) -> tuple[Link, ...]:
        """The neighbours this daemon monitors: its children over query links."""
        return tuple(link for link in self.children if link.kind == "query") if self.health.enabled else ()


class _Reader:
    """Walks a parsed JSON document, naming the field of every error it raises."""

    def __init__(self, source: Path):
        self.source = source

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(self.source, field, problem)

    def object(self, value: Any, field: str, allowed: Set[str], required: Set[str] = frozenset()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field or "(top level)", f"expected an object, got {_kind(value)}")
        prefix = f"{field}." if field else ""
        for key in sorted(set(value) - allowed):
            raise self.fail(prefix + key, f"unknown field (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            raise self.fail(prefix + key, "required field is missing")
        return value

    def typed(self, value: Any, field: str, kind: type[T], check: Callable[[T], str | None] | None = None) -> T:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(field, f"expected {kind.__name__}, got {_kind(value)} {json.dumps(value)[:40]}")
        problem = check(value) if check else None
        if problem:
            raise self.fail(field, problem)
        return value

    def list(self, value: Any, field: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list, got {_kind(value)}")
        return value

    def name(self, value: Any, field: str) -> str:
        return self.typed(value, field, str, lambda s: None if _NAME.fullmatch(s) else
                          f"{s!r} is not a valid name (lowercase letters, digits, '_' or '-')")

    def address(self, value: Any, field: str) -> Address:
        text = self.typed(value, field, str)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise self.fail(field, f'expected "host:port" with a port in 1..65535, got {text!r}')
        return Address(host.strip("[]"), int(port))

    def path(self, value: Any, field: str) -> Path:
        text = self.typed(value, field, str, lambda s: None if s else "must not be empty")
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (self.source.parent / path).resolve()


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _positive(value: float) -> str | None:
    if not 0 < value <= MAX_SECONDS_OR_COUNT:  # also refuses NaN and Infinity
        return f"must be greater than 0 and at most {MAX_SECONDS_OR_COUNT:g}"
    return None


def expand_days(reader: _Reader, specs: Any, field: str) -> tuple[str, ...]:
    """Turns entries like "20200810" and "20200814-20200817" into sorted day folder names."""
    days: set[str] = set()
    for index, spec in enumerate(reader.list(specs, field)):
        item = f"{field}[{index}]"
        text = reader.typed(spec, item, str)
        first, dash, last = text.partition("-")
        start, end = _day(reader, first, item), _day(reader, last if dash else first, item)
        if end < start:
            raise reader.fail(item, f"range {text!r} ends before it starts")
        days.update((start + dt.timedelta(d)).strftime("%Y%m%d") for d in range((end - start).days + 1))
    if not days:
        raise reader.fail(field, "must name at least one day")
    return tuple(sorted(days))


def _day(reader: _Reader, text: str, field: str) -> dt.date:
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise reader.fail(field, f'expected a day "YYYYMMDD" or a range "YYYYMMDD-YYYYMMDD", got {text!r}') from None


def _data(reader: _Reader, raw: Any, environ: Mapping[str, str]) -> DataConfig:
    section = reader.object(raw, "data", {"root", "cache_dir", "partitions"}, {"root", "cache_dir", "partitions"})
    override = environ.get(DATA_DIR_ENV)
    root = Path(override).resolve() if override else reader.path(section["root"], "data.root")
    partitions: list[PartitionSpec] = []
    for index, item in enumerate(reader.list(section["partitions"], "data.partitions")):
        field = f"data.partitions[{index}]"
        entry = reader.object(item, field, {"name", "days"}, {"name", "days"})
        name = reader.name(entry["name"], f"{field}.name")
        if any(p.name == name for p in partitions):
            raise reader.fail(f"{field}.name", f"partition {name!r} is declared twice")
        partitions.append(PartitionSpec(name, expand_days(reader, entry["days"], f"{field}.days")))
    return DataConfig(root, reader.path(section["cache_dir"], "data.cache_dir"), tuple(partitions))


def _children(reader: _Reader, raw: Any, own_name: str) -> tuple[Link, ...]:
    links: list[Link] = []
    for index, item in enumerate(reader.list(raw, "children")):
        field = f"children[{index}]"
        entry = reader.object(item, field, {"name", "address", "link"}, {"name", "address", "link"})
        name = reader.name(entry["name"], f"{field}.name")
        if name == own_name or any(link.name == name for link in links):
            raise reader.fail(f"{field}.name", f"{name!r} is this daemon or is listed twice")
        kind = reader.typed(entry["link"], f"{field}.link", str,
                            lambda s: None if s in LINK_KINDS else f"expected one of {', '.join(LINK_KINDS)}")
        links.append(Link(name, reader.address(entry["address"], f"{field}.address"), kind))
    return tuple(links)


def _routes(reader: _Reader, raw: Any, children: tuple[Link, ...]) -> dict[str, tuple[tuple[str, ...], ...]]:
    section = reader.typed(raw, "routes", dict)
    if not section:
        raise reader.fail("routes", "a gateway must route at least one partition")
    child_names = {link.name for link in children}
    routes = {}
    for partition, paths in section.items():
        field = f"routes.{partition}"
        reader.name(partition, field)
        candidates = []
        for index, path in enumerate(reader.list(paths, field)):
            hops = tuple(reader.name(hop, f"{field}[{index}]") for hop in reader.list(path, f"{field}[{index}]"))
            if not hops or hops[0] not in child_names:
                raise reader.fail(f"{field}[{index}]",
                                  f"a path must start at one of the children {sorted(child_names)}")
            if len(set(hops)) != len(hops):
                raise reader.fail(f"{field}[{index}]", "a path must not visit a daemon twice")
            candidates.append(hops)
        if not candidates:
            raise reader.fail(field, "needs at least one path")
        routes[partition] = tuple(candidates)
    return routes


def _query(reader: _Reader, raw: Any) -> QueryConfig:
    defaults = QueryConfig()
    section = reader.object(raw, "query", set(QueryConfig.__dataclass_fields__))
    chunk = reader.typed(section.get("default_chunk_size", defaults.default_chunk_size), "query.default_chunk_size",
                         int, lambda n: None if 1 <= n <= MAX_CHUNK_SIZE else f"must be in 1..{MAX_CHUNK_SIZE}")
    return QueryConfig(
        default_chunk_size=chunk,
        call_timeout_seconds=reader.typed(section.get("call_timeout_seconds", defaults.call_timeout_seconds),
                                          "query.call_timeout_seconds", float, _positive),
        shutdown_grace_seconds=reader.typed(section.get("shutdown_grace_seconds", defaults.shutdown_grace_seconds),
                                            "query.shutdown_grace_seconds", float, _positive),
        max_concurrent_requests=reader.typed(section.get("max_concurrent_requests", defaults.max_concurrent_requests),
                                             "query.max_concurrent_requests", int, _positive),
        max_internal_requests=reader.typed(section.get("max_internal_requests", defaults.max_internal_requests),
                                           "query.max_internal_requests", int, _positive),
        client_idle_timeout_seconds=reader.typed(
            section.get("client_idle_timeout_seconds", defaults.client_idle_timeout_seconds),
            "query.client_idle_timeout_seconds", float, _positive),
        max_aggregate_groups=reader.typed(section.get("max_aggregate_groups", defaults.max_aggregate_groups),
                                          "query.max_aggregate_groups", int, _positive),
    )


def _health(reader: _Reader, raw: Any) -> HealthConfig:
    defaults = HealthConfig()
    threshold_fields = set(Thresholds.__dataclass_fields__)
    probe_fields = set(HealthConfig.__dataclass_fields__) - {"thresholds"}
    section = reader.object(raw, "health_monitoring", probe_fields | threshold_fields)
    checks = {"enabled": None, "jitter_fraction": lambda v: None if 0 <= v <= 0.5 else "must be in 0..0.5"}
    probes = {name: reader.typed(section.get(name, getattr(defaults, name)), f"health_monitoring.{name}",
                                 type(getattr(defaults, name)), checks.get(name, _positive))
              for name in sorted(probe_fields)}
    # Only the types are checked here: the ranges are the state machine's to define, once.
    limits = {name: reader.typed(section.get(name, getattr(defaults.thresholds, name)), f"health_monitoring.{name}",
                                 type(getattr(defaults.thresholds, name)))
              for name in sorted(threshold_fields)}
    try:
        thresholds = Thresholds(**limits)
    except InvalidThreshold as error:
        raise reader.fail(f"health_monitoring.{error.field}", error.problem) from None
    return HealthConfig(**probes, thresholds=thresholds)


def parse_config(document: Any, source: Path, environ: Mapping[str, str] = os.environ) -> DaemonConfig:
    """Validates a parsed JSON document; `environ` supplies the FIRE_DATA_DIR override."""
    reader = _Reader(source)
    top = reader.object(document, "", {"name", "role", "listen", "log_file", "data", "children", "routes", "query",
                                       "health_monitoring"},
                        {"name", "role", "listen", "log_file"})
    name = reader.name(top["name"], "name")
    role = reader.typed(top["role"], "role", str,
                        lambda s: None if s in ROLES else f"expected one of {', '.join(ROLES)}")
    children = _children(reader, top.get("children", []), name)
    data = _data(reader, top["data"], environ) if "data" in top else None

    if role == "gateway":
        if data is not None:
            raise reader.fail("data", "a gateway holds no data")
        if not children:
            raise reader.fail("children", "a gateway needs at least one child")
        if "routes" not in top:
            raise reader.fail("routes", "required field is missing for a gateway")
    else:
        if data is None or not data.partitions:
            raise reader.fail("data", f"a {role} must hold at least one partition")
        if "routes" in top:
            raise reader.fail("routes", "only a gateway routes partitions")
    if role == "worker" and children:
        raise reader.fail("children", "a worker has no children")
    if role == "leader" and not children:
        raise reader.fail("children", "a leader needs at least one child")

    return DaemonConfig(
        source=source,
        name=name,
        role=role,
        listen=reader.address(top["listen"], "listen"),
        log_file=reader.path(top["log_file"], "log_file"),
        data=data,
        children=children,
        routes=_routes(reader, top["routes"], children) if role == "gateway" else {},
        query=_query(reader, top.get("query", {})),
        health=_health(reader, top.get("health_monitoring", {})),
    )


def load_config(path: Path | str, environ: Mapping[str, str] = os.environ) -> DaemonConfig:
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(source, "(file)", f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(source, "(file)", f"not UTF-8 text (byte {error.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(source, f"(line {error.lineno} column {error.colno})", f"invalid JSON: {error.msg}") from None
    return parse_config(document, source.resolve(), environ)
