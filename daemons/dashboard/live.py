"""The gateway's live dashboard: what it reads, when, and how the page gets it.

Nothing runs while nobody looks (an idle cluster must stay under its CPU budget). The first
viewer starts two threads, which stop LINGER_SECONDS after the last one leaves:
- a poller, every POLL_SECONDS and whenever the follower hears a transition: the gateway's own
  monitors, each leader's GetHealthStatus (the leaders watch the workers), and the copy each
  partition would be read from now. A new picture is pushed to every viewer at once, so a
  transition shows within POLL_SECONDS plus a call at worst, and usually as soon as it is logged;
- a follower of the cluster's health_transition events, as bin/healthlog --follow reads them
  through the gateway (logstream.ClusterEvents), for the last hour's timeline. It resumes from
  where it was, so a viewer who comes back misses no transition made meanwhile.
Measured 2026-11-30 with one page open: the cluster's CPU rose from 2.2 % to 6.8 % of a core
with a poll every 0.25 s, about a third of it in the leaders' GetHealthStatus.
Pages go out by server-sent events (/events), one full picture per message, encoded once for
every viewer (a few kilobytes; a few hundred with links that flapped for an hour: picture.py caps
them), with a comment every KEEPALIVE_SECONDS so that a dead connection is noticed and closed.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol

from daemons import events
from daemons.config import DaemonConfig
from daemons.dashboard.picture import (
    LinkView,
    Overlay,
    QueryWindow,
    TransitionHistory,
    Views,
    iso,
    picture,
    serving,
    transitions_in,
)
from daemons.errors import describe_error
from daemons.fanout.children import Child
from daemons.health.status import Status
from daemons.planning.paths import StatusOf
from daemons.rpc import airquality_pb2 as pb
from daemons.web.server import Request, Response, Route

POLL_SECONDS = 0.5
ASK_TIMEOUT_SECONDS = 0.5  # for a leader's GetHealthStatus: a hung leader is reported, not waited for
LINGER_SECONDS = 10.0  # a reload, or a second tab opened after the first closed, finds it running
KEEPALIVE_SECONDS = 15.0
REFRESH_SECONDS = 5.0  # a picture at least this often, changed or not: the time and the timeline move
FIRST_PICTURE_SECONDS = 5.0  # how long /state waits for the first picture of a dashboard just started
STATIC = Path(__file__).with_name("static")
FILES = {"/": ("index.html", "text/html; charset=utf-8"),
         "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
         "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8")}


class Monitored(Protocol):
    """One of the gateway's own neighbours (health/process.py's RemoteMonitor)."""

    neighbor: str

    def view(self) -> pb.NeighborHealth: ...


class EventSource(Protocol):
    """The cluster's merged event logs (logstream.ClusterEvents)."""

    def stream(self, request: pb.EventsRequest, stopped: threading.Event) -> Iterator[pb.EventsResponse]: ...


def link_views(answer: pb.HealthStatusResponse | Sequence[pb.NeighborHealth]) -> dict[str, LinkView]:
    neighbors = answer.neighbors if isinstance(answer, pb.HealthStatusResponse) else answer
    return {view.neighbor: LinkView(view.status, view.since, view.last_reason) for view in neighbors}


