"""Query speed, start-up and memory of the whole system, next to the targets and to DuckDB.

Starts a private cluster under real supervisord (free ports, a fresh partition cache, so the
first start parses every CSV), measures through the Python client library receiving columns,
and times DuckDB on the same query over the same rows already in memory, handing them to Python
as tuples. Run with `bin/benchmark query`; figures go to stdout.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psutil

from daemons.channels import CHANNEL_OPTIONS
from daemons.client import FireClient, make_filter
from daemons.config import MAX_CHUNK_SIZE
from daemons.datagen.tree import DEFAULT_SEED, REAL_SET_SITES, generate_if_absent
from daemons.rpc import airquality_pb2 as pb
from tests.benchmarks import grpc_floor, in_process, start_floor
from tests.benchmarks.load import closed_loop
from tests.cluster import PROGRAMS, REAL_DATA, epoch_of, full_scans, start_cluster
from tests.waiting import wait_for

HEADLINE = dict(parameters=["PM2.5", "PM10"], min_aqi=0, max_aqi=100)


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: float | None = None  # at most
    duckdb: float | None = None

    def line(self) -> str:
        verdict = "" if self.target is None else ("ok" if self.value <= self.target else "MISSED")
        target = "" if self.target is None else f"<= {self.target:g} {self.unit}"
        versus = ("" if self.duckdb is None else
                  f"duckdb {self.duckdb:.3f} {self.unit}  ours/duckdb {self.value / self.duckdb:.2f}")
        return f"{self.name:<52} {self.value:>10.3f} {self.unit:<3} {target:<14} {verdict:<7} {versus}"


def timed_query(client: FireClient, query_filter) -> tuple[float, float, int]:
    """(seconds to the first chunk, seconds in all, rows), receiving column batches."""
    started = time.perf_counter()
    first, rows = None, 0
    stream = client.query(query_filter)
    for batch in stream:
        if first is None:
            first = time.perf_counter() - started
        rows += len(batch)
    total = time.perf_counter() - started
    assert stream.completeness is not None and stream.completeness.complete, "benchmark answers must be complete"
    return first if first is not None else total, total, rows


def median_of(runs: int, measure):
    samples = [measure() for _ in range(runs)]
    return [statistics.median(values) for values in zip(*samples)]


@functools.cache
def duckdb_table(data_root: Path) -> Any:
    """A DuckDB connection holding every row in memory as table `rows`, loaded once per run."""
    import duckdb

    connection = duckdb.connect()
    columns = {"latitude": "DOUBLE", "longitude": "DOUBLE", "datetime": "VARCHAR", "parameter": "VARCHAR",
               "concentration": "DOUBLE", "unit": "VARCHAR", "raw_concentration": "DOUBLE", "aqi": "INTEGER",
               "category": "INTEGER", "site_name": "VARCHAR", "agency_name": "VARCHAR", "aqs_code": "VARCHAR",
               "full_aqs_code": "VARCHAR"}
    spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    connection.execute(f"CREATE TABLE rows AS SELECT * FROM read_csv('{data_root}/*/*.csv', header=false, "
                       f"quote='\"', columns={{{spec}}})")
    return connection


def duckdb_seconds(data_root: Path, where: str, runs: int) -> float:
    connection = duckdb_table(data_root)

    def once():
        started = time.perf_counter()
        connection.execute(f"SELECT * FROM rows {where}").fetchall()
        return (time.perf_counter() - started,)

    return median_of(runs, once)[0]


def duckdb_copy_seconds(data_root: Path, where: str, output_format: str, runs: int) -> float:
    """DuckDB writing the rows as CSV or JSON lines to /dev/null: what bin/query's output is held to."""
    connection = duckdb_table(data_root)
    kind = {"csv": "CSV", "jsonl": "JSON"}[output_format]

    def once():
        started = time.perf_counter()
        connection.execute(f"COPY (SELECT * FROM rows {where}) TO '/dev/null' (FORMAT {kind})")
        return (time.perf_counter() - started,)

    return median_of(runs, once)[0]


def answer_bytes(gateway: str) -> tuple[int, int]:
    """(bytes, messages) of the full scan's answer in the largest chunks, as the gateway sends it:
    what the full scan's floor moves."""
    with grpc.insecure_channel(gateway, options=CHANNEL_OPTIONS) as channel:
        call = channel.unary_stream("/airquality.v1.AirQuality/Query", pb.QueryRequest.SerializeToString)
        request = pb.QueryRequest(request_id=f"bytes-{os.getpid()}", filter=make_filter(), chunk_size=MAX_CHUNK_SIZE)
        sizes = [len(message) for message in call(request, timeout=60)]
    return sum(sizes), len(sizes)


