"""The dashboard's runtime (dashboard/live.py) through its seams: fake monitors, leaders and event
stream. It runs only while someone looks, pushes a picture when something changes, resumes its
event stream from where it was, and its routes serve the page, the picture and the stream."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator

import pytest

from daemons.config import load_config
from daemons.dashboard import live
from daemons.dashboard.live import Dashboard, dashboard_routes
from daemons.health.status import Status
from daemons.rpc import airquality_pb2 as pb
from daemons.web.server import Request
from tests.cluster import ETC
from tests.waiting import wait_for

GATEWAY = load_config(ETC / "gateway_a.json")


class Watched:
    def __init__(self, neighbor: str, status: Status = Status.HEALTHY):
        self.neighbor = neighbor
        self.status = status

    def view(self) -> pb.NeighborHealth:
        return pb.NeighborHealth(observer="gateway_a", neighbor=self.neighbor, status=self.status.value)


class Answered:
    def __init__(self, answer: pb.HealthStatusResponse | Exception):
        self.answer = answer

    def result(self) -> pb.HealthStatusResponse:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Leader:
    """A leader's GetHealthStatus: its views of its workers, which a test changes."""

    def __init__(self, name: str, workers: dict[str, Status]):
        self.name = name
        self.workers = workers
        self.failing: Exception | None = None
        self.asked = 0

    def health_status(self, _request: pb.HealthStatusRequest, timeout: float) -> Answered:
        self.asked += 1
        if self.failing is not None:
            return Answered(self.failing)
        return Answered(pb.HealthStatusResponse(daemon=self.name, neighbors=[
            pb.NeighborHealth(observer=self.name, neighbor=worker, status=status.value)
            for worker, status in self.workers.items()]))


class Logs:
    """The cluster's merged event stream: what a test puts in, until the reader's stop is set.
    Records the positions each stream was asked to resume from."""

    def __init__(self) -> None:
        self.messages: queue.Queue[pb.EventsResponse] = queue.Queue()
        self.resumed_from: list[list[pb.LogPosition]] = []

    def stream(self, request: pb.EventsRequest, stopped: threading.Event) -> Iterator[pb.EventsResponse]:
        self.resumed_from.append(list(request.resume))
        while not stopped.is_set():
            try:
                yield self.messages.get(timeout=0.01)
            except queue.Empty:
                continue

    def transition(self, observer: str, neighbor: str, before: str, after: str, offset: int) -> None:
        line = json.dumps({"timestamp": live.iso(live.time.time()), "level": "info", "event": "health_transition",
                           "daemon": observer, "neighbor": neighbor, "from": before, "to": after, "reason": "test"})
        self.messages.put(pb.EventsResponse(daemon=observer, lines=[line],
                                            position=pb.LogPosition(daemon=observer, file_id=1, offset=offset)))


class Setup:
    def __init__(self) -> None:
        self.own = [Watched("leader_b"), Watched("leader_e")]
        self.leader_b = Leader("leader_b", {"worker_c": Status.HEALTHY})
        self.leader_e = Leader("leader_e", {"worker_f": Status.HEALTHY, "worker_d": Status.HEALTHY})
        self.logs = Logs()
        self.dashboard = Dashboard(GATEWAY, self.own, {"leader_b": self.leader_b, "leader_e": self.leader_e},
                                   self.serving, self.logs)

    @staticmethod
    def serving(status_of) -> dict[str, tuple[tuple[str, ...], str]]:
        return {"aug18-26": (("gateway_a", "leader_b", "worker_c"), "") if status_of("worker_c") != "unavailable"
                else (("gateway_a", "leader_e", "worker_d"), "")}


