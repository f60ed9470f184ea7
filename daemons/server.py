"""One daemon's life: validate the config, listen, load the partitions, serve, stop cleanly.

The role (gateway, leader, worker) comes from the config alone; every daemon runs this same code.
The port is bound before the data loads, so a parent that calls early gets UNAVAILABLE
("loading") instead of a refused connection. SIGTERM stops accepting new calls, gives in-flight
streams the configured grace period, cancels what is left and releases the port.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import click
import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from daemons import eventlog, events
from daemons.channels import CHANNEL_OPTIONS
from daemons.config import ConfigError, DaemonConfig, DataConfig, load_config
from daemons.fanout.children import GrpcChild
from daemons.fanout.engine import Fanout
from daemons.health.clock import LoopClock
from daemons.health.datagram import DatagramResponder
from daemons.health.monitor import MonitorLoop, NeighborMonitor
from daemons.health.transport import GrpcProbeTransport
from daemons.health.view import ClusterHealthView
from daemons.planning.paths import single_failure_losses
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.gateway import GatewayServicer
from daemons.servicers.handlers import service_handler
from daemons.servicers.health import HealthEndpoints, Lifecycle
from daemons.servicers.node import NodeServicer
from daemons.servicers.requests import RequestRegistry
from daemons.storage.partition import load_partition


def process_age_seconds() -> float:
    """Seconds since this process was spawned, interpreter start-up and imports included.

    Read from /proc, because a restarted daemon's recovery time starts at the spawn, long before
    any Python code of ours runs.
    """
    with open("/proc/self/stat", encoding="ascii") as stat:
        start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, config: DaemonConfig):
        self.config = config
        self.log = eventlog.configure(config.name, config.log_file)
        self.started = time.monotonic()
        services = [f"{pb.DESCRIPTOR.package}.Node"] + ([f"{pb.DESCRIPTOR.package}.AirQuality"]
                                                         if config.role == "gateway" else [])
        self.lifecycle = Lifecycle(services)
        self.children = {link.name: GrpcChild(link.name, link.address) for link in config.children}
        clock = LoopClock()
        self.monitors = [NeighborMonitor(config.name, link.name, config.health, GrpcProbeTransport(link.address),
                                         clock, self.log, on_unavailable=self.cancel_calls_to)
                         for link in config.watched]
        self.monitor_loop = MonitorLoop(self.monitors)
        self.fanout = Fanout(config.name, self.children, config.query.call_timeout_seconds, self.log,
                             {m.neighbor: m.observe for m in self.monitors})
        self.requests = RequestRegistry(config.name, self.lifecycle.serving, config.query.max_concurrent_requests,
                                        self.log)
        endpoints = HealthEndpoints(config, self.lifecycle, self.monitors, self.children)
        self.datagrams = DatagramResponder(config.listen, endpoints.answer)
        self.node = NodeServicer(config, self.fanout, self.requests, self.started, self.lifecycle.serving.is_set,
                                 endpoints.probes_received)
        workers = config.query.max_concurrent_requests * 2 + 8
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rpc"),
                                  options=CHANNEL_OPTIONS, maximum_concurrent_rpcs=workers)
        self.server.add_generic_rpc_handlers([service_handler("Node", self.node, endpoints)])
        if config.role == "gateway":
            view = ClusterHealthView({m.neighbor: m for m in self.monitors},
                                     {m.neighbor: self.children[m.neighbor] for m in self.monitors})
            self.gateway = GatewayServicer(config, self.fanout, self.requests, view, self.log)
            self.server.add_generic_rpc_handlers([service_handler("AirQuality", self.gateway)])
        health_pb2_grpc.add_HealthServicer_to_server(self.lifecycle.standard, self.server)
        reflection.enable_server_reflection([*services, health.SERVICE_NAME, reflection.SERVICE_NAME], self.server)

    def cancel_calls_to(self, neighbor: str) -> None:
        self.fanout.cancel_calls_to(neighbor)

    def fail(self, error: str) -> int:
        events.DAEMON_FAILED.emit(self.log, error=error)
        print(f"{self.config.name}: {error}", file=sys.stderr)
        return 1

    def run(self) -> int:
        stop = threading.Event()
        received: list[str] = []

        def on_signal(number, _frame):
            received.append(signal.Signals(number).name)
            stop.set()

        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, on_signal)
        address = str(self.config.listen)
        try:
            bound = self.server.add_insecure_port(address)
        except RuntimeError as error:
            bound = 0
            reason = str(error)
        else:
            reason = "the port is in use or the address is not local"
        if not bound:
            return self.fail(f"cannot listen on {address}: {reason}")
        try:
            self.datagrams.start()
        except OSError as error:
            return self.fail(f"cannot answer health datagrams on UDP {address}: {error.strerror or error}")
        self.server.start()
        self.check_placement()
        self.start_monitoring()
        if self.config.data is not None:
            loaded = self.load_data(self.config.data)
            if loaded is not None:
                self.stop_monitoring()
                self.server.stop(0)
                self.datagrams.stop()
                return self.fail(loaded)
        self.lifecycle.mark_serving()
        partitions = self.fanout.partitions.values()
        events.DAEMON_STARTED.emit(self.log, pid=os.getpid(), port=self.config.listen.port, role=self.config.role,
                                   rows_loaded=sum(p.rows for p in partitions),
                                   load_seconds=round(time.monotonic() - self.started, 6),
                                   startup_seconds=round(process_age_seconds(), 3),
                                   partitions=[p.name for p in partitions])
        while not stop.wait(3600):
            pass
        return self.shutdown(received[0] if received else "unknown")

    def check_placement(self) -> None:
        """Warns, naming them, about partitions that a single failed daemon would take out of reach."""
        if self.config.role != "gateway":
            return
        losses = single_failure_losses(self.config.routes)
        if losses:
            events.PLACEMENT_UNSAFE.emit(self.log, losses=losses)
        events.PLACEMENT_CHECKED.emit(self.log, partitions=sorted(self.config.routes), single_failure_safe=not losses)

    def start_monitoring(self) -> None:
        if not self.monitors:
            return
        settings = self.config.health
        events.MONITORING_STARTED.emit(
            self.log, neighbors=[m.neighbor for m in self.monitors], interval_seconds=settings.interval_seconds,
            timeout_seconds=settings.timeout_seconds,
            failures_before_degraded=settings.thresholds.failures_before_degraded,
            failures_before_unavailable=settings.thresholds.failures_before_unavailable,
            successes_before_healthy=settings.thresholds.successes_before_healthy)
        self.monitor_loop.start()

    def stop_monitoring(self) -> None:
        self.monitor_loop.stop()

    def cache_write_failed(self, partition: str, error: str) -> None:
        events.CACHE_WRITE_FAILED.emit(self.log, partition=partition, error=error)

    def load_data(self, data: DataConfig) -> str | None:
        """Loads every partition; returns why the daemon cannot serve, or None."""
        if not data.root.is_dir():
            return (f"data root {data.root} is not a directory (set FIRE_DATA_DIR, or run "
                    f"bin/generate-data for the embedded data set)")
        for spec in data.partitions:
            try:
                partition = load_partition(spec, data.root, data.cache_dir,
                                           on_cache_error=functools.partial(self.cache_write_failed, spec.name))
            except OSError as error:
                return f"cannot read partition {spec.name}: {error}"
            self.fanout.partitions[spec.name] = partition
            events.PARTITION_LOADED.emit(self.log, partition=spec.name, rows=partition.rows,
                                         source=partition.loaded_from, seconds=round(partition.load_seconds, 6),
                                         days=list(spec.days))
            if partition.missing_days:
                events.PARTITION_DAYS_MISSING.emit(self.log, partition=spec.name, days=list(partition.missing_days))
            if partition.skipped_lines:
                events.CSV_LINES_SKIPPED.emit(self.log, partition=spec.name, count=partition.skipped_lines,
                                              examples=list(partition.skipped_examples))
        return None

    def shutdown(self, signal_name: str) -> int:
        began = time.monotonic()
        events.DAEMON_STOPPING.emit(self.log, signal=signal_name, active_requests=self.requests.active)
        self.lifecycle.mark_stopping()  # watchers learn first; new requests are refused from here on
        self.stop_monitoring()
        # Stopping the server sends GOAWAY at once, so every parent's channel notices now; in-flight
        # calls get the grace period, and whatever is still open after it is cancelled.
        self.server.stop(self.config.query.shutdown_grace_seconds).wait()
        self.datagrams.stop()
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
