"""bin/healthlog: the daemons' health history from their event logs, and the cluster's live status.

    healthlog                 summary per (observer, neighbour) of the health transitions
    healthlog --follow        every daemon's log at once, one readable line per event
    healthlog --json [-f]     the selected event lines exactly as written (NDJSON)
    healthlog status          the gateway's live view of every daemon
    healthlog timeline        one row per watched link, its status over the last hour (--since)
    healthlog --gateway H:P   any of the above modes from every daemon's log, through the gateway
                              (AirQuality.Events), for daemons on several hosts

Exit codes: 0 done (status: every daemon healthy), 1 (status) a daemon not healthy or an observer
not reachable, 2 bad arguments or the gateway not reachable, 3 (--gateway, summary) some daemons
could not be heard, so their events are missing from it (named on stderr).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import click
import grpc

import daemons
from daemons import events
from daemons.channels import CHANNEL_OPTIONS, ReadStream
from daemons.cli.options import tls_option
from daemons.cli.output import RowWriter
from daemons.client import DEFAULT_TARGET, client_channel
from daemons.errors import describe_error
from daemons.healthlog.follow import LogFollower
from daemons.healthlog.summary import (
    CONSECUTIVE_FAILURES,
    DAEMON,
    DEGRADED,
    EVENT,
    FROM,
    HEALTHY,
    LATENCY_MS,
    NEIGHBOR,
    REASON,
    TO,
    UNAVAILABLE,
    UNKNOWN,
    ClusterHealth,
    Event,
    EventFilter,
    LinkSummary,
    cluster_health,
    event_time,
    parse_since,
    select_events,
    summarize,
)
from daemons.healthlog.timeline import CELL, build_timelines, log_files
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import airquality_pb2_grpc as pb_grpc

# The event types --follow and --json show; showing one more is adding it here.
DISPLAYED_EVENTS = (events.HEALTH_TRANSITION, events.PARTITION_FAILOVER)
POLL_INTERVAL_SECONDS = 0.1
EXIT_HEALTHY, EXIT_UNHEALTHY, EXIT_UNREACHABLE, EXIT_PARTIAL = 0, 1, 2, 3
# A following reader asks the gateway again this long after losing it (it was being restarted).
GATEWAY_RETRY_SECONDS = 1.0
# The gateway's stream says something every second; a connection whose HTTP/2 PINGs go unanswered
# this long is behind a cut link, which sends no error of its own.
GATEWAY_KEEPALIVE_OPTIONS = [("grpc.keepalive_time_ms", 1000), ("grpc.keepalive_timeout_ms", 3000)]
STATUS_COLOURS = {UNKNOWN: None, HEALTHY: "green", DEGRADED: "yellow", UNAVAILABLE: "red"}
SUMMARY_HEADER = ("observer", "neighbor", "status", "transitions", "unavailable", "detect", "recover",
                  "last failure")
STATUS_HEADER = ("observer", "neighbor", "status", "since", "failures", "latency ms", "success %")
NAME_WIDTH = 9  # the longest program name, gateway_a, so the columns of --follow line up


def format_duration(seconds: float | None) -> str:
    """85 ms, 2.4 s, 3m12s, 1h05m, 2d03h: as precise as a reader of a duration that size needs."""
    if seconds is None:
        return "-"
    if seconds < 0.9995:
        milliseconds = seconds * 1000
        return f"{milliseconds:.2g} ms" if milliseconds < 9.95 else f"{milliseconds:.0f} ms"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def format_event(event: Event) -> str:
    """One line per event, e.g. `08:01:02.123 leader_b   worker_c   healthy -> degraded  (1 failure,
    0.8 ms) UNAVAILABLE: ...`; an event type without a layout of its own lists its fields."""
    clock = event_time(event).strftime("%H:%M:%S.%f")[:-3]
    if event[EVENT] == events.HEALTH_TRANSITION.name:
        failures = event[CONSECUTIVE_FAILURES]
        facts = [f"{failures} failure{'' if failures == 1 else 's'}"]
        if event[LATENCY_MS] is not None:
            facts.append(format_duration(event[LATENCY_MS] / 1000))
        detail = (f"{event[NEIGHBOR]:<{NAME_WIDTH}}  {event[FROM]} -> {event[TO]}  ({', '.join(facts)}) "
                  f"{event[REASON]}")
    else:
        fields = next(kind.fields for kind in DISPLAYED_EVENTS if kind.name == event[EVENT])
        detail = f"{event[EVENT]}  " + " ".join(f"{name}={event[name]}" for name in fields)
    return f"{clock} {event[DAEMON]:<{NAME_WIDTH}}  {detail}"


def summary_rows(links: Iterable[LinkSummary]) -> list[list[str]]:
    return [[link.observer, link.neighbor, link.status, str(link.transitions),
             format_duration(link.unavailable_seconds),
             format_duration(link.last_outage.detect_seconds if link.last_outage else None),
             format_duration(link.last_outage.recover_seconds if link.last_outage else None),
             link.last_failure_reason or "-"]
            for link in links]


def status_rows(health: ClusterHealth) -> list[list[str]]:
    return [[row.observer, row.neighbor, row.status,
             row.since.strftime("%Y-%m-%d %H:%M:%S") if row.since else "-", str(row.consecutive_failures),
             "-" if row.last_latency_ms is None else f"{row.last_latency_ms:.1f}", f"{row.success_rate_percent:.0f}"]
            for row in health.rows]


def default_log_dir() -> Path:
    """./logs when there is one, else the checkout's, so the tool works from any folder."""
    here = Path("logs")
    return here if here.is_dir() else Path(daemons.__file__).resolve().parents[1] / "logs"