@pytest.fixture
def setup(monkeypatch) -> Iterator[Setup]:
    monkeypatch.setattr(live, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(live, "LINGER_SECONDS", 0.05)
    made = Setup()
    yield made
    made.dashboard.close()


def newer(dashboard: Dashboard, version: int, timeout: float) -> tuple[int, dict | None]:
    """The dashboard's next picture, decoded."""
    version, encoded = dashboard.newer_than(version, timeout)
    return version, None if encoded is None else json.loads(encoded)


def status_of(picture: dict, kind: str, name: str) -> str:
    key = "name" if kind == "daemons" else "link"
    for item in picture[kind]:
        label = item["name"] if kind == "daemons" else f"{item['observer']}->{item['neighbor']}"
        if label == name or item.get(key) == name:
            return str(item["status"])
    raise KeyError(name)


def test_nothing_runs_until_someone_looks_and_it_stops_after_they_leave(setup):
    assert setup.leader_b.asked == 0
    with setup.dashboard.viewing():
        version, picture = newer(setup.dashboard, 0, 5)
        assert picture is not None and status_of(picture, "daemons", "worker_c") == "healthy"
    wait_for(lambda: all(t.name not in ("dashboard-poll", "dashboard-follow") for t in threading.enumerate()), 5,
             "the dashboard's threads to end")
    asked = setup.leader_b.asked
    assert setup.dashboard.newer_than(version, 0.1) == (version, None)
    assert setup.leader_b.asked == asked


def test_a_workers_outage_is_pushed_and_its_partition_moves(setup):
    with setup.dashboard.viewing():
        version, picture = newer(setup.dashboard, 0, 5)
        assert picture["partitions"][0]["holder"] == "worker_c"
        setup.leader_b.workers["worker_c"] = Status.UNAVAILABLE
        version, picture = newer(setup.dashboard, version, 5)
        assert picture is not None
        assert status_of(picture, "daemons", "worker_c") == "unavailable"
        assert status_of(picture, "links", "leader_b->worker_c") == "unavailable"
        assert picture["partitions"][0]["holder"] == "worker_d"


def test_a_leader_that_cannot_be_asked_leaves_its_workers_unknown_and_says_so(setup):
    setup.own[1].status = Status.UNAVAILABLE
    with setup.dashboard.viewing():
        _version, picture = newer(setup.dashboard, 0, 5)
    assert picture is not None
    assert status_of(picture, "daemons", "worker_f") == "unknown"
    assert any("leader_e" in note and "worker_f" in note for note in picture["notes"])
    assert setup.leader_e.asked == 0  # the gateway sees it down: it is not asked


def test_transitions_make_the_timeline_and_a_new_follower_resumes_where_the_last_stopped(setup):
    with setup.dashboard.viewing():
        setup.logs.transition("leader_b", "worker_c", "healthy", "unavailable", offset=100)
        version = 0

        def timeline_has_it() -> bool:
            nonlocal version
            version, picture = newer(setup.dashboard, version, 0.5)
            return picture is not None and any(row["link"] == "leader_b->worker_c" and row["transitions"]
                                               for row in picture["timeline"]["links"])

        wait_for(timeline_has_it, 5, "the transition in the timeline")
    wait_for(lambda: all(t.name != "dashboard-follow" for t in threading.enumerate()), 5, "the follower to end")
    with setup.dashboard.viewing():
        newer(setup.dashboard, 0, 5)
    assert [(p.daemon, p.offset) for p in setup.logs.resumed_from[-1]] == [("leader_b", 100)]


def test_the_routes_serve_the_page_its_files_the_picture_and_the_stream(setup):
    routes = dashboard_routes(setup.dashboard)
    page = routes["/"](Request("/", {}, {}))
    assert b"/static/dashboard.js" in page.body and page.content_type.startswith("text/html")
    assert routes["/static/dashboard.js"](Request("/static/dashboard.js", {}, {})).body
    state = json.loads(routes["/state"](Request("/state", {}, {})).body)
    assert {d["name"] for d in state["daemons"]} == {"gateway_a", "leader_b", "leader_e", "worker_c", "worker_d",
                                                      "worker_f"}
    stream = routes["/events"](Request("/events", {}, {}))
    assert stream.content_type == "text/event-stream" and stream.stream is not None
    pieces = iter(stream.stream)
    first = next(pieces)
    assert first.startswith(b"data: ") and json.loads(first[len(b"data: "):])["gateway"] == "gateway_a"
    setup.dashboard.close()
    assert list(pieces) == []  # a closed dashboard ends its streams


def test_a_poll_that_fails_shows_the_last_picture_says_why_and_the_page_goes_on(setup):
    serving = setup.dashboard._serving_copies
    failing = threading.Event()

    def planning(status_of):
        if failing.is_set():
            raise RuntimeError("planning broke")
        return serving(status_of)

    setup.dashboard._serving_copies = planning
    with setup.dashboard.viewing():
        version, picture = newer(setup.dashboard, 0, 5)
        failing.set()
        version, picture = newer(setup.dashboard, version, 5)
        assert picture is not None and any("planning broke" in note for note in picture["notes"])
        assert status_of(picture, "daemons", "worker_c") == "healthy"  # the last picture, said to be old
        failing.clear()
        setup.leader_b.workers["worker_c"] = Status.UNAVAILABLE
        version, picture = newer(setup.dashboard, version, 5)
        assert picture is not None and status_of(picture, "daemons", "worker_c") == "unavailable"
        assert not any("planning broke" in note for note in picture["notes"])


def test_a_page_opened_after_an_idle_spell_never_gets_the_old_picture(setup):
    with setup.dashboard.viewing():
        newer(setup.dashboard, 0, 5)
    wait_for(lambda: all(t.name != "dashboard-poll" for t in threading.enumerate()), 5, "the poller to end")
    setup.leader_b.workers["worker_c"] = Status.UNAVAILABLE  # while nobody looked
    with setup.dashboard.viewing():
        _version, picture = newer(setup.dashboard, 0, 5)
    assert picture is not None and status_of(picture, "daemons", "worker_c") == "unavailable"