def query_cli_seconds(gateway: str, arguments: list[str], runs: int) -> float:
    """bin/query with `arguments` run in this process (so that Python's start-up, which DuckDB's
    figure does not pay either, is left out), its output to /dev/null."""
    from daemons.cli import query as cli

    def once():
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            started = time.perf_counter()
            try:
                cli.main(["--host", gateway, *arguments], standalone_mode=False)
            except SystemExit as exit_status:
                status = exit_status.code
            else:
                status = 0
            if status != 0:
                raise RuntimeError(f"bin/query {arguments} exited with {status}")
            return (time.perf_counter() - started,)

    return median_of(runs, once)[0]


def concurrent_clients(gateway: str, sites: list[str], clients: int = 16, seconds: float = 10.0,
                       cpu: Callable[[], float] = lambda: 0.0) -> tuple[float, float, float]:
    """(queries per second, p99 seconds, `cpu` seconds per query) of `clients` clients, each on a
    channel of its own, asking one-site queries over all days in turn for `seconds` (after a
    second's warm-up), the load generator on the same machine."""
    with contextlib.ExitStack() as stack:
        channels = [stack.enter_context(FireClient(gateway)) for _ in range(clients)]

        def ask(index: int, turn: int) -> None:
            stream = channels[index].query(make_filter(sites=[sites[(index + turn * clients) % len(sites)]]))
            for _ in stream:
                pass
            if stream.completeness is None or not stream.completeness.complete:
                raise RuntimeError("a benchmark answer was not complete")

        return closed_loop(ask, clients, seconds, cpu)


def first_chunk_under_load(client: FireClient, gateway: str, site: str, scans: int, samples: int) -> float:
    with full_scans(gateway, scans):
        time.sleep(0.5)  # let the scans reach full flow before sampling
        latencies = [timed_query(client, make_filter(sites=[site]))[0] for _ in range(samples)]
    return statistics.median(latencies)


def memory_figures(cluster, scale: int) -> list[Figure]:
    figures = []
    for program in PROGRAMS:
        rss = psutil.Process(cluster.pid(program)).memory_info().rss
        target = 3072.0 if scale > 1 else 200.0 if program.startswith("worker") else None
        figures.append(Figure(f"resident memory of {program}", rss / 2**20, "MB", target))
        if held := rows_held(cluster, program):
            figures.append(Figure(f"resident memory of {program} per row held ({held:,} rows)", rss / held, "B"))
    return figures


def rows_held(cluster, program: str) -> int:
    """Rows of the copies the program loaded last, from its partition_loaded events."""
    return sum({event["partition"]: event["rows"] for event in cluster.events(program, "partition_loaded")}.values())


def restart_figures(cluster, program: str) -> tuple[float, float]:
    """Kills the program and waits for supervisord's replacement to serve.

    Returns (spawn to serving, as the new daemon measured it from its own process start;
    kill to serving, which adds supervisord's respawn delay).
    """
    old = cluster.pid(program)
    killed = time.time()
    os.kill(old, signal.SIGKILL)
    started = wait_for(lambda: [e for e in cluster.events(program, "daemon_started") if epoch_of(e) > killed], 15,
                       f"{program} to serve again")[-1]
    return started["startup_seconds"], epoch_of(started) - killed


def default_data() -> Path:
    return REAL_DATA if REAL_DATA.is_dir() else Path("var/fire-data").resolve()


def scaled_data(scale: int) -> Path:
    """The generated set `scale` times the real season's size, written to var/ on first use."""
    root = Path(f"var/fire-data-x{scale}").resolve()
    if generate_if_absent(root, REAL_SET_SITES * scale, DEFAULT_SEED) is not None:
        print(f"generated {root}")
    return root


@contextlib.contextmanager
def private_cluster(data_root: Path, timeout: float) -> Iterator[tuple[Any, float]]:
    """A cluster on `data_root` with an empty partition cache (so its first start parses every CSV),
    and the seconds from launch until all six served."""
    with tempfile.TemporaryDirectory(prefix="fire-bench-") as scratch:
        home = Path(scratch)
        launched = time.time()
        cluster = start_cluster(home / "cluster", data_root, home / "cache", wait=False)
        try:
            cluster.wait_serving(timeout=timeout)
            yield cluster, time.time() - launched
        finally:
            cluster.stop()