def _since(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_since(value, datetime.now(UTC))
    except ValueError:
        raise click.BadParameter(f"expected an age (30s, 15m, 2h, 1d) or an ISO 8601 time, got {value!r}") from None


def _show(selected: Iterable[tuple[str, Event]], as_json: bool) -> None:
    for line, event in selected:
        if as_json:
            click.echo(line)
        else:
            click.echo(click.style(format_event(event), fg=STATUS_COLOURS.get(event.get(TO, UNKNOWN))))


def _follow(follower: LogFollower, event_filter: EventFilter, as_json: bool) -> int:
    """Shows the selected events as they are written until Ctrl-C; returns the lines skipped."""
    skipped = 0
    try:
        while True:
            selected, unreadable = select_events((line for _, line in follower.poll()), event_filter)
            skipped += unreadable
            _show(selected, as_json)
            time.sleep(POLL_INTERVAL_SECONDS)
    except KeyboardInterrupt:
        return skipped


def _read_once(follower: LogFollower, event_filter: EventFilter, as_json: bool) -> int:
    return _print_once([line for _, line in follower.poll()], event_filter, as_json)


def _print_once(lines: list[str], event_filter: EventFilter, as_json: bool) -> int:
    """Prints the summary table, or with --json the selected lines; returns the lines skipped.

    The summary is computed from every transition of a link, so that --to picks the links whose
    current status it names instead of distorting their history."""
    if as_json:
        selected, skipped = select_events(lines, event_filter)
        _show(selected, as_json)
        return skipped
    selected, skipped = select_events(lines, replace(event_filter, to_statuses=()))
    links = summarize((event for _, event in selected), datetime.now(UTC))
    wanted = event_filter.to_statuses
    shown = [link for link in links if not wanted or link.status in wanted]
    RowWriter("table", SUMMARY_HEADER).write(summary_rows(shown))
    return skipped


class GatewayEvents:
    """Every daemon's log lines through the gateway (AirQuality.Events), with which daemons it
    cannot hear. Following, a lost gateway is asked again from where each log was read up to, so
    that nothing is missed or shown twice."""

    def __init__(self, target: str, follow: bool, event_names: Iterable[str], tls_dir: Path | None = None):
        self.target = target
        self.tls_dir = tls_dir
        self.follow = follow
        self.event_names = list(event_names)
        self.positions: dict[str, pb.LogPosition] = {}
        self.unheard: list[str] = []

    def batches(self) -> Iterator[list[str]]:
        """Lists of lines as they arrive; ends when caught up (not following) or on Ctrl-C."""
        connected = False
        while True:
            try:
                with client_channel(self.target, self.tls_dir, [*CHANNEL_OPTIONS, *GATEWAY_KEEPALIVE_OPTIONS]) as channel:
                    request = pb.EventsRequest(follow=self.follow, event_names=self.event_names,
                                               resume=list(self.positions.values()))
                    for response in ReadStream(pb_grpc.AirQualityStub(channel).Events(request)):
                        if not connected and self.follow and self.positions:
                            click.echo(f"{_clock_now()} reading through the gateway at {self.target} again", err=True)
                        connected = True
                        if response.HasField("hearing"):
                            self._hearing(response.hearing)
                        if response.daemon:
                            self.positions[response.daemon] = response.position
                            if response.lines:
                                yield list(response.lines)
                if not self.follow:
                    return
                reason = "it ended the stream (stopping)"
            except grpc.RpcError as error:
                if not self.follow or not self.positions:
                    click.echo(f"error: the gateway at {self.target} did not answer: {describe_error(error)}", err=True)
                    sys.exit(EXIT_UNREACHABLE)
                reason = describe_error(error)
            if connected:
                click.echo(f"{_clock_now()} lost the gateway at {self.target}: {reason}; asking again", err=True)
            connected = False
            time.sleep(GATEWAY_RETRY_SECONDS)

    def _hearing(self, hearing: pb.Hearing) -> None:
        self.unheard = list(hearing.unheard)
        if not self.follow:
            return
        if hearing.unheard:
            click.echo(f"{_clock_now()} cannot hear from {len(hearing.unheard)}: " + "; ".join(hearing.unheard), err=True)
        else:
            click.echo(f"{_clock_now()} hearing all {len(hearing.heard)} daemons: {', '.join(hearing.heard)}", err=True)


def _clock_now() -> str:
    return datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]