class Dashboard:
    """Locking: `_changed` (a condition) guards the picture, its version, the viewers, the
    history, the query window and what the follower hears."""

    def __init__(self, config: DaemonConfig, own: Sequence[Monitored], children: Mapping[str, Child],
                 serving_copies: Callable[[StatusOf], Mapping[str, tuple[Sequence[str], str]]], cluster: EventSource,
                 clock: Callable[[], float] = time.time):
        self.gateway = config.name
        self.overlay = Overlay(config.name, config.roles, config.overlay)
        self._own = own
        # The observers it asks for their views: its children that watch someone.
        observers = {link.parent for link in self.overlay.links if link.watched and link.parent != config.name}
        self._observers = {name: child for name, child in children.items() if name in observers}
        self._serving_copies = serving_copies
        self._cluster = cluster
        self._clock = clock
        self._changed = threading.Condition()
        self._version = 0
        self._picture: bytes | None = None  # the current picture, as JSON, encoded once for every viewer
        self._viewers = 0
        self._last_viewer = -float("inf")  # monotonic: when the last viewer left
        self._running: threading.Event | None = None  # set to stop the current threads
        self._closed = False
        self._history = TransitionHistory()
        self._timeline: dict[str, Any] | None = None  # the history's window, made again when it changes
        self._timeline_made = -float("inf")  # monotonic
        self._queries = QueryWindow()
        self._unheard: list[str] = []
        self._resume: dict[str, pb.LogPosition] = {}  # daemon -> how far the follower has read its log
        self._wake = threading.Event()  # the follower heard a transition, or the dashboard closed: poll now

    # -- what the gateway tells it -----------------------------------------------------------------

    def observe(self, event: Mapping[str, Any]) -> None:
        """One of the gateway's event lines (eventlog.py): its finished queries make the rate and p99."""
        if event.get("event") == events.QUERY_FINISHED.name:
            with self._changed:
                self._queries.add(self._clock(), float(event["seconds"]))

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed

    def close(self) -> None:
        """The gateway stops: every stream ends, the threads too."""
        with self._changed:
            self._closed = True
            running, self._running = self._running, None
            self._changed.notify_all()
        if running is not None:
            running.set()
        self._wake.set()

    # -- viewers -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def viewing(self) -> Iterator[None]:
        with self._changed:
            self._viewers += 1
            self._start_if_needed()
        try:
            yield
        finally:
            with self._changed:
                self._viewers -= 1
                self._last_viewer = time.monotonic()

    def newer_than(self, version: int, timeout: float) -> tuple[int, bytes | None]:
        """The picture (JSON) once there is one newer than `version`, with its version; (version,
        None) if none came within `timeout` or the dashboard closed."""
        with self._changed:
            self._start_if_needed()
            running = self._running
            self._changed.wait_for(lambda: self._closed or self._running is not running
                                   or (self._picture is not None and self._version > version), timeout)
            if self._closed or self._picture is None or self._version <= version:
                return version, None  # a generation that ended: the viewer's next call starts one
            return self._version, self._picture

    def _start_if_needed(self) -> None:
        """Starts a generation of the poller and the follower if none runs and someone looks;
        called under the lock."""
        if self._running is None and not self._closed and self._viewers > 0:
            self._running = threading.Event()
            threading.Thread(target=self._poll, args=(self._running,), name="dashboard-poll", daemon=True).start()
            threading.Thread(target=self._follow, args=(self._running,), name="dashboard-follow", daemon=True).start()

    # -- the threads ---------------------------------------------------------------------------

    def _idle(self) -> bool:
        """Nobody has looked for LINGER_SECONDS; called under the lock."""
        return self._viewers == 0 and time.monotonic() - self._last_viewer > LINGER_SECONDS

    def _poll(self, stop: threading.Event) -> None:
        """Polls until nobody has looked for LINGER_SECONDS; then, or if it fails, this generation of
        threads ends (the follower with it) and the next viewer starts another: a picture kept
        from then would show the cluster as it was, as if it were now."""
        try:
            self._poll_while_viewed(stop)
        finally:
            with self._changed:
                if self._running is stop:
                    self._running = None
                    self._picture = None
                    self._changed.notify_all()
            stop.set()

    def _poll_while_viewed(self, stop: threading.Event) -> None:
        shown: dict[str, Any] | None = None
        shown_at = -float("inf")
        last: dict[str, Any] | None = None  # the last picture made
        while not stop.is_set():
            with self._changed:
                if self._idle():
                    return
            try:
                current = last = self._compose(self._clock())
            except Exception as error:  # a bug must not end the page: it shows the last picture, and why
                if last is None:
                    raise
                current = {**last, "notes": [*last["notes"], f"not current: the dashboard could not make its "
                                                             f"picture: {describe_error(error)}"]}
            essential = {key: value for key, value in current.items() if key != "generated"}
            if essential != shown or time.monotonic() - shown_at >= REFRESH_SECONDS:
                shown, shown_at = essential, time.monotonic()
                encoded = json.dumps(current).encode()
                with self._changed:
                    self._picture = encoded
                    self._version += 1
                    self._changed.notify_all()
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _views(self) -> Views:
        own = {monitor.neighbor: monitor.view() for monitor in self._own}
        views: dict[str, Mapping[str, LinkView] | str] = {self.gateway: link_views(list(own.values()))}
        calls = {}
        for name, child in self._observers.items():
            if name in own and own[name].status == Status.UNAVAILABLE:
                views[name] = f"{self.gateway} sees it unavailable"
                continue
            calls[name] = child.health_status(pb.HealthStatusRequest(), timeout=ASK_TIMEOUT_SECONDS)
        for name, call in calls.items():
            try:
                views[name] = link_views(call.result())
            except Exception as error:  # gRPC's: it did not answer in time, or refused
                views[name] = describe_error(error)
        return views

    def _compose(self, now: float) -> dict[str, Any]:
        shown = picture(self.overlay, self._views())
        # Planned with the statuses just fetched, which the graph shows: the gateway's planner may
        # hold the leaders' word for up to a second (health/view.py), and the page would disagree with itself.
        statuses = {daemon["name"]: daemon["status"] for daemon in shown["daemons"]}
        copies = serving(self._serving_copies(lambda daemon: statuses.get(daemon, Status.UNKNOWN.value)))
        with self._changed:
            # The window is made again when a transition came, and as time moves its start.
            if self._timeline is None or time.monotonic() - self._timeline_made >= REFRESH_SECONDS:
                self._timeline, self._timeline_made = self._history.window(now), time.monotonic()
            timeline = self._timeline
            queries = self._queries.summary(now)
            unheard = list(self._unheard)
        return {"gateway": self.gateway, "generated": iso(now), **shown, "partitions": copies, "queries": queries,
                "timeline": timeline, "feed": {"unheard": unheard}}

    def _follow(self, stop: threading.Event) -> None:
        """Reads the cluster's transitions until `stop` is set. The merged stream retries each daemon
        itself and ends only when stopped; should it end otherwise, it sets `stop` too, and this
        generation of threads ends, for the next call of a viewer to start another."""
        try:
            self._read(stop)
        except Exception as error:  # the page says why its timeline stopped; the next generation tries again
            with self._changed:
                self._unheard = [f"the dashboard's event stream failed: {describe_error(error)}"]
        finally:
            stop.set()

    def _read(self, stop: threading.Event) -> None:
        with self._changed:
            resume = list(self._resume.values())
        request = pb.EventsRequest(follow=True, event_names=[events.HEALTH_TRANSITION.name], resume=resume)
        for message in self._cluster.stream(request, stop):
            if message.HasField("hearing"):
                with self._changed:
                    if not stop.is_set():
                        self._unheard = list(message.hearing.unheard)
                continue
            parsed = []
            for line in message.lines:
                with contextlib.suppress(ValueError):
                    parsed.append(json.loads(line))
            heard = transitions_in(event for event in parsed if isinstance(event, dict))
            with self._changed:
                if stop.is_set():
                    return  # a follower started after this one carries on from the last position kept
                for event in heard:
                    self._history.add(event)
                if heard:
                    self._timeline = None
                self._resume[message.daemon] = message.position
            if heard:
                self._wake.set()