def run(data_root: Path | None, runs: int, scale: int) -> None:
    data_root = data_root or default_data()
    if scale == 1:
        with private_cluster(data_root, 300) as (cluster, first_start):
            first = Figure("all six serving, first start parsing every CSV", first_start, "s", 2.0)
            measured = measure(cluster, data_root, runs)
        # with the cluster stopped: the stand-ins have the machine to themselves, as the first start had
        floor = Figure("  twelve bare interpreters' imports and Arrow's parse alone", start_floor.floor(data_root), "s")
        figures = [first, floor, *measured]
        print(f"data: {data_root}")
    else:
        with private_cluster(data_root, 300) as (cluster, _), FireClient(cluster.gateway) as client:
            baseline = into_columns(cluster, client, runs)
        large = scaled_data(scale)
        with private_cluster(large, 60 + 30 * scale) as (cluster, first_start):
            figures = [Figure("all six serving, first start parsing every CSV", first_start, "s", 2.0 * scale)]
            figures += measure(cluster, large, runs, scale, baseline)
        print(f"data: {large}, {scale} times the size of {data_root}")
    for figure in figures:
        print(figure.line())


def cache_dir(cluster) -> Path:
    """Where the cluster's daemons keep their parsed partitions."""
    return Path(json.loads(cluster.config_path("leader_b").read_text())["data"]["cache_dir"])


def cpu_seconds(cluster) -> float:
    """CPU seconds used so far by the six daemons and by this process, the client."""
    processes = [psutil.Process(cluster.pid(program)) for program in PROGRAMS] + [psutil.Process()]
    return sum(sum(process.cpu_times()[:2]) for process in processes)


@dataclass
class IntoColumns:
    """Medians of one query received as column batches."""

    first: float  # seconds to the first chunk
    total: float  # seconds in all
    rows: int
    cpu: float  # CPU seconds of the six daemons and the client: what grows with the data, whatever
    # else the machine runs (the wall time of the same query swings by a fifth from run to run here)


def into_columns(cluster, client: FireClient, runs: int) -> dict[str, IntoColumns]:
    """The PM query and the full scan received as column batches."""
    for _ in range(2):  # warm up connections and caches
        timed_query(client, make_filter(**HEADLINE))

    def once(query_filter) -> tuple[float, ...]:
        before = cpu_seconds(cluster)
        first, total, rows = timed_query(client, query_filter)
        return first, total, rows, cpu_seconds(cluster) - before

    return {name: IntoColumns(*median_of(runs, functools.partial(once, query_filter)))
            for name, query_filter in (("PM", make_filter(**HEADLINE)), ("full scan", make_filter()))}


