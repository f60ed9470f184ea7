"""Daemon configuration: one JSON file per daemon, validated once at start into typed objects.

Every problem is reported as one `ConfigError` naming the file, the field and what is wrong, so a
daemon with a bad config exits with a single readable line instead of failing later at runtime.
Relative paths in a config are relative to the directory of the config file. `parse_config` checks
one document; `load_config` reads the file (refusing duplicate keys) and checks a gateway's routes
against the overlay that the other daemons' configs in the same folder describe.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from daemons.health.state import MAX_SECONDS_OR_COUNT, InvalidThreshold, Thresholds
from daemons.quoting import SHOWN_CHARACTERS, quoted

DATA_DIR_ENV = "FIRE_DATA_DIR"
ROLES = ("gateway", "leader", "worker")
# The default query.max_internal_requests of each role. A daemon admits at most half its limit from
# one connection, so that a flood on one channel leaves its parent room, and a parent's connection
# carries everything the parent forwards: its own calls from parents and, on the gateway, its
# clients' requests (64). So half of each level's limit holds the whole limit of the level above,
# and what the gateway takes over Node (from tools: it has no parent) is kept small.
INTERNAL_REQUESTS_BY_ROLE = {"gateway": 16, "leader": 160, "worker": 320}
LINK_KINDS = ("query", "control")
# Where the gateway serves its live dashboard when its config does not say (loopback: see README).
DEFAULT_DASHBOARD_LISTEN = "127.0.0.1:8050"
MAX_CHUNK_SIZE = 65536  # rows a chunk: about 3.5 MB on the wire, a few times that decoded
MAX_CPUS = 8192  # the most CPUs a Linux kernel is built for (NR_CPUS): higher numbers are typing errors

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_DAY = re.compile(r"[0-9]{8}")  # ASCII digits only: \d also matches full-width and other digits
_PORT = re.compile(r"[0-9]{1,5}")

# Lower bounds of the probe timings (the shipped values are 0.4, 0.6, 20 and 0.02 s; the tests use
# those): below them monitoring only burns CPU or reports noise. A bound, not a recommendation.
PROBE_MINIMUM_SECONDS = {
    # A datagram probe loop this fast is already 20 probes a second per neighbour; at 1e-6 s it
    # took 82 % of a core. Faster probing detects nothing sooner: a kill is seen from the broken
    # connection at once, a hang only after timeout_seconds.
    "interval_seconds": 0.05,
    # A busy daemon answers in tens of milliseconds (a small query's first chunk took 57 ms during
    # four full scans, README benchmarks): a shorter deadline turns load into false failures.
    "timeout_seconds": 0.05,
    # A gRPC HealthCheck costs a Python daemon milliseconds of CPU; 0.5 s is 10x the shipped rate.
    "check_interval_seconds": 0.5,
    # Confirmation calls closer than this are one burst, answered or lost together: they confirm
    # nothing more than one call would.
    "confirm_interval_seconds": 0.005,
    # Narrower than a probe's way there and a busy responder's wait for its interpreter (1.9 s,
    # pings.py), sealed probes would be refused as stale.
    "datagram_window_seconds": 5.0,
}
MIN_LOG_BYTES = 4096  # below a few lines' worth, a log would rotate at nearly every line
MAX_LOG_BACKUPS = 100
MIN_CLUSTER_KEY_BYTES = 16  # fewer secret bytes could be guessed; bin/gen-certs writes 32
# Probes a hung neighbour leaves unanswered at once: timeout_seconds / the probe interval. Each
# holds a timer and an entry until its deadline; more of them detect the hang no sooner.
MAX_PROBES_OUTSTANDING = 100

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
class OverlayLink:
    """An edge of the whole overlay as the gateway knows it from its folder's configs: `parent`
    reaches `child` over a link of `kind`, and watches it when `watched` (a query link, with
    monitoring on)."""

    parent: str
    child: str
    kind: str
    watched: bool


@dataclass(frozen=True)
class QueryConfig:
    default_chunk_size: int = 8192
    call_timeout_seconds: float = 300.0
    shutdown_grace_seconds: float = 5.0
    max_concurrent_requests: int = 64
    # Calls from parents served at once; beyond it a call gets RESOURCE_EXHAUSTED, so that no caller
    # can take every thread of the server. At most half of it from one connection, and half must hold
    # all that a parent can forward over its connection (checked with the gateway's routes), so the
    # default depends on the role: INTERNAL_REQUESTS_BY_ROLE.
    max_internal_requests: int = INTERNAL_REQUESTS_BY_ROLE["leader"]
    # A client (or parent) that reads nothing of a streamed answer for this long is cut off, and
    # its memory and admission slot are released.
    client_idle_timeout_seconds: float = 30.0
    # An aggregate with more groups than this is refused with INVALID_ARGUMENT.
    max_aggregate_groups: int = 100_000
    # Client requests one identity (its certificate, with TLS) may have running at once, so that no
    # client starves the others; beyond it RESOURCE_EXHAUSTED. Without TLS clients are not told apart.
    max_requests_per_client: int = 16


@dataclass(frozen=True)
class HealthConfig:
    """How this daemon watches the children it reaches over query links (control links: never)."""

    enabled: bool = True
    interval_seconds: float = 0.4  # between datagram probes, which do not wait for each other
    timeout_seconds: float = 0.6  # a probe's deadline: the only way to notice a hung neighbour
    # Between regular gRPC HealthCheck calls, which prove an idle request path works (the datagrams
    # and PINGs watch the rest; a query call that fails sets off HealthChecks at once). Each costs
    # both ends about a millisecond of CPU over TLS: at every 5 s they were 0.9 of the idle
    # cluster's 3.3 % of a core (measured 2026-11-30, 2.7-3.0 % at 10 s), against a 3 % target.
    check_interval_seconds: float = 20.0
    jitter_fraction: float = 0.05  # spreads probes so that monitors do not fire in lockstep
    confirm_interval_seconds: float = 0.02  # after a failure, how soon to probe again to confirm it
    # How far a sealed datagram probe's timestamp may be from its responder's clock before it
    # registers nothing (seal.py; it is still answered): the hosts' clocks must agree this well.
    datagram_window_seconds: float = 30.0
    # The state machine's thresholds, read from the same section's flat fields.
    thresholds: Thresholds = Thresholds()


@dataclass(frozen=True)
class LogRotation:
    """How big a daemon's event log grows before the daemon renames it `<log>.1` (and `.1` to `.2`,
    ...) and starts a new one, and how many old files it keeps: bounded with no outside tool."""

    max_bytes: int = 10 * 1024 * 1024
    backups: int = 5


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS: the cluster CA every peer's certificate must chain to, and this daemon's own
    certificate and key (bin/gen-certs makes them), read and checked once, at start."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    cert_file: Path  # where they were read from, for TLS stacks that read files (Python's ssl)
    key_file: Path
    # The secret that seals the health datagrams (bin/gen-certs writes cluster.key): without it
    # anyone who can reach a UDP port could answer for a daemon (daemons/health/seal.py).
    cluster_key: bytes


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
    # gateway only: the key that signs resume tokens, created on first start, kept across restarts
    resume_key_file: Path | None = None
    # gateway only: the host layout it was deployed with (daemons/deploy writes it), for the
    # placement check: layout name, and host -> the programs it runs. None: all on one host.
    layout: tuple[str, tuple[tuple[str, tuple[str, ...]], ...]] | None = None
    # gateway only: every daemon below it, each at the address its parent reaches it at (from the
    # configs in its folder), for the merged event logs (AirQuality.Events)
    members: tuple[Link, ...] = ()
    log_rotation: LogRotation = LogRotation()
    tls: TlsConfig | None = None  # None: plaintext, on loopback only unless `insecure`
    insecure: bool = False  # plaintext on a non-loopback address, said explicitly
    # Where Prometheus scrapes this daemon's metrics over HTTP (HTTPS with a client certificate of
    # the cluster's CA, with tls); None: no metrics endpoint.
    metrics_listen: Address | None = None
    # gateway only: where it serves the live dashboard (as metrics_listen, for browsers)
    dashboard_listen: Address | None = None
    # gateway only: every edge of the overlay and every daemon's role, for the dashboard's picture
    overlay: tuple[OverlayLink, ...] = ()
    roles: Mapping[str, str] = field(default_factory=dict)
    # The CPUs the daemon's threads keep to once it serves, while it is not busy (daemons/affinity.py);
    # None: wherever the kernel puts them.
    cpus: frozenset[int] | None = None

    def child(self, name: str) -> Link:
        return next(link for link in self.children if link.name == name)

    @property
    def watched(self) -> tuple[Link, ...]:
        """The neighbours this daemon monitors: its children over query links."""
        return tuple(link for link in self.children if link.kind == "query") if self.health.enabled else ()


class FieldReader:
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
            raise self.fail(prefix + _field_key(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            raise self.fail(prefix + key, "required field is missing")
        return value

    def typed(self, value: Any, field: str, kind: type[T], check: Callable[[T], str | None] | None = None) -> T:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(field, f"expected {kind.__name__}, got {_kind(value)}{_shown(value)}")
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
                          f"{quoted(s)} is not a valid name (lowercase letters, digits, '_' or '-')")

    def address(self, value: Any, field: str) -> Address:
        text = self.typed(value, field, str)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not _PORT.fullmatch(port) or not 1 <= int(port) <= 65535:
            raise self.fail(field, f'expected "host:port" with a port in 1..65535, got {quoted(text)}')
        return Address(host.strip("[]"), int(port))

    def path(self, value: Any, field: str) -> Path:
        text = self.typed(value, field, str, lambda s: None if s else "must not be empty")
        path = Path(os.path.expanduser(text))
        return path if path.is_absolute() else (self.source.parent / path).resolve()


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    """A misplaced value as an error shows it after its kind: a string quoted, a number, boolean or
    null in JSON, nothing more of an object or a list."""
    if isinstance(value, str):
        return f" {quoted(value)}"
    if isinstance(value, dict | list):
        return ""
    text = json.dumps(value)
    return f" {text}" if len(text) <= SHOWN_CHARACTERS else f" {quoted(text)}"


def _field_key(key: str) -> str:
    """A key from the file as part of a field path, cut short as `quoted` cuts values."""
    return key if len(key) <= SHOWN_CHARACTERS else f"{key[:SHOWN_CHARACTERS]}…"


def _positive(value: float) -> str | None:
    if not 0 < value <= MAX_SECONDS_OR_COUNT:  # also refuses NaN and Infinity
        return f"must be greater than 0 and at most {MAX_SECONDS_OR_COUNT:g}"
    return None


def _at_least(minimum: float) -> Callable[[float], str | None]:
    def check(value: float) -> str | None:
        if not minimum <= value <= MAX_SECONDS_OR_COUNT:  # also refuses NaN and Infinity
            return f"must be in {minimum:g}..{MAX_SECONDS_OR_COUNT:g} seconds"
        return None
    return check


def expand_days(reader: FieldReader, specs: Any, field: str) -> tuple[str, ...]:
    """Turns entries like "20200810" and "20200814-20200817" into sorted day folder names."""
    days: set[str] = set()
    for index, spec in enumerate(reader.list(specs, field)):
        item = f"{field}[{index}]"
        text = reader.typed(spec, item, str)
        first, dash, last = text.partition("-")
        start, end = _day(reader, first, item), _day(reader, last if dash else first, item)
        if end < start:
            raise reader.fail(item, f"range {quoted(text)} ends before it starts")
        days.update((start + dt.timedelta(d)).strftime("%Y%m%d") for d in range((end - start).days + 1))
    if not days:
        raise reader.fail(field, "must name at least one day")
    return tuple(sorted(days))


def _day(reader: FieldReader, text: str, field: str) -> dt.date:
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        raise reader.fail(field, f'expected a day "YYYYMMDD" or a range "YYYYMMDD-YYYYMMDD", got {quoted(text)}') from None


def _data(reader: FieldReader, raw: Any, environ: Mapping[str, str]) -> DataConfig:
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


def _children(reader: FieldReader, raw: Any, own_name: str) -> tuple[Link, ...]:
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


def _routes(reader: FieldReader, raw: Any, children: tuple[Link, ...]) -> dict[str, tuple[tuple[str, ...], ...]]:
    section = reader.typed(raw, "routes", dict)
    if not section:
        raise reader.fail("routes", "a gateway must route at least one partition")
    child_names = {link.name for link in children}
    routes = {}
    for partition, paths in section.items():
        field = f"routes.{_field_key(partition)}"
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


def _query(reader: FieldReader, raw: Any, role: str) -> QueryConfig:
    defaults = QueryConfig(max_internal_requests=INTERNAL_REQUESTS_BY_ROLE[role])
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
        max_requests_per_client=reader.typed(section.get("max_requests_per_client", defaults.max_requests_per_client),
                                             "query.max_requests_per_client", int, _positive),
    )


def _health(reader: FieldReader, raw: Any) -> HealthConfig:
    defaults = HealthConfig()
    threshold_fields = set(Thresholds.__dataclass_fields__)
    probe_fields = set(HealthConfig.__dataclass_fields__) - {"thresholds"}
    section = reader.object(raw, "health_monitoring", probe_fields | threshold_fields)
    checks: dict[str, Callable[[Any], str | None] | None] = {
        "enabled": None, "jitter_fraction": lambda v: None if 0 <= v <= 0.5 else "must be in 0..0.5",
        **{name: _at_least(minimum) for name, minimum in PROBE_MINIMUM_SECONDS.items()}}
    probes = {name: reader.typed(section.get(name, getattr(defaults, name)), f"health_monitoring.{name}",
                                 type(getattr(defaults, name)), checks.get(name, _positive))
              for name in sorted(probe_fields)}
    shortest_interval = min(probes["interval_seconds"], probes["check_interval_seconds"])
    if probes["timeout_seconds"] > MAX_PROBES_OUTSTANDING * shortest_interval:
        raise reader.fail("health_monitoring.timeout_seconds",
                          f"must be at most {MAX_PROBES_OUTSTANDING} times the shorter of interval_seconds and "
                          f"check_interval_seconds ({MAX_PROBES_OUTSTANDING * shortest_interval:g} s): a hung "
                          f"neighbour would hold more probes than that unanswered at once")
    # Only the types are checked here: the ranges are the state machine's to define, once.
    limits = {name: reader.typed(section.get(name, getattr(defaults.thresholds, name)), f"health_monitoring.{name}",
                                 type(getattr(defaults.thresholds, name)))
              for name in sorted(threshold_fields)}
    try:
        thresholds = Thresholds(**limits)
    except InvalidThreshold as error:
        raise reader.fail(f"health_monitoring.{error.field}", error.problem) from None
    return HealthConfig(**probes, thresholds=thresholds)


def _log_rotation(reader: FieldReader, raw: Any) -> LogRotation:
    section = reader.object(raw, "log_rotation", {"max_bytes", "backups"})
    defaults = LogRotation()
    return LogRotation(
        max_bytes=reader.typed(section.get("max_bytes", defaults.max_bytes), "log_rotation.max_bytes", int,
                               lambda v: None if v >= MIN_LOG_BYTES else f"must be at least {MIN_LOG_BYTES}"),
        backups=reader.typed(section.get("backups", defaults.backups), "log_rotation.backups", int,
                             lambda v: None if 1 <= v <= MAX_LOG_BACKUPS else f"must be in 1..{MAX_LOG_BACKUPS}"))


def _cpus(reader: FieldReader, raw: Any) -> frozenset[int]:
    numbers = reader.list(raw, "cpus")
    if not numbers:
        raise reader.fail("cpus", "must name at least one CPU (leave the field out to run on all)")
    cpus = [reader.typed(number, f"cpus[{index}]", int,
                         lambda n: None if 0 <= n < MAX_CPUS else f"must be a CPU number in 0..{MAX_CPUS - 1}")
            for index, number in enumerate(numbers)]
    if len(set(cpus)) != len(cpus):
        raise reader.fail("cpus", "a CPU is named twice")
    return frozenset(cpus)


def _layout(reader: FieldReader, raw: Any) -> tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    section = reader.object(raw, "layout", {"name", "hosts"}, {"name", "hosts"})
    hosts = section["hosts"]
    if not isinstance(hosts, dict) or not hosts:
        raise reader.fail("layout.hosts", "expected an object: host name -> the programs it runs")
    return (reader.name(section["name"], "layout.name"),
            tuple((reader.name(host, f"layout.hosts.{_field_key(host)}"),
                   tuple(reader.name(program, f"layout.hosts.{host}[{index}]")
                         for index, program in enumerate(reader.list(programs, f"layout.hosts.{host}"))))
                  for host, programs in hosts.items()))


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address: reachable from this machine alone."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _pem_file(reader: FieldReader, raw: Any, field: str, load: Callable[[bytes], Any]) -> tuple[Path, bytes, Any]:
    """(where the file is, its bytes, what `load` makes of them)."""
    path = reader.path(raw, field)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise reader.fail(field, f"cannot read {path}: {error.strerror or error}") from None
    try:
        return path, data, load(data)
    except ValueError as error:
        raise reader.fail(field, f"{path} is not a PEM file of the kind expected: {error}") from None


def _tls(reader: FieldReader, raw: Any) -> TlsConfig:
    """Reads the CA, the certificate and the key, and checks that they make a usable identity now:
    a certificate the CA signed, in its validity period, matching the key."""
    # Imported only for a TLS config: every daemon and monitor process reads its config at start,
    # and the library takes 30 ms of CPU to import (twelve processes at once on a first start).
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    fields = {"ca", "cert", "key", "cluster_key"}
    section = reader.object(raw, "tls", fields, fields)
    _, ca_pem, ca = _pem_file(reader, section["ca"], "tls.ca", x509.load_pem_x509_certificate)
    cert_file, cert_pem, cert = _pem_file(reader, section["cert"], "tls.cert", x509.load_pem_x509_certificate)
    key_file, key_pem, key = _pem_file(reader, section["key"], "tls.key",
                                       lambda data: serialization.load_pem_private_key(data, password=None))
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise reader.fail("tls.cert", f"valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} to "
                                      f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC, not now (bin/gen-certs --rotate)")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise reader.fail("tls.cert", "not signed by the CA of tls.ca") from None
    der = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*der) != key.public_key().public_bytes(*der):
        raise reader.fail("tls.key", "not the key of the certificate of tls.cert")
    return TlsConfig(ca_pem, cert_pem, key_pem, cert_file, key_file, _cluster_key(reader, section["cluster_key"]))


def _cluster_key(reader: FieldReader, raw: Any) -> bytes:
    path = reader.path(raw, "tls.cluster_key")
    try:
        key = path.read_bytes()
    except OSError as error:
        raise reader.fail("tls.cluster_key", f"cannot read {path}: {error.strerror or error}") from None
    if len(key) < MIN_CLUSTER_KEY_BYTES:
        raise reader.fail("tls.cluster_key", f"{path} holds {len(key)} bytes; a key has at least "
                                             f"{MIN_CLUSTER_KEY_BYTES} (bin/gen-certs makes one)")
    return key


def parse_config(document: Any, source: Path, environ: Mapping[str, str] = os.environ) -> DaemonConfig:
    """Validates a parsed JSON document; `environ` supplies the FIRE_DATA_DIR override."""
    reader = FieldReader(source)
    top = reader.object(document, "", {"name", "role", "listen", "log_file", "data", "children", "routes", "query",
                                       "health_monitoring", "resume_key_file", "layout", "tls", "insecure",
                                       "log_rotation", "metrics_listen", "dashboard_listen", "cpus"},
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
        if "resume_key_file" in top:
            raise reader.fail("resume_key_file", "only a gateway issues resume tokens")
        if "layout" in top:
            raise reader.fail("layout", "only a gateway checks the placement against the hosts")
    if role == "worker" and children:
        raise reader.fail("children", "a worker has no children")
    if role == "leader" and not children:
        raise reader.fail("children", "a leader needs at least one child")

    listen = reader.address(top["listen"], "listen")
    insecure = reader.typed(top.get("insecure", False), "insecure", bool)
    if "tls" not in top and not insecure and not is_loopback(listen.host):
        raise reader.fail("listen", f"{quoted(str(listen))} is reachable from other machines, and without a tls section "
                                    f"anyone there could call this daemon: add tls (bin/gen-certs), or "
                                    f'"insecure": true for a network you trust')
    web = _web_addresses(reader, top, role, listen, insecure)
    return DaemonConfig(
        source=source,
        name=name,
        role=role,
        listen=listen,
        insecure=insecure,
        log_file=reader.path(top["log_file"], "log_file"),
        log_rotation=_log_rotation(reader, top.get("log_rotation", {})),
        data=data,
        children=children,
        routes=_routes(reader, top["routes"], children) if role == "gateway" else {},
        resume_key_file=(reader.path(top.get("resume_key_file", "../var/resume-token.key"), "resume_key_file")
                         if role == "gateway" else None),
        query=_query(reader, top.get("query", {}), role),
        layout=_layout(reader, top["layout"]) if "layout" in top else None,
        health=_health(reader, top.get("health_monitoring", {})),
        tls=_tls(reader, top["tls"]) if "tls" in top else None,
        metrics_listen=web["metrics_listen"],
        dashboard_listen=web["dashboard_listen"],
        cpus=_cpus(reader, top["cpus"]) if "cpus" in top else None,
    )


def _web_addresses(reader: FieldReader, top: Mapping[str, Any], role: str, listen: Address,
                   insecure: bool) -> dict[str, Address | None]:
    """metrics_listen and dashboard_listen (a gateway's default if it names none), each on a port of its own."""
    if role != "gateway" and "dashboard_listen" in top:
        raise reader.fail("dashboard_listen", "only a gateway serves the dashboard")
    web = {key: _web_address(reader, top, key, insecure) for key in ("metrics_listen", "dashboard_listen")}
    if role == "gateway" and web["dashboard_listen"] is None:
        web["dashboard_listen"] = reader.address(DEFAULT_DASHBOARD_LISTEN, "dashboard_listen")
    taken = {listen.port: "listen"}
    for key, address in web.items():
        if address is None:
            continue
        if address.port in taken:
            default = f" (its default, {DEFAULT_DASHBOARD_LISTEN}: set another)" if key not in top else ""
            raise reader.fail(key, f"port {address.port} is {taken[address.port]}'s already{default}")
        taken[address.port] = key
    return web


def _web_address(reader: FieldReader, top: Mapping[str, Any], key: str, insecure: bool) -> Address | None:
    """An HTTP endpoint's address (metrics, dashboard), or None when the config has none. Without
    tls it serves plain HTTP, so as `listen` it stays on loopback unless the config says insecure."""
    if key not in top:
        return None
    address = reader.address(top[key], key)
    if "tls" not in top and not insecure and not is_loopback(address.host):
        raise reader.fail(key, f"{quoted(str(address))} is reachable from other machines, and without a tls section "
                               f"anyone there could read it: add tls (bin/gen-certs), or "
                               f'"insecure": true for a network you trust')
    return address


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that names a key more than once; json keeps the last value silently."""

    def __init__(self, pairs: list[tuple[str, Any]], duplicate: str):
        super().__init__(pairs)
        self.duplicate = duplicate


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: marks an object with a repeated key, to be reported with its path."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _DuplicateKeys(pairs, key)
        seen.add(key)
    return dict(pairs)


def _first_duplicate_key(document: Any) -> str | None:
    """The field path of the first repeated key in document order, or None."""
    pending: list[tuple[str, Any]] = [("", document)]  # a stack, not recursion: JSON nests deeply
    while pending:
        field, value = pending.pop()
        prefix = f"{field}." if field else ""
        if isinstance(value, _DuplicateKeys):
            return prefix + _field_key(value.duplicate)
        if isinstance(value, dict):
            pending.extend(reversed([(prefix + _field_key(key), item) for key, item in value.items()]))
        elif isinstance(value, list):
            pending.extend(reversed([(f"{field}[{index}]", item) for index, item in enumerate(value)]))
    return None


def read_document(source: Path) -> Any:
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(source, "(file)", f"cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(source, "(file)", f"not UTF-8 text (byte {error.start})") from None
    try:
        document = json.loads(text, object_pairs_hook=_object)
    except json.JSONDecodeError as error:
        raise ConfigError(source, f"(line {error.lineno} column {error.colno})", f"invalid JSON: {error.msg}") from None
    except (ValueError, RecursionError) as error:  # an integer of over 4300 digits; nesting too deep
        raise ConfigError(source, "(file)", f"invalid JSON: {error}") from None
    duplicate = _first_duplicate_key(document)
    if duplicate is not None:
        raise ConfigError(source, duplicate, "the key appears twice in its object (JSON would keep the last silently)")
    return document


def _held(config: DaemonConfig) -> tuple[str, ...]:
    return tuple(spec.name for spec in config.data.partitions) if config.data else ()


class _Overlay:
    """The daemons' configs in a gateway's folder (etc/<name>.json each), read as routes need them."""

    def __init__(self, gateway: DaemonConfig, environ: Mapping[str, str]):
        self.gateway = gateway
        self.environ = environ
        self._configs = {gateway.name: gateway}

    def fail(self, field: str, problem: str) -> ConfigError:
        return ConfigError(self.gateway.source, field, problem)

    def config(self, name: str, field: str) -> DaemonConfig:
        """The config of daemon `name`; a missing or invalid one is an error of the gateway's `field`."""
        if name not in self._configs:
            source = self.gateway.source.parent / f"{name}.json"
            try:
                config = parse_config(read_document(source), source.resolve(), self.environ)
            except ConfigError as error:
                raise self.fail(field, f"cannot check {name} against its config: {error}") from None
            if config.name != name:
                raise self.fail(field, f"{source} is the config of {config.name!r}, not of {name!r}")
            self._configs[name] = config
        return self._configs[name]

    def check_path(self, partition: str, path: tuple[str, ...], field: str) -> None:
        parent = self.gateway
        for hop in path:
            if all(link.name != hop for link in parent.children):
                children = ", ".join(link.name for link in parent.children) or "none"
                raise self.fail(field, f"{parent.name} has no child link to {hop} (its children: {children})")
            parent = self.config(hop, field)
        if partition not in _held(parent):
            earlier = [hop for hop in path if partition in _held(self.config(hop, field))]
            hint = f"; {earlier[-1]} on this path does, so end the path there" if earlier else \
                ", nor does any daemon on this path"
            raise self.fail(field, f"{parent.name}, the end of the path, does not hold {partition}{hint}")

    def _edges(self, field: str) -> Iterator[tuple[DaemonConfig, Link, DaemonConfig, bool]]:
        """Every edge below the gateway, parents breadth first: (parent, link, child, whether the child
        is met for the first time); a child's config that cannot be read is an error of `field`."""
        seen, pending = {self.gateway.name}, [self.gateway]
        while pending:
            parent = pending.pop(0)
            for link in parent.children:
                child = self.config(link.name, field)
                first = link.name not in seen
                if first:
                    seen.add(link.name)
                    pending.append(child)
                yield parent, link, child, first

    def check_admission(self) -> None:
        """Every child admits from one connection (half its query.max_internal_requests) all that its
        parent can send over it, so that calls forwarded for the parent's callers are never refused
        while the child's other connections flood it."""
        for parent, _link, child, _first in self._edges("routes"):
            forwarded = parent.query.max_internal_requests + (
                parent.query.max_concurrent_requests if parent.role == "gateway" else 0)
            share = child.query.max_internal_requests // 2
            if share < forwarded:
                sources = "its query.max_internal_requests" + (
                    " plus query.max_concurrent_requests" if parent.role == "gateway" else "")
                raise ConfigError(child.source, "query.max_internal_requests",
                                  f"half of it ({share}) admits less from one connection than {parent.name} can "
                                  f"forward over one ({forwarded}: {sources}); make it at least {2 * forwarded}")

    def links(self) -> tuple[OverlayLink, ...]:
        """Every edge below the gateway, parents in breadth-first order."""
        return tuple(OverlayLink(parent.name, link.name, link.kind, link.kind == "query" and parent.health.enabled)
                     for parent, link, _child, _first in self._edges("children"))

    def roles(self) -> dict[str, str]:
        return {name: config.role for name, config in self._configs.items()}

    def members(self) -> tuple[Link, ...]:
        """Every daemon below the gateway, once each, as its first parent reaches it."""
        return tuple(link for _parent, link, _child, first in self._edges("children") if first)

    def check_all_routed(self) -> None:
        """Every partition a daemon below the gateway holds is routed: the gateway knows partitions only
        from its routes, so an unrouted one would be missing from every answer while answers say complete."""
        for _parent, link, child, first in self._edges("routes"):
            for partition in _held(child) if first else ():
                if partition not in self.gateway.routes:
                    raise self.fail(f"routes.{partition}", f"no route: {link.name} holds it ({child.source}), "
                                    "so answers would leave it out yet say they are complete")


def _check_overlay(gateway: DaemonConfig, environ: Mapping[str, str]) -> DaemonConfig:
    """Checks a gateway's routes against the overlay that the configs in its folder describe: every path
    follows child links hop by hop (control links too: a route may name one) to a daemon holding the
    partition, every partition held below the gateway is routed, and every level admits what the
    level above forwards. Returns the gateway's config with the daemons below it."""
    overlay = _Overlay(gateway, environ)
    for partition, paths in gateway.routes.items():
        for index, path in enumerate(paths):
            overlay.check_path(partition, path, f"routes.{partition}[{index}]")
    overlay.check_all_routed()
    overlay.check_admission()
    return replace(gateway, members=overlay.members(), overlay=overlay.links(), roles=overlay.roles())


def load_config(path: Path | str, environ: Mapping[str, str] = os.environ) -> DaemonConfig:
    """Reads and validates a config file; a gateway's routes are checked against its folder's configs."""
    source = Path(path)
    config = parse_config(read_document(source), source.resolve(), environ)
    if config.role == "gateway":
        config = _check_overlay(config, environ)
    return config
