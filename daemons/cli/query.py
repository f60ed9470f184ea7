"""bin/query: ask the gateway for rows, a count or aggregates.

Exit codes: 0 complete answer, 3 partial answer (the missing partitions are named on stderr),
2 bad arguments, 1 any other failure.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
import grpc

from daemons.cli.options import tls_option
from daemons.cli.output import RowWriter
from daemons.client import DEFAULT_TARGET, Completeness, FireClient, make_filter
from daemons.config import MAX_CHUNK_SIZE
from daemons.query.filter import GROUP_KEYS
from daemons.query.wire import ColumnBatch
from daemons.rpc import airquality_pb2 as pb
from daemons.storage.columns import FIELDS

EXIT_COMPLETE, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
AGGREGATES = ("count", "min", "max", "mean")
METRICS = ("concentration", "aqi")


def _bbox(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        numbers = tuple(float(part) for part in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != 4:
        raise click.BadParameter(f"expected four numbers MIN_LAT,MIN_LON,MAX_LAT,MAX_LON, got {value!r}")
    return numbers


def _report(completeness: Completeness | None) -> int:
    if completeness is None:
        click.echo("error: the answer ended without its last chunk", err=True)
        return EXIT_FAILURE
    if not completeness.complete:
        click.echo(f"partial result: missing partitions: {completeness.describe_missing()}", err=True)
        return EXIT_PARTIAL
    return EXIT_COMPLETE


def _aggregate_rows(answer: pb.AggregateResponse, aggregates: Sequence[str]) -> Iterator[list[object]]:
    for group in answer.groups:
        row: list[object] = [*group.key, group.rows]
        for metric in METRICS:
            stats = getattr(group, metric)
            for name in aggregates:
                if name == "count":
                    row.append(stats.count)
                else:
                    row.append(getattr(stats, name) if stats.HasField(name) else None)
        yield row


def _stream_rows(client: FireClient, query_filter: pb.QueryFilter, chunk_size: int | None, request_id: str | None,
                 writer: RowWriter) -> int:
    # The largest chunks unless asked otherwise: each chunk's distinct values are made into text once
    # (daemons/query/text.py), and a larger chunk has fewer of them per row.
    stream = client.query(query_filter, chunk_size=MAX_CHUNK_SIZE if chunk_size is None else chunk_size,
                          request_id=request_id)
    total = client.count(query_filter)[0] if sys.stderr.isatty() else None
    progress = contextlib.nullcontext() if total is None else click.progressbar(length=total, label="rows",
                                                                                 file=sys.stderr)
    with progress as bar:
        writer.write_batches(stream if bar is None else _counted(stream, bar))
    return _report(stream.completeness)


def _counted(batches: Iterable[ColumnBatch], bar: Any) -> Iterator[ColumnBatch]:
    """The batches, each moving the progress bar on by its rows as it arrives."""
    for batch in batches:
        bar.update(len(batch))
        yield batch


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--host", default=DEFAULT_TARGET, show_default=True, help="The gateway, host:port.")
@tls_option
@click.option("--parameter", "parameters", multiple=True, help="PM2.5, PM10, OZONE, NO2, SO2 or CO; repeatable.")
@click.option("--site", "sites", multiple=True, help="Site name, exact, any case; repeatable.")
@click.option("--agency", "agencies", multiple=True, help="Agency name, exact, any case; repeatable.")
@click.option("--aqs", "aqs_codes", multiple=True, help="AQS code or full AQS code; repeatable.")
@click.option("--bbox", callback=_bbox, metavar="MIN_LAT,MIN_LON,MAX_LAT,MAX_LON", help="Bounding box, inclusive.")
@click.option("--from", "datetime_from", metavar="WHEN", help="From YYYY-MM-DD[THH:MM] (UTC), inclusive.")
@click.option("--to", "datetime_to", metavar="WHEN", help="To YYYY-MM-DD[THH:MM] (UTC); a date covers its day.")
@click.option("--min-aqi", type=float)
@click.option("--max-aqi", type=float)
@click.option("--min-conc", "min_concentration", type=float)
@click.option("--max-conc", "max_concentration", type=float)
@click.option("--chunk-size", type=int, help="Rows per chunk (1..65536).")
@click.option("--count", is_flag=True, help="Print only the number of matching rows.")
@click.option("--group-by", multiple=True, type=click.Choice(GROUP_KEYS), help="Aggregate per group; repeatable.")
@click.option("--agg", "aggregates", multiple=True, type=click.Choice(AGGREGATES),
              help="Aggregates of concentration and AQI (default: all); repeatable.")
@click.option("--format", "output_format", type=click.Choice(["csv", "jsonl", "table"]), default="csv",
              show_default=True)
@click.option("--deadline", type=float, default=300.0, show_default=True,
              help="Seconds for the whole request, retries included.")
@click.option("--request-id", help="Request id (default: a random one).")
def main(host: str, parameters: tuple[str, ...], sites: tuple[str, ...], agencies: tuple[str, ...],
         aqs_codes: tuple[str, ...], bbox: tuple[float, float, float, float] | None, datetime_from: str | None,
         datetime_to: str | None, min_aqi: float | None, max_aqi: float | None, min_concentration: float | None,
         max_concentration: float | None, chunk_size: int | None, count: bool, group_by: tuple[str, ...],
         aggregates: tuple[str, ...], output_format: str, deadline: float, request_id: str | None,
         tls_dir: Path | None) -> None:
    """Query the wildfire air-quality service through its gateway."""
    query_filter = make_filter(parameters=parameters, sites=sites, agencies=agencies, aqs_codes=aqs_codes, bbox=bbox,
                               datetime_from=datetime_from, datetime_to=datetime_to, min_aqi=min_aqi, max_aqi=max_aqi,
                               min_concentration=min_concentration, max_concentration=max_concentration)
    if count and (group_by or aggregates):
        raise click.UsageError("--count cannot be combined with --group-by or --agg")
    try:
        with FireClient(host, deadline_seconds=deadline, tls_dir=tls_dir) as client:
            if count:
                total, answer = client.count(query_filter)
                click.echo(total)
                status = _report(Completeness(answer.complete, total, list(answer.missing_partitions),
                                              list(answer.partitions)))
            elif group_by or aggregates:
                chosen = aggregates or AGGREGATES
                answer = client.aggregate(query_filter, group_by)
                header = [*group_by, "rows", *(f"{m}_{a}" for m in METRICS for a in chosen)]
                RowWriter(output_format, header).write(_aggregate_rows(answer, chosen))
                status = _report(Completeness(answer.complete, 0, list(answer.missing_partitions),
                                              list(answer.partitions)))
            else:
                status = _stream_rows(client, query_filter, chunk_size, request_id, RowWriter(output_format, FIELDS))
    except grpc.RpcError as error:
        click.echo(f"error: {error.code().name}: {error.details()}", err=True)
        status = EXIT_USAGE if error.code() == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILURE
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_FAILURE
    sys.exit(status)


if __name__ == "__main__":
    main(prog_name="query")