def measure(cluster, data_root: Path, runs: int, scale: int = 1,
            baseline: dict[str, IntoColumns] | None = None) -> list[Figure]:
    """Every figure on a running cluster. At `scale` > 1, `baseline` holds into_columns() on the real-size
    set, and the targets are the large set's: linear growth, memory per row held, 3 GB a daemon."""
    figures = []

    def at_scale(target: float) -> float | None:  # the real set's targets say nothing of a larger set
        return target if scale == 1 else None

    with FireClient(cluster.gateway) as client:
        received = into_columns(cluster, client, runs)
        site = next(iter(client.aggregate(group_by=["site"]).groups)).key[0]
        for name, label, where, target in (
                ("PM", "PM2.5+PM10, AQI 0-100", "WHERE parameter IN ('PM2.5', 'PM10') AND aqi BETWEEN 0 AND 100", 0.5),
                ("full scan", "full scan", "", 1.2)):
            query = received[name]
            figures += [Figure(f"{label} ({query.rows:,.0f} rows): total", query.total, "s", at_scale(target),
                               duckdb_seconds(data_root, where, runs)),
                        Figure(f"{label}: first chunk", query.first, "s", 0.050 if name == "PM" else None),
                        Figure(f"{label}: rows per second (millions)", query.rows / query.total / 1e6, "M/s"),
                        Figure(f"{label}: CPU of the six daemons and the client", query.cpu, "s")]
            if baseline:
                figures += [Figure(f"{label}: {scale}x set against real-size set, time", query.total / baseline[name].total,
                                   "x", 1.05 * scale),
                            Figure(f"{label}: {scale}x set against real-size set, CPU", query.cpu / baseline[name].cpu,
                                   "x", 1.05 * scale)]

        def arrow_once():
            started = time.perf_counter()
            client.query(make_filter(), chunk_size=65536).to_arrow()
            return (time.perf_counter() - started,)

        def duckdb_arrow_once():
            started = time.perf_counter()
            duckdb_table(data_root).sql("SELECT * FROM rows").to_arrow_table()
            return (time.perf_counter() - started,)

        figures.append(Figure("full scan into a client pyarrow.Table", median_of(runs, arrow_once)[0], "s",
                              duckdb=median_of(runs, duckdb_arrow_once)[0]))
        if scale == 1:
            total, messages = answer_bytes(cluster.gateway)
            figures.append(Figure(f"  its {total / 1e6:.1f} MB through the same hops, bare gRPC",
                                  grpc_floor.bulk(total, total // messages, runs), "s"))

        headline_where = "WHERE parameter IN ('PM2.5', 'PM10') AND aqi BETWEEN 0 AND 100"
        headline_arguments = ["--parameter", "PM2.5", "--parameter", "PM10", "--min-aqi", "0", "--max-aqi", "100"]
        for label, arguments, where in (("PM2.5+PM10, AQI 0-100", headline_arguments, headline_where),
                                        ("full scan", [], "")):
            for output_format in ("csv", "jsonl"):
                figures.append(Figure(f"bin/query --format {output_format}, {label}", query_cli_seconds(
                    cluster.gateway, [*arguments, "--format", output_format], runs), "s",
                    duckdb=duckdb_copy_seconds(data_root, where, output_format, runs)))

        _, total, rows = median_of(runs, lambda: timed_query(client, make_filter(sites=[site])))
        quoted = site.replace("'", "''")
        figures.append(Figure(f"narrow query, one site ({rows:,.0f} rows)", total, "s", at_scale(0.020),
                              duckdb_seconds(data_root, f"WHERE site_name = '{quoted}'", runs)))

        one_day = {"sites": [site], "datetime_from": "2020-08-15", "datetime_to": "2020-08-15"}
        _, total, rows = median_of(runs, lambda: timed_query(client, make_filter(**one_day)))
        figures.append(Figure(f"one site, one day: four partitions pruned ({rows:,.0f} rows)", total, "s", at_scale(0.010),
                              duckdb_seconds(data_root, f"WHERE site_name = '{quoted}' AND datetime "
                                             "BETWEEN '2020-08-15T00:00' AND '2020-08-15T23:59'", runs)))

        sites = [group.key[0] for group in client.aggregate(group_by=["site"]).groups][:200]
        rate, p99, cpu = concurrent_clients(cluster.gateway, sites, cpu=functools.partial(cpu_seconds, cluster))
        figures += [Figure("16 clients, one-site queries over all days: queries/s", rate, "q/s"),
                    Figure("16 clients, one-site queries over all days: p99", p99, "s", at_scale(0.200)),
                    Figure("16 clients: CPU per query, six daemons and clients", cpu * 1000, "ms")]
        if scale == 1:
            rate, p99, cpu = grpc_floor.floor()
            figures += [Figure("  the same calls and messages, bare gRPC: queries/s", rate, "q/s"),
                        Figure("  the same calls and messages, bare gRPC: p99", p99, "s"),
                        Figure("  the same calls and messages, bare gRPC: CPU per query", cpu * 1000, "ms"),
                        Figure("  the same queries through the daemons' code in one process, no gRPC: CPU per query",
                               in_process.cpu_per_query(data_root, cache_dir(cluster), sites) * 1000, "ms")]
            # One client asking in turn: what the stack gives without any concurrency to exploit.
            rate, _, cpu = concurrent_clients(cluster.gateway, sites, clients=1,
                                              cpu=functools.partial(cpu_seconds, cluster))
            figures += [Figure("1 client, one-site queries one after another: queries/s", rate, "q/s"),
                        Figure("1 client: CPU per query, six daemons and the client", cpu * 1000, "ms")]

        def aggregate_once():
            started = time.perf_counter()
            client.aggregate(group_by=["parameter"])
            return (time.perf_counter() - started,)

        figures.append(Figure("aggregate grouped by parameter, all rows", median_of(runs, aggregate_once)[0], "s",
                              at_scale(0.050)))

        gateway = psutil.Process(cluster.pid("gateway_a"))
        after_one_scan = gateway.memory_info().rss  # the full scans above have been through it already
        figures.append(Figure("small query's first chunk during 4 full scans", first_chunk_under_load(
            client, cluster.gateway, site, scans=4, samples=max(5, runs)), "s", at_scale(0.100)))
        for _ in range(3):
            timed_query(client, make_filter())
        figures.append(Figure("gateway RSS growth, one full scan -> 4 concurrent + 3 more",
                              (gateway.memory_info().rss - after_one_scan) / 2**20, "MB"))
        figures += memory_figures(cluster, scale)
        for program in ("worker_c", "leader_e"):
            spawn, kill = zip(*(restart_figures(cluster, program) for _ in range(3)))
            figures.append(Figure(f"{program}: spawn to serving, partition cached", statistics.median(spawn), "s",
                                  at_scale(0.5)))
            figures.append(Figure(f"{program}: kill -9 to serving again (supervisord)", statistics.median(kill), "s"))
    return figures