def _through_gateway(target: str, follow: bool, event_filter: EventFilter, as_json: bool,
                     tls_dir: Path | None) -> int:
    """--gateway: as the modes over a log folder, from the gateway's merged stream; returns the
    lines skipped. Exits 3 after a summary that misses daemons it could not hear."""
    reader = GatewayEvents(target, follow, event_filter.event_names, tls_dir)
    if follow:
        skipped = 0
        try:
            for lines in reader.batches():
                selected, unreadable = select_events(lines, event_filter)
                skipped += unreadable
                _show(selected, as_json)
        except KeyboardInterrupt:
            pass
        return skipped
    skipped = _print_once([line for lines in reader.batches() for line in lines], event_filter, as_json)
    if reader.unheard:
        click.echo("warning: these daemons could not be heard, so their events are missing: "
                   + "; ".join(reader.unheard), err=True)
        sys.exit(EXIT_PARTIAL)
    return skipped


# Where the event logs are read from, for every mode: one of the two.
log_dir_option = click.option(
    "--log-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the <program>.log files (default: ./logs if present, else the checkout's logs).")
gateway_option = click.option(
    "--gateway", metavar="HOST:PORT",
    help="Read every daemon's log through the gateway, wherever the daemons run, instead of a log folder.")


def _one_source(gateway: str | None, log_dir: Path | None) -> None:
    if gateway is not None and log_dir is not None:
        raise click.UsageError("--gateway and --log-dir are two sources: give one")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"],
                                                            "max_content_width": 100})
@log_dir_option
@gateway_option
@tls_option
@click.option("--follow", "-f", is_flag=True, help="Keep reading, like tail -F; Ctrl-C stops.")
@click.option("--json", "as_json", is_flag=True, help="Print the selected event lines as written (NDJSON).")
@click.option("--since", callback=_since, metavar="AGE|WHEN",
              help="Only events from this age (30s, 15m, 2h, 1d) or ISO 8601 time (UTC unless a zone is given).")
@click.option("--daemon", "observers", multiple=True, metavar="NAME", help="Observer; repeatable.")
@click.option("--neighbor", "neighbors", multiple=True, metavar="NAME", help="Observed daemon; repeatable.")
@click.option("--to", "to_statuses", multiple=True, type=click.Choice(events.HEALTH_STATUSES),
              help="Status transitioned to (in the summary: the links now in it); repeatable.")
@click.pass_context
def main(ctx: click.Context, log_dir: Path | None, gateway: str | None, tls_dir: Path | None, follow: bool,
         as_json: bool, since: datetime | None, observers: tuple[str, ...], neighbors: tuple[str, ...],
         to_statuses: tuple[str, ...]) -> None:
    """The health history in the daemons' event logs: a summary per observer and neighbour, or with
    --follow each event as it is written. Filters apply to every mode."""
    if ctx.invoked_subcommand is not None:
        return
    _one_source(gateway, log_dir)
    log_dir = log_dir or default_log_dir()
    if gateway is None and not follow and not log_dir.is_dir():
        raise click.UsageError(f"no log folder at {log_dir}")
    event_filter = EventFilter(tuple(kind.name for kind in DISPLAYED_EVENTS), since, observers, neighbors,
                               to_statuses)
    try:
        if gateway is not None:
            skipped = _through_gateway(gateway, follow, event_filter, as_json, tls_dir)
        else:
            with LogFollower(log_dir) as follower:
                skipped = (_follow if follow else _read_once)(follower, event_filter, as_json)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    if skipped:
        click.echo(f"skipped {skipped} line{'' if skipped == 1 else 's'} that are not events", err=True)


