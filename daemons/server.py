"""One daemon's life: validate the config, listen, load the partitions, serve, stop cleanly.

The role (gateway, leader, worker) comes from the config alone; every daemon runs this same code.
The port is bound before the data loads, so a parent that calls early gets UNAVAILABLE
("loading") instead of a refused connection. SIGTERM stops accepting new calls, gives in-flight
streams the configured grace period, cancels what is left and releases the port.
"""

from __future__ import annotations

import functools
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from daemons import eventlog, events
from daemons.affinity import CpuKeeper
from daemons.channels import SERVER_OPTIONS, server_credentials
from daemons.config import Address, ConfigError, DaemonConfig, DataConfig, load_config
from daemons.fanout.children import GrpcChild
from daemons.fanout.engine import Fanout
from daemons.fanout.slots import WorkSlots
from daemons.health.datagram import PORT_RETRY_SECONDS, DatagramResponder
from daemons.health.h2ping import SERVER_OPTIONS as LIVENESS_PING_OPTIONS
from daemons.health.process import MonitorProcess, Setup
from daemons.health.seal import datagram_seal
from daemons.health.status import Status
from daemons.health.view import ClusterHealthView
from daemons.metrics import EventMetrics, StateCollector, metrics_page, register_process_metrics
from daemons.planning.paths import single_failure_losses, single_host_losses
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import fire_service_pb2 as fs
from daemons.security.authorization import Authorization
from daemons.security.handshakes import StderrTap
from daemons.servicers.gateway import GatewayServicer
from daemons.servicers.handlers import service_handler
from daemons.servicers.health import HealthEndpoints, Lifecycle
from daemons.servicers.housekeeping import Housekeeper, malloc_trim
from daemons.servicers.legacy import LegacyGateway, LegacyHealth
from daemons.servicers.logstream import MAX_EVENT_STREAMS, ClusterEvents, LogStreams
from daemons.servicers.node import NodeServicer
from daemons.servicers.replicas import ReplicaDirectory
from daemons.servicers.requests import RequestRegistry
from daemons.servicers.tokens import ResumeTokens, load_or_create_key
from daemons.storage.partition import load_partition
from daemons.wakeup import MainThreadWakeup
from daemons.web.server import PORT_RETRY_SECONDS as HTTP_RETRY_SECONDS
from daemons.web.server import Route, WebServer


def process_age_seconds() -> float:
    """Seconds since this process was spawned, interpreter start-up and imports included.

    Read from /proc, because a restarted daemon's recovery time starts at the spawn, long before
    any Python code of ours runs.
    """
    with open("/proc/self/stat", encoding="ascii") as stat:
        start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")


# Server threads beyond the request limits, kept for what must answer however busy the daemon
# is (health checks, GetStatus, GetHealthStatus, Cancel) and for refusing calls beyond the limits,
# which takes well under a millisecond each. Measured 2026-11-30: before the limits, 150 never-read
# Node.Scan calls to leader_e took all 136 threads and HealthCheck failed with "Concurrent RPC
# limit exceeded"; with them, leader_e admits 160 of 180, refuses 20, and the checks find a thread.
RESERVED_THREADS = 32
DROPPED_REPORT_SECONDS = 10.0  # how often, at most, dropped health datagrams are logged
LEGACY_SERVICE = f"{fs.DESCRIPTOR.package}.FireQueryService"
# Streams producing at once (WorkSlots, daemons/fanout/slots.py): one per core. Measured
# 2026-11-30 with 150 never-read Node.Scan calls filling at leader_e on this 2-core machine under
# other agents' load (load average 15-25): HealthCheck median / max 2 ms / 0.48 s with 2 slots,
# 2 ms / 0.69 s with 4, and seconds (deadlines missed for 12 s) without slots. A full scan or
# the PM2.5+PM10 query, one at a time, ran no slower with slots than without (paired runs).
WORK_SLOTS = 2
THREADS_START_TIMEOUT_SECONDS = 30.0  # a barrier that cannot fill breaks instead of holding threads
# Scrapes served at once: Prometheus makes one at a time per target; a few more for people and tools.
METRICS_CONNECTIONS = 8
# Dashboard connections at once: each open page holds one for its stream, and one more for a moment
# while it loads a file.
DASHBOARD_CONNECTIONS = 16