def dashboard_routes(dashboard: Dashboard) -> dict[str, Route]:
    """The page, its two static files, /state (one picture, JSON) and /events (pictures as they change)."""

    def static(request: Request) -> Response:
        name, content_type = FILES[request.path]
        return Response(body=(STATIC / name).read_bytes(), content_type=content_type,
                        headers={"Cache-Control": "no-cache"})

    def state(_request: Request) -> Response:
        with dashboard.viewing():
            _version, shown = dashboard.newer_than(0, FIRST_PICTURE_SECONDS)
        if shown is None:
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, body=b"no picture yet: the dashboard is starting\n")
        return Response(body=shown, content_type="application/json", headers={"Cache-Control": "no-store"})

    def stream(_request: Request) -> Response:
        def pictures() -> Iterator[bytes]:
            with dashboard.viewing():
                version = 0
                while True:
                    newer, shown = dashboard.newer_than(version, KEEPALIVE_SECONDS)
                    if shown is None and dashboard.closed:
                        return
                    version = newer
                    yield b": keepalive\n\n" if shown is None else b"data: " + shown + b"\n\n"

        return Response(content_type="text/event-stream", stream=pictures(), headers={"X-Accel-Buffering": "no"})

    return {**dict.fromkeys(FILES, static), "/state": state, "/events": stream}