@main.command()
@log_dir_option
@gateway_option
@tls_option
@click.option("--since", callback=_since, default="1h", show_default=True, metavar="AGE|WHEN",
              help="The window's start: an age (30s, 15m, 2h, 1d) or an ISO 8601 time.")
@click.option("--width", type=click.IntRange(20, 400), default=60, show_default=True, help="Cells per row.")
def timeline(log_dir: Path | None, gateway: str | None, tls_dir: Path | None, since: datetime, width: int) -> None:
    """One row per watched link, coloured by its status over time, with its transitions' times (from
    the log folder with its rotated backups, or through the gateway)."""
    _one_source(gateway, log_dir)
    only_transitions = EventFilter((events.HEALTH_TRANSITION.name,), None, (), (), ())
    if gateway is not None:
        reader = GatewayEvents(gateway, False, only_transitions.event_names, tls_dir)
        lines: Iterable[str] = (line for batch in reader.batches() for line in batch)
    else:
        folder = log_dir or default_log_dir()
        if not folder.is_dir():
            raise click.UsageError(f"no log folder at {folder}")
        lines = (line for path in log_files(folder) for line in path.read_text(errors="replace").splitlines())
    end = datetime.now(UTC)
    if since >= end:
        raise click.BadParameter("the window must start before now", param_hint="--since")
    selected, _skipped = select_events(lines, only_transitions)
    links = build_timelines((event for _, event in selected), since, end)
    if not links:
        click.echo("no health transitions in the logs")
        return
    label_width = max(len(link.label) for link in links)
    click.echo(f"{'':{label_width}}  {since:%H:%M:%S}{' ' * (width - 16)}{end:%H:%M:%S} UTC")
    for link in links:
        cells = link.cells(since, end, width)
        row = "".join(click.style(CELL.get(status, CELL[UNKNOWN]), fg=STATUS_COLOURS.get(status)) for status in cells)
        now = link.transitions[-1][2] if link.transitions else link.initial
        click.echo(f"{link.label:{label_width}}  {row}  {click.style(now, fg=STATUS_COLOURS.get(now))}")
        for when, previous, current in link.transitions:
            click.echo(f"{'':{label_width}}    {when.strftime('%H:%M:%S.%f')[:-3]}  {previous} -> {current}")
    click.echo("  ".join(f"{click.style(cell, fg=STATUS_COLOURS[status])} {status}" for status, cell in CELL.items()))
    if gateway is not None and reader.unheard:
        click.echo("warning: these daemons could not be heard, so their transitions are missing: "
                   + "; ".join(reader.unheard), err=True)
        sys.exit(EXIT_PARTIAL)


@main.command()
@click.option("--host", default=DEFAULT_TARGET, show_default=True, help="The gateway, host:port.")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Seconds to wait for the answer.")
@tls_option
def status(host: str, timeout: float, tls_dir: Path | None) -> None:
    """Every daemon's health now, as the gateway reports it."""
    try:
        with client_channel(host, tls_dir) as channel:
            response = pb_grpc.AirQualityStub(channel).GetHealthStatus(pb.HealthStatusRequest(cluster=True),
                                                                        timeout=timeout)
    except grpc.RpcError as error:
        click.echo(f"error: the gateway at {host} did not answer: {error.code().name}: {error.details()}", err=True)
        sys.exit(EXIT_UNREACHABLE)
    health = cluster_health(response)
    RowWriter("table", STATUS_HEADER).write(status_rows(health))
    for observer in health.unreachable_observers:
        click.echo(f"warning: observer not reachable: {observer}", err=True)
    verdict = f"{health.healthy}/{health.total} daemons healthy"
    if health.unhealthy:
        verdict += f" (not healthy: {', '.join(health.unhealthy)})"
    click.echo(verdict)
    sys.exit(EXIT_HEALTHY if health.all_healthy else EXIT_UNHEALTHY)