def started_thread_pool(threads: int) -> futures.ThreadPoolExecutor:
    """A pool whose threads all exist from the start.

    ThreadPoolExecutor starts a thread for each call it cannot place, on the thread that hands
    the call over, and waits for it to run: for a gRPC server that is the one thread that takes
    every call in, health checks included. Measured 2026-11-30 with 150 Node.Scan calls arriving
    at once at leader_e, the machine at load average 30 to 50: the health check sent among them
    was answered after 3 to 5 s, and after 0.5 to 2 s with every thread started beforehand. 224
    idle threads cost 4 MB and 0.07 s at start.
    """
    pool = futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc")
    everyone = threading.Barrier(threads)  # no thread is free before all have started
    for _ in range(threads):
        pool.submit(everyone.wait, THREADS_START_TIMEOUT_SECONDS)
    return pool


class Daemon:
    def __init__(self, config: DaemonConfig):
        self.config = config
        self.metrics = CollectorRegistry(auto_describe=False)
        self.counted = EventMetrics(self.metrics, config.role == "gateway", config.routes)
        # Who sees each event as it is written: the metrics, and at the gateway the dashboard.
        self.observers: list[Callable[[Mapping[str, Any]], None]] = [self.counted.observe]
        self.log = eventlog.configure(config.name, config.log_file, config.log_rotation, echo=True,
                                      observe=self.observe_event)
        self.cpus = CpuKeeper(config.cpus, self.log)  # where its threads run once it serves
        self.started = time.monotonic()
        services = [f"{pb.DESCRIPTOR.package}.Node"] + ([f"{pb.DESCRIPTOR.package}.AirQuality"]
                                                         if config.role == "gateway" else [])
        self.lifecycle = Lifecycle(services)
        self.children = {link.name: GrpcChild(link.name, link.address, config.tls) for link in config.children}
        self.monitor_process = MonitorProcess(
            Setup(config.name, config.role, config.health,
                  tuple((link.name, link.address) for link in config.watched), config.log_file, config.tls,
                  self.cpus.every),
            self.log, on_unavailable=self.cancel_calls_to)
        self.monitors = self.monitor_process.monitors
        watched = {m.neighbor: m for m in self.monitors}
        self.fanout = Fanout(config.name, self.children, config.query.call_timeout_seconds, self.log,
                             {m.neighbor: m.query_call_failed for m in self.monitors}, config.query.max_aggregate_groups,
                             unavailable=lambda child: child in watched and watched[child].status() is Status.UNAVAILABLE)
        limits = config.query
        self.requests = RequestRegistry(config.name, self.lifecycle.serving, limits.max_concurrent_requests, self.log,
                                        max_internal=limits.max_internal_requests,
                                        max_per_client=limits.max_requests_per_client,
                                        idle_timeout_seconds=limits.client_idle_timeout_seconds,
                                        work_slots=WorkSlots(WORK_SLOTS), on_admitted=self.cpus.update)
        # Event log streams (logstream.py) are admitted apart from query work, never taking its slots.
        self.event_requests = RequestRegistry(config.name, self.lifecycle.serving, 0, self.log,
                                              max_internal=MAX_EVENT_STREAMS,
                                              idle_timeout_seconds=limits.client_idle_timeout_seconds,
                                              internal_calls="event streams",
                                              internal_limit=f"{MAX_EVENT_STREAMS}, fixed")
        self.log_streams = LogStreams(config.name, config.log_file, self.event_requests)
        endpoints = HealthEndpoints(config, self.lifecycle, self.monitors, self.children, self.log,
                                    gasp_to=self.monitor_process.gasp_to)
        port = config.listen.port
        self.datagrams = DatagramResponder(
            config.listen, endpoints.answer, datagram_seal(config.tls), config.health.datagram_window_seconds, config.name,
            on_held=lambda error: events.DATAGRAM_PORT_HELD.emit(self.log, port=port, error=error,
                                                                 retry_seconds=PORT_RETRY_SECONDS),
            on_bound=lambda: events.DATAGRAM_PORT_BOUND.emit(self.log, port=port))
        self._drops_reported: dict[str, int] = {}
        self._next_drops_report = -math.inf
        self.housekeeper = Housekeeper(self.requests, self.log, chores=[
            self.event_requests.sweep, endpoints.check_watchers, self.report_dropped_datagrams, self.place_threads])
        self.housekeeper.start()
        self.web = self.metrics_endpoint()
        self.node = NodeServicer(config, self.fanout, self.requests, self.started, self.lifecycle.serving.is_set,
                                 endpoints.probes_received, self.datagrams_dropped)
        # Every admitted request holds one of the server's threads for its whole life (a streamed
        # answer waits in it for its reader), and admission refuses calls beyond the limits at once,
        # so query work holds at most the sum of the limits: the reserve is for what must always
        # answer (health checks, GetStatus, GetHealthStatus, Cancel) and for refusing the calls beyond
        # the limits. Past the pool, gRPC refuses calls itself ("Concurrent RPC limit exceeded").
        threads = (limits.max_concurrent_requests if config.role == "gateway" else 0) + limits.max_internal_requests
        threads += MAX_EVENT_STREAMS + RESERVED_THREADS
        self.server = grpc.server(started_thread_pool(threads),
                                  options=[*SERVER_OPTIONS, *LIVENESS_PING_OPTIONS], maximum_concurrent_rpcs=threads,
                                  interceptors=[Authorization()] if config.tls is not None else [])
        node_streams = SimpleNamespace(Scan=self.requests.watch_reader(self.node.Scan, "scan"),
                                       Events=self.event_requests.watch_reader(self.log_streams.Events, "events"))
        self.server.add_generic_rpc_handlers([service_handler("Node", node_streams, self.node, endpoints,
                                                              log=self.log)])
        if config.role == "gateway":
            leaders = {m.neighbor: self.children[m.neighbor] for m in self.monitors}
            view = ClusterHealthView({m.neighbor: m for m in self.monitors}, leaders)
            assert config.resume_key_file is not None, "a gateway's config always names it"
            self.replicas = ReplicaDirectory(config.routes, leaders, self.log)
            self.gateway = GatewayServicer(config, self.fanout, self.requests, view, self.log,
                                           ResumeTokens(load_or_create_key(config.resume_key_file)), self.replicas)
            self.cluster_events = ClusterEvents(self.log_streams, config.members, self.event_requests, config.tls)
            self.web.append(self.dashboard_endpoint())
            query_streams = SimpleNamespace(
                Query=self.requests.watch_reader(self.gateway.Query, "query"),
                Events=self.event_requests.watch_reader(self.cluster_events.Events, "events"))
            self.server.add_generic_rpc_handlers([service_handler("AirQuality", query_streams, self.gateway,
                                                                  endpoints, log=self.log)])
        # The original system's contract, for its clients and health scripts (legacy.py).
        legacy: list[object] = []
        if config.role == "gateway":
            legacy_gateway = LegacyGateway(self.gateway, self.requests)
            # Watched as the native streams are: a reader that stops is cut off, and its slot freed.
            legacy = [SimpleNamespace(Query=self.requests.watch_reader(legacy_gateway.Query, "query")), legacy_gateway]
        self.server.add_generic_rpc_handlers([service_handler(
            "FireQueryService", *legacy, LegacyHealth(config, lambda: self.lifecycle.status), log=self.log,
            contract=fs.DESCRIPTOR)])
        health_pb2_grpc.add_HealthServicer_to_server(self.lifecycle.standard, self.server)
        reflection.enable_server_reflection([*services, LEGACY_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME],
                                            self.server)

    def metrics_endpoint(self) -> list[WebServer]:
        """The metrics read at scrape time, and where Prometheus scrapes them, if the config says."""
        self.metrics.register(StateCollector(self.config.name, self.config.role, self.monitors,
                                             lambda: self.requests.active, self.datagrams_dropped, self.counted.held))
        register_process_metrics(self.metrics, lambda: self.monitor_process.pid)
        if self.config.metrics_listen is None:
            return []
        return [self.web_server("metrics", self.config.metrics_listen, {"/metrics": metrics_page(self.metrics)},
                                METRICS_CONNECTIONS)]

    def dashboard_endpoint(self) -> WebServer:
        """The gateway's live dashboard (dashboard/live.py), which also counts the queries it ends."""
        # Imported by the gateway only: the five other daemons would pay 20-30 ms of CPU at start for it.
        from daemons.dashboard.live import Dashboard, dashboard_routes

        self.dashboard = Dashboard(self.config, self.monitors, self.children, self.gateway.serving_copies,
                                   self.cluster_events)
        self.observers.append(self.dashboard.observe)
        assert self.config.dashboard_listen is not None, "a gateway's config always has one"
        return self.web_server("dashboard", self.config.dashboard_listen, dashboard_routes(self.dashboard),
                               DASHBOARD_CONNECTIONS)

    def observe_event(self, event: Mapping[str, Any]) -> None:
        for observer in self.observers:
            observer(event)

    def web_server(self, endpoint: str, address: Address, routes: dict[str, Route], connections: int) -> WebServer:
        """An HTTP endpoint of this daemon, which logs where it serves once it listens, and a port
        held by another process."""
        web = WebServer(endpoint, address, routes, self.config.tls, connections,
                        on_held=lambda error: events.HTTP_PORT_HELD.emit(self.log, endpoint=endpoint, url=web.url,
                                                                         error=error, retry_seconds=HTTP_RETRY_SECONDS),
                        on_bound=lambda: events.HTTP_LISTENING.emit(self.log, endpoint=endpoint, url=web.url))
        return web

    def datagrams_dropped(self) -> dict[str, int]:
        """Health datagrams not believed so far: probes sent to this daemon, and replies and gasps
        from each neighbour it watches (as its monitor process last reported)."""
        counts = {f"request: {reason}": count for reason, count in self.datagrams.dropped.snapshot().items()}
        for monitor in self.monitors:
            counts.update((f"{monitor.neighbor}: {reason}", count)
                          for reason, count in monitor.view().datagrams_dropped.items())
        return counts

    def report_dropped_datagrams(self) -> None:
        """Logs the drop counts when they changed, at most every DROPPED_REPORT_SECONDS: a flood of
        forged datagrams makes a line now and then, not a line each."""
        now = time.monotonic()
        if now < self._next_drops_report:
            return
        counts = self.datagrams_dropped()
        if counts != self._drops_reported:
            events.DATAGRAMS_DROPPED.emit(self.log, counts=counts)
            self._drops_reported, self._next_drops_report = counts, now + DROPPED_REPORT_SECONDS

    def cancel_calls_to(self, neighbor: str) -> None:
        self.fanout.cancel_calls_to(neighbor)

    def fail(self, error: str) -> int:
        events.DAEMON_FAILED.emit(self.log, error=error)
        print(f"{self.config.name}: {error}", file=sys.stderr)
        return 1

    def place_threads(self) -> None:
        """The housekeeper's chore: moves the threads back to their own CPUs once the daemon is calm."""
        self.cpus.update(self.requests.active)

    def run(self) -> int:
        """Serves until a signal; returns the exit status. With TLS, failed handshakes, which only
        gRPC's core sees and writes on stderr, are read from there into the event log."""
        tap = StderrTap(self.config.name, self.config.log_file) if self.config.tls is not None else None
        if tap is not None:
            self.monitor_process.stderr = tap.original
        try:
            return self._serve()
        finally:
            if tap is not None:
                tap.close()

    def _serve(self) -> int:
        stop = threading.Event()
        wake = threading.Event()  # a signal, or the data loaded
        waiting = MainThreadWakeup()
        received: list[str] = []

        def on_signal(number, _frame):
            received.append(signal.Signals(number).name)
            stop.set()
            wake.set()

        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, on_signal)
        problem = self.listen()
        if problem is not None:
            return self.fail(problem)
        self.check_placement()
        self.start_monitoring()
        if self.config.data is not None:
            # Loaded on a thread of its own, so that a SIGTERM during a slow or hung read is heard.
            outcome: list[str | None] = []
            data = self.config.data

            def load() -> None:
                outcome.append(self.load_data(data))
                wake.set()
                waiting.wake()

            threading.Thread(target=load, name="load", daemon=True).start()
            waiting.until(wake)
            if stop.is_set():
                return self.shutdown(received[0])
            if outcome[0] is not None:
                self.stop_monitoring()
                self.server.stop(0)
                self.datagrams.stop()
                self.stop_web()
                return self.fail(outcome[0])
        cpus = self.cpus.keep_to_configured()
        self.lifecycle.mark_serving()
        if self.config.role == "gateway":
            self.replicas.start()
        partitions = self.fanout.partitions.values()
        events.DAEMON_STARTED.emit(self.log, pid=os.getpid(), port=self.config.listen.port, role=self.config.role,
                                   rows_loaded=sum(p.rows for p in partitions),
                                   load_seconds=round(time.monotonic() - self.started, 6),
                                   startup_seconds=round(process_age_seconds(), 3),
                                   partitions=[p.name for p in partitions], cpus=cpus)
        waiting.until(stop)
        return self.shutdown(received[0] if received else "unknown")

    def check_placement(self) -> None:
        """Warns, naming them, about partitions that a single failed daemon, or a single lost host other
        than its own, would take out of reach."""
        if self.config.role != "gateway":
            return
        name, hosts = self.config.layout or ("one-host", ())
        losses = single_failure_losses(self.config.routes)
        host_losses = single_host_losses(self.config.routes, {host: programs for host, programs in hosts
                                                              if self.config.name not in programs})
        if losses or host_losses:
            events.PLACEMENT_UNSAFE.emit(self.log, layout=name, losses=losses, host_losses=host_losses)
        events.PLACEMENT_CHECKED.emit(self.log, layout=name, partitions=sorted(self.config.routes),
                                      single_failure_safe=not losses, single_host_safe=not host_losses)

    def start_monitoring(self) -> None:
        self.monitor_process.start()  # here, on the main thread: see MonitorProcess.start

    def stop_monitoring(self) -> None:
        self.monitor_process.stop()

    def listen(self) -> str | None:
        """Takes the gRPC port and starts serving on it, answers health datagrams, and starts the HTTP
        endpoints; returns why the daemon cannot (having let go of what it took), or None."""
        address = str(self.config.listen)
        try:
            if self.config.tls is None:
                bound = self.server.add_insecure_port(address)
            else:
                bound = self.server.add_secure_port(address, server_credentials(self.config.tls))
        except RuntimeError as error:
            bound = 0
            reason = str(error)
        else:
            reason = "the port is in use or the address is not local"
        if not bound:
            return f"cannot listen on {address}: {reason}"
        try:
            self.datagrams.start()  # a port another process holds is retried, and logged
        except OSError as error:
            return f"cannot answer health datagrams on UDP {address}: {error.strerror or error}"
        self.server.start()
        problem = self.start_web()
        if problem is not None:
            self.server.stop(0)
            self.datagrams.stop()
        return problem

    def start_web(self) -> str | None:
        """Starts the HTTP endpoints; returns why one cannot serve (not a port another process holds:
        that one is retried, and logged), having stopped the others, or None."""
        for web in self.web:
            try:
                web.start()
            except OSError as error:
                self.stop_web()
                return f"cannot serve {web.name} at {web.address}: {error.strerror or error}"
        return None

    def stop_web(self) -> None:
        if self.config.role == "gateway":
            self.dashboard.close()  # its streams end, and with them their connections
        for web in self.web:
            web.stop()

    def cache_write_failed(self, partition: str, error: str) -> None:
        events.CACHE_WRITE_FAILED.emit(self.log, partition=partition, error=error)

    def cache_rejected(self, partition: str, path: Path, reason: str) -> None:
        events.CACHE_REJECTED.emit(self.log, partition=partition, path=str(path), reason=reason)

    def load_data(self, data: DataConfig) -> str | None:
        """Loads every partition; returns why the daemon cannot serve, or None."""
        if not data.root.is_dir():
            return (f"data root {data.root} is not a directory (set FIRE_DATA_DIR, or run "
                    f"bin/generate-data for the embedded data set)")
        for spec in data.partitions:
            try:
                partition = load_partition(spec, data.root, data.cache_dir,
                                           on_cache_error=functools.partial(self.cache_write_failed, spec.name),
                                           on_cache_rejected=functools.partial(self.cache_rejected, spec.name))
            except OSError as error:
                return f"cannot read partition {spec.name}: {error}"
            self.fanout.partitions[spec.name] = partition
            events.PARTITION_LOADED.emit(self.log, partition=spec.name, rows=partition.rows,
                                         source=partition.loaded_from, seconds=round(partition.load_seconds, 6),
                                         days=list(spec.days))
            if partition.missing_days:
                events.PARTITION_DAYS_MISSING.emit(self.log, partition=spec.name, days=list(partition.missing_days))
            if partition.skipped_files:
                events.DATA_FILES_SKIPPED.emit(self.log, partition=spec.name, files=list(partition.skipped_files))
            if partition.skipped_lines:
                events.CSV_LINES_SKIPPED.emit(self.log, partition=spec.name, count=partition.skipped_lines,
                                              examples=list(partition.skipped_examples))
        trim = malloc_trim()
        if trim is not None:
            trim(0)  # what parsing the CSVs freed goes back to the system, not kept for later
        return None

    def shutdown(self, signal_name: str) -> int:
        began = time.monotonic()
        events.DAEMON_STOPPING.emit(self.log, signal=signal_name, active_requests=self.requests.active)
        self.lifecycle.mark_stopping()  # watchers learn first; new requests are refused from here on
        self.event_requests.end_all()  # their readers ask again, from where they were, of the next process
        # Stopping the server sends GOAWAY at once, so every parent's channel notices now (before the
        # monitor process is ended, which takes tens of milliseconds); in-flight calls get the grace
        # period, and whatever is still open after it is cancelled.
        stopped = self.server.stop(self.config.query.shutdown_grace_seconds)
        self.stop_monitoring()
        if self.config.role == "gateway":
            self.replicas.stop()
        stopped.wait()
        self.datagrams.stop()
        self.stop_web()
        for child in self.children.values():
            child.close()
        events.DAEMON_STOPPED.emit(self.log, seconds=round(time.monotonic() - began, 6))
        return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("config_path", metavar="CONFIG", type=click.Path(dir_okay=False, path_type=Path))
def main(config_path: Path) -> None:
    """Run one daemon of the air-quality service; its role comes from the JSON CONFIG."""
    try:
        config = load_config(config_path)
    except ConfigError as error:
        print(f"fire-daemon: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        daemon = Daemon(config)
    except OSError as error:  # the event log cannot be opened
        print(f"fire-daemon: {config.source}: log_file: cannot open {config.log_file}: {error.strerror or error}",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(daemon.run())
