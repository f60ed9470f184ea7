"""bin/benchmark: `query` (speed, start-up, memory, DuckDB ratios), `health` (detection times),
`failover` (the cost of one failure), `hosts` (host faults on network namespaces), `tls` (what
mutual TLS costs) or `observability` (what metrics scrapes and the dashboard cost)."""

from __future__ import annotations

from pathlib import Path

import click

from tests.benchmarks import failover_bench, health_bench, hosts_bench, observability_bench, query_bench, tls_bench
from tests.hosts import LAYOUTS

data_option = click.option("--data", "data_root", type=click.Path(file_okay=False, path_type=Path),
                           help="AirNow data root (default: ../shared/fire-data beside the checkout, else var/fire-data).")


@click.group()
def main() -> None:
    """End-to-end benchmarks against a private cluster under real supervisord."""


@main.command()
@data_option
@click.option("--runs", default=5, show_default=True, help="Repetitions per timed query (the median is shown).")
@click.option("--scale", default=1, show_default=True, type=click.IntRange(min=1),
              help="Also measure on a generated set N times the real season's size (var/fire-data-xN, written on "
                   "first use), against the --data set's figures.")
def query(data_root: Path | None, runs: int, scale: int) -> None:
    """Query speed, start-up and memory next to the targets and to DuckDB."""
    query_bench.run(data_root, runs, scale)


@main.command()
@data_option
@click.option("--faults", default=20, show_default=True, help="Faults of each kind (kill -9, SIGSTOP).")
def health(data_root: Path | None, faults: int) -> None:
    """Failure detection and recovery times, idle cost, false alarms under load."""
    health_bench.run(data_root, faults)


@main.command()
@data_option
@click.option("--runs", default=5, show_default=True, help="Full scans per figure (the median is shown).")
def failover(data_root: Path | None, runs: int) -> None:
    """Query time with one daemon down against all healthy, and the cost of a mid-stream failover."""
    failover_bench.run(data_root, runs)


@main.command()
@data_option
@click.option("--faults", default=10, show_default=True,
              help="Faults of each kind (host loss, isolation and its heal) per layout, spread over the hosts "
                   "other than the gateway's.")
@click.option("--runs", default=3, show_default=True, help="Full scans per figure (the median is shown).")
@click.option("--layout", "layouts", multiple=True, type=click.Choice(list(LAYOUTS)),
              help="Repeatable (default: every layout of more than one host).")
def hosts(data_root: Path | None, faults: int, runs: int, layouts: tuple[str, ...]) -> None:
    """Host loss, isolation and heal times, and full scans with a host down, on network namespaces (needs root)."""
    hosts_bench.run(data_root, faults, runs, layouts or tuple(LAYOUTS))


@main.command()
@data_option
@click.option("--runs", default=5, show_default=True, help="Full scans per cluster (the median is shown).")
@click.option("--faults", default=10, show_default=True, help="Faults of each kind (kill -9, SIGSTOP) per cluster.")
def tls(data_root: Path | None, runs: int, faults: int) -> None:
    """Mutual TLS against plaintext in one run: full scan, idle CPU, detection times."""
    tls_bench.run(data_root, runs, faults)


@main.command()
@data_option
def observability(data_root: Path | None) -> None:
    """Idle CPU with nobody watching, with Prometheus scraping every 5 s, and with a dashboard open."""
    observability_bench.run(data_root)


main(prog_name="benchmark")
