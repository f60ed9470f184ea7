"""A private copy of the shipped deployment under real supervisord, for tests and benchmarks.

The six configs and supervisord.conf are derived from the ones in etc/, so the tests exercise what
ships, with only what must differ changed: free ports (never the default ones, so a running system
is left alone), a temporary folder for logs and configs, a short unix-socket path, and the data
and cache locations.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from daemons.deploy.cli import venv_tool
from daemons.deploy.wake import wake_supervisord
from daemons.security.certs import write_cluster
from daemons.security.gencerts import places as certificate_places
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[1]
ETC = REPO / "etc"
PROGRAMS = ("gateway_a", "leader_b", "worker_c", "worker_d", "leader_e", "worker_f")
REAL_DATA = REPO.parent / "shared" / "fire-data"
DEFAULT_PORTS = range(50051, 50057)


@contextlib.contextmanager
def full_scans(gateway: str, scans: int) -> Iterator[None]:
    """Keeps `scans` full-table queries streaming through the gateway for the length of the block;
    fails if the load did not actually run."""
    from daemons.client import FireClient

    stop = threading.Event()
    batches: list[int] = []
    errors: list[BaseException] = []

    def scan_until_stopped() -> None:
        try:
            with FireClient(gateway) as client:
                while not stop.is_set():
                    for _ in client.query():
                        batches.append(1)
                        if stop.is_set():
                            break
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=scan_until_stopped, daemon=True) for _ in range(scans)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    if errors:
        raise errors[0]
    assert batches, "the full scans delivered nothing"


def free_ports(count: int) -> list[int]:
    """Ports free for TCP and UDP alike (a daemon answers health datagrams on its gRPC port)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    while len(ports) < count:
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        held.append(tcp)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            udp.close()
        if port not in DEFAULT_PORTS:
            ports.append(port)
    for sock in held:
        sock.close()
    return ports


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


@dataclass
class Cluster:
    home: Path
    socket_dir: Path
    ports: dict[str, int]
    environment: dict[str, str]

    @property
    def conf(self) -> Path:
        return self.home / "etc" / "supervisord.conf"

    @property
    def gateway(self) -> str:
        return f"127.0.0.1:{self.ports['gateway_a']}"

    def config_path(self, program: str) -> Path:
        return self.home / "etc" / f"{program}.json"

    def log_path(self, program: str) -> Path:
        return self.home / "logs" / f"{program}.log"

    def events(self, program: str, event: str | None = None) -> list[dict[str, Any]]:
        return [e for e in read_events(self.log_path(program)) if event is None or e.get("event") == event]

    def supervisor(self) -> Any:
        """supervisord's XML-RPC interface over its unix socket."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket_dir}/s.sock")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def ctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run([venv_tool("supervisorctl"), "-c", str(self.conf), *args], capture_output=True, text=True,
                              check=check, timeout=60)

    def pid(self, program: str) -> int:
        return self.supervisor().getProcessInfo(program)["pid"]

    def state(self, program: str) -> str:
        return self.supervisor().getProcessInfo(program)["statename"]

    def wait_serving(self, programs=PROGRAMS, timeout: float = 60.0, since: float = 0.0) -> None:
        """Waits until each program has logged daemon_started with a timestamp after `since` (epoch)."""
        def started(program: str) -> bool:
            return any(epoch_of(e) >= since for e in self.events(program, "daemon_started"))
        for program in programs:
            wait_for(functools.partial(started, program), timeout, f"{program} to start serving")

    def stop(self) -> None:
        pid_file = self.home / "var" / "run" / "supervisord.pid"
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            return
        self.ctl("shutdown")
        try:
            wait_for(lambda: not _alive(pid), 30, "supervisord to exit", 0.05)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def epoch_of(event: dict[str, Any]) -> float:
    """An event's timestamp as seconds since the Unix epoch."""
    return datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def web_ports() -> dict[str, int]:
    """Free ports for the HTTP endpoints, keyed as write_configs takes them: `<program>/metrics` and
    `gateway_a/dashboard`."""
    names = [f"{program}/metrics" for program in PROGRAMS] + ["gateway_a/dashboard"]
    return dict(zip(names, free_ports(len(names)), strict=True))


def write_configs(home: Path, ports: dict[str, int], cache_dir: Path, edit: Callable[[str, dict], None] | None = None):
    """The shipped configs with ports renumbered; `edit(program, document)` may change more. The
    HTTP endpoints take the ports `ports` has for them (web_ports), or none: a cluster that is not
    given any serves no metrics, and its gateway's dashboard at a free port, never at the shipped
    ones, which a running system holds."""
    default_port = {json.loads((ETC / f"{p}.json").read_text())["listen"].rsplit(":", 1)[1]: p for p in PROGRAMS}
    for program in PROGRAMS:
        document = json.loads((ETC / f"{program}.json").read_text())
        document["listen"] = f"127.0.0.1:{ports[program]}"
        document.pop("metrics_listen", None)
        if f"{program}/metrics" in ports:
            document["metrics_listen"] = f"127.0.0.1:{ports[f'{program}/metrics']}"
        if "dashboard_listen" in document:
            document["dashboard_listen"] = f"127.0.0.1:{ports.get(f'{program}/dashboard') or free_ports(1)[0]}"
        for child in document.get("children", []):
            child["address"] = f"127.0.0.1:{ports[default_port[child['address'].rsplit(':', 1)[1]]]}"
        if "data" in document:
            document["data"]["cache_dir"] = str(cache_dir)
        if edit:
            edit(program, document)
        (home / "etc" / f"{program}.json").write_text(json.dumps(document, indent=2))


def prepare_layout(home: Path, layout: str, places: dict[str, list[str]], addresses: dict[str, str],
                   ports: dict[str, int], cache_dir: Path) -> None:
    """A deployment's etc/ in `home`: the shipped configs at `ports`, supervisord.conf, and the layout
    `layout` running `places` (host -> programs) at `addresses`; and each host's state folder with
    `cache_dir` (the session's parsed data) as its cache, so no host parses the CSVs again."""
    (home / "etc" / "layouts").mkdir(parents=True)
    write_configs(home, ports, cache_dir)
    shutil.copy(ETC / "supervisord.conf", home / "etc")
    hosts = {host: {"address": addresses[host], "programs": programs} for host, programs in places.items()}
    (home / "etc" / "layouts" / f"{layout}.json").write_text(json.dumps({"hosts": hosts}))
    for host in places:
        (home / "state" / layout / host).mkdir(parents=True)
        (home / "state" / layout / host / "cache").symlink_to(cache_dir)
    write_cluster(home / "tls", certificate_places(home / "etc"))  # what every host is given a copy of


def host_command(command: str, layout: str, host: str, home: Path) -> list[str]:
    """bin/start or bin/stop for one host of a deployment that prepare_layout made in `home`, with the
    deployment's certificates (mutual TLS, the layouts' default)."""
    configs = ["--etc", str(home / "etc"), "--tls", str(home / "tls")] if command == "start" else []
    return [str(REPO / "bin" / command), "--layout", layout, "--host", host, *configs, "--state", str(home / "state")]


def start_cluster(home: Path, data_root: Path, cache_dir: Path, *, wait: bool = True,
                  edit: Callable[[str, dict], None] | None = None,
                  data_roots: dict[str, Path] | None = None) -> Cluster:
    """Starts supervisord with the six daemons in `home`; waits until all serve unless told not to.
    `data_roots` gives some programs a data folder of their own (a host with another copy)."""
    for folder in ("etc", "logs", "var/run"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    ports = {**dict(zip(PROGRAMS, free_ports(len(PROGRAMS)))), **web_ports()}
    write_configs(home, ports, cache_dir, edit)
    socket_dir = Path(tempfile.mkdtemp(prefix="fq", dir="/tmp"))  # unix socket paths must stay short
    conf = (ETC / "supervisord.conf").read_text()
    conf = conf.replace("%(here)s/../var/run/supervisor.sock", f"{socket_dir}/s.sock")
    conf = conf.replace("%(here)s/../bin/", f"{REPO}/bin/")
    for program, root in (data_roots or {}).items():
        section = f"[program:{program}]"
        head, _, rest = conf.partition(section)
        body, separator, tail = rest.partition("\n[")
        body = body.replace('environment=PYTHONUNBUFFERED="1"', f'environment=PYTHONUNBUFFERED="1",FIRE_DATA_DIR="{root}"')
        conf = head + section + body + separator + tail
    (home / "etc" / "supervisord.conf").write_text(conf)
    environment = {**os.environ, "FIRE_DATA_DIR": str(data_root)}
    cluster = Cluster(home, socket_dir, ports, environment)
    subprocess.run([venv_tool("supervisord"), "-c", str(cluster.conf)], env=environment, check=True, timeout=60)
    wake_supervisord(str(socket_dir / "s.sock"))  # as bin/start does
    if wait:
        try:
            cluster.wait_serving(timeout=120)
        except BaseException:
            cluster.stop()
            raise
    return cluster


def healthlog_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemons.healthlog", *args]


class HealthlogFollower:
    """`bin/healthlog --follow --json --gateway ...` running, its output collected as it comes."""

    def __init__(self, gateway: str, tls_dir: Path | None = None):
        tls = [] if tls_dir is None else ["--tls", str(tls_dir)]
        self.process = subprocess.Popen(healthlog_command("--follow", "--json", "--gateway", gateway, *tls), cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.notes: list[str] = []
        self._readers = [threading.Thread(target=self._collect, args=(stream, into), daemon=True)
                         for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.notes))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _collect(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def saw(self, program: str, event: str, since: float, **fields) -> bool:
        return any(e["daemon"] == program and e["event"] == event and epoch_of(e) >= since
                   and all(e.get(k) == v for k, v in fields.items()) for e in map(json.loads, list(self.lines)))

    def last_note(self) -> str:
        return self.notes[-1] if self.notes else ""

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        for reader in self._readers:
            reader.join(5)


def prometheus_config(cluster: Cluster, path: Path) -> None:
    """etc/prometheus.yml, with each shipped metrics port replaced by the private cluster's."""
    import yaml  # a test dependency; the cluster helpers are used by the benchmarks too

    shipped = {json.loads((ETC / f"{p}.json").read_text())["metrics_listen"]: p for p in PROGRAMS}
    config = yaml.safe_load((ETC / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            group["targets"] = [f"127.0.0.1:{cluster.ports[shipped[target] + '/metrics']}" for target in group["targets"]]
    path.write_text(yaml.safe_dump(config))


def start_prometheus(executable: str, config: Path, scratch: Path, port: int) -> subprocess.Popen:
    """A Prometheus server with `config`, its data and log in `scratch`, its API on loopback at `port`."""
    with open(scratch / "prometheus.log", "w") as log:  # the process keeps its own copy of the descriptor
        return subprocess.Popen([executable, f"--config.file={config}", f"--storage.tsdb.path={scratch / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=log)


def prometheus_api(port: int, path: str, **query: str) -> Any:
    """The `data` of a Prometheus HTTP API answer (/api/v1/<path>)."""
    url = f"http://127.0.0.1:{port}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as answer:
        document = json.loads(answer.read())
    assert document["status"] == "success", document
    return document["data"]


def prometheus_scrapes_all(port: int) -> bool:
    """Prometheus at `port` has scraped each of the six daemons, successfully, last time."""
    try:
        targets = prometheus_api(port, "targets")["activeTargets"]
    except OSError:
        return False  # not listening yet
    return len(targets) == len(PROGRAMS) and all(target["health"] == "up" for target in targets)
