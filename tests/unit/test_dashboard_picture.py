"""What the dashboard shows (dashboard/picture.py), decided from the observers' views of the shipped
overlay: each daemon's and link's status and the notes on what is unknown; the last hour of
transitions per link; the query rate and p99; the partitions' paths."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.config import OverlayLink, load_config
from daemons.dashboard import picture as picture_module
from daemons.dashboard.picture import (
    LinkView,
    Overlay,
    QueryWindow,
    TransitionHistory,
    percentile,
    picture,
    serving,
    transitions_in,
)

ETC = Path(__file__).resolve().parents[2] / "etc"
NOW = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)


def shipped_overlay() -> Overlay:
    config = load_config(ETC / "gateway_a.json", environ={})
    return Overlay(config.name, config.roles, config.overlay)


SHIPPED = shipped_overlay()


def healthy_views(overlay: Overlay = SHIPPED) -> dict[str, dict[str, LinkView]]:
    """Every observer's word that each neighbour it watches is healthy."""
    views: dict[str, dict[str, LinkView]] = {}
    for link in overlay.links:
        if link.watched:
            views.setdefault(link.parent, {})[link.child] = LinkView("healthy", "2026-11-30T19:00:00.000Z")
    return views


def statuses(shown: dict) -> dict[str, str]:
    return {daemon["name"]: daemon["status"] for daemon in shown["daemons"]}


def link(shown: dict, observer: str, neighbor: str) -> dict:
    (found,) = [each for each in shown["links"] if (each["observer"], each["neighbor"]) == (observer, neighbor)]
    return found


def daemon(shown: dict, name: str) -> dict:
    (found,) = [each for each in shown["daemons"] if each["name"] == name]
    return found


# -- the overlay ------------------------------------------------------------------------------------


def test_the_shipped_overlay_is_drawn_level_by_level_with_its_roles():
    shown = picture(SHIPPED, healthy_views())
    assert [(each["name"], each["depth"], each["role"]) for each in shown["daemons"]] == [
        ("gateway_a", 0, "gateway"), ("leader_b", 1, "leader"), ("leader_e", 1, "leader"),
        ("worker_c", 2, "worker"), ("worker_d", 2, "worker"), ("worker_f", 2, "worker")]
    assert [(each["observer"], each["neighbor"], each["kind"]) for each in shown["links"]] == [
        (each.parent, each.child, each.kind) for each in SHIPPED.links]
    assert link(shown, "leader_b", "worker_d")["kind"] == "control"


def test_when_every_observer_says_healthy_everything_is_healthy_without_notes():
    shown = picture(SHIPPED, healthy_views())
    assert set(statuses(shown).values()) == {"healthy"}
    assert {each["status"] for each in shown["links"]} == {"healthy"}
    assert shown["notes"] == []
    assert all(each["note"] == "" for each in shown["daemons"])
    assert link(shown, "leader_b", "worker_c")["since"] == "2026-11-30T19:00:00.000Z"


def test_a_worker_its_only_watcher_calls_unavailable_is_unavailable_with_the_reason():
    views = healthy_views()
    views["leader_b"]["worker_c"] = LinkView("unavailable", "2026-11-30T19:59:00.000Z", "probe timed out")
    shown = picture(SHIPPED, views)
    assert statuses(shown) == {"gateway_a": "healthy", "leader_b": "healthy", "leader_e": "healthy",
                               "worker_c": "unavailable", "worker_d": "healthy", "worker_f": "healthy"}
    shown_link = link(shown, "leader_b", "worker_c")
    assert (shown_link["status"], shown_link["since"], shown_link["note"]) == (
        "unavailable", "2026-11-30T19:59:00.000Z", "probe timed out")
    assert daemon(shown, "worker_c")["note"] == "leader_b: probe timed out"
    assert shown["notes"] == []  # every observer answered


@pytest.mark.parametrize("leader_b, worker_d, shown_status", [
    ("healthy", "healthy", "healthy"), ("healthy", "degraded", "degraded"), ("unavailable", "healthy", "unavailable"),
    ("degraded", "unavailable", "unavailable"), ("healthy", "unknown", "unknown"), ("unknown", "degraded", "degraded")])
def test_a_control_link_shows_the_worse_of_its_two_ends(leader_b, worker_d, shown_status):
    views = healthy_views()
    views["gateway_a"]["leader_b"] = LinkView(leader_b)
    views["leader_e"]["worker_d"] = LinkView(worker_d)
    shown = picture(SHIPPED, views)
    assert (statuses(shown)["leader_b"], statuses(shown)["worker_d"]) == (leader_b, worker_d)
    control = link(shown, "leader_b", "worker_d")
    assert control["status"] == shown_status
    assert control["since"] == "" and control["note"].startswith("control link: not probed")


def test_a_leader_that_cannot_be_asked_leaves_what_only_it_watches_unknown_and_says_why():
    views: dict = healthy_views()
    views["leader_e"] = "DEADLINE_EXCEEDED: no answer in 1 s"
    shown = picture(SHIPPED, views)
    assert statuses(shown) == {"gateway_a": "healthy", "leader_b": "healthy", "leader_e": "healthy",
                               "worker_c": "healthy", "worker_d": "unknown", "worker_f": "unknown"}
    for neighbor in ("worker_d", "worker_f"):
        shown_link = link(shown, "leader_e", neighbor)
        assert shown_link["status"] == "unknown" and "DEADLINE_EXCEEDED: no answer in 1 s" in shown_link["note"]
        assert "DEADLINE_EXCEEDED" in daemon(shown, neighbor)["note"]
    assert link(shown, "leader_b", "worker_d")["status"] == "unknown"  # the worse of healthy and unknown
    (note,) = shown["notes"]
    assert note.startswith("leader_e cannot be asked (DEADLINE_EXCEEDED: no answer in 1 s)")
    assert "worker_d, worker_f" in note and "them" in note


def test_an_observer_missing_from_the_views_or_silent_on_a_neighbour_gives_unknown():
    views = healthy_views()
    del views["leader_b"]["worker_c"]
    del views["leader_e"]
    shown = picture(SHIPPED, views)
    assert statuses(shown)["worker_c"] == "unknown"
    assert link(shown, "leader_b", "worker_c")["note"] == "does not report on it"
    assert daemon(shown, "worker_c")["note"] == "leader_b: does not report on it"
    assert statuses(shown)["worker_f"] == "unknown"
    assert link(shown, "leader_e", "worker_f")["note"] == "cannot be asked: no word from it"


def test_the_gateway_is_healthy_whatever_anyone_says():
    shown = picture(SHIPPED, {})
    assert statuses(shown) == {"gateway_a": "healthy", **dict.fromkeys(
        ["leader_b", "leader_e", "worker_c", "worker_d", "worker_f"], "unknown")}
    views = healthy_views()
    views["gateway_a"] = "it is the one drawing"  # nobody watches the gateway, even so
    assert statuses(picture(SHIPPED, views))["gateway_a"] == "healthy"


TWO_WATCHERS = Overlay("gw", {"gw": "gateway", "lp": "leader", "lq": "leader", "wx": "worker"}, [
    OverlayLink("gw", "lp", "query", True), OverlayLink("gw", "lq", "query", True),
    OverlayLink("lp", "wx", "query", True), OverlayLink("lq", "wx", "query", True)])


@pytest.mark.parametrize("from_lp, from_lq, best", [
    ("unavailable", "degraded", "degraded"), ("unavailable", "healthy", "healthy"), ("degraded", "unknown", "unknown"),
    ("unavailable", "unavailable", "unavailable"), ("healthy", "degraded", "healthy")])
def test_a_daemon_watched_by_two_observers_takes_the_best_word(from_lp, from_lq, best):
    views = healthy_views(TWO_WATCHERS)
    views["lp"]["wx"] = LinkView(from_lp, reason="lp says so")
    views["lq"]["wx"] = LinkView(from_lq, reason="lq says so")
    shown = picture(TWO_WATCHERS, views)
    assert statuses(shown)["wx"] == best
    assert (link(shown, "lp", "wx")["status"], link(shown, "lq", "wx")["status"]) == (from_lp, from_lq)
    assert daemon(shown, "wx")["note"] == "lp: lp says so; lq: lq says so"
    assert daemon(shown, "wx")["depth"] == 2


def test_one_observer_that_cannot_be_asked_leaves_the_word_of_the_other():
    views: dict = healthy_views(TWO_WATCHERS)
    views["lq"] = "UNAVAILABLE: connection refused"
    shown = picture(TWO_WATCHERS, views)
    assert statuses(shown)["wx"] == "healthy"
    assert link(shown, "lq", "wx")["status"] == "unknown"
    assert shown["notes"] == ["lq cannot be asked (UNAVAILABLE: connection refused): the status of wx as it sees it "
                              "is unknown"]


def test_an_observer_that_watches_nothing_makes_no_note():
    views: dict = healthy_views()
    views["worker_c"] = "not a leader"
    assert picture(SHIPPED, views)["notes"] == []


# -- the timeline -----------------------------------------------------------------------------------


def transition(minutes: float, observer: str, neighbor: str, previous: str, current: str, reason: str = "") -> dict:
    """A health_transition line `minutes` from NOW (negative: before it)."""
    when = NOW + timedelta(minutes=minutes)
    return {"timestamp": when.isoformat(timespec="microseconds").replace("+00:00", "Z"), "level": "info",
            "event": "health_transition", "daemon": observer, "neighbor": neighbor, "from": previous, "to": current,
            "reason": reason, "consecutive_failures": 0, "latency_ms": 1.0}


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rows(window: dict) -> dict[str, tuple[str, list[tuple[str, str, str, str]]]]:
    return {row["link"]: (row["initial"], [(each["at"], each["from"], each["to"], each["reason"])
                                           for each in row["transitions"]]) for row in window["links"]}


def test_the_window_is_the_last_hour_with_each_link_starting_where_it_stood():
    history = TransitionHistory()
    for event in (transition(-90, "leader_b", "worker_c", "unknown", "healthy", "answers"),
                  transition(-20, "leader_b", "worker_c", "healthy", "unavailable", "probe timed out"),
                  transition(-5, "leader_b", "worker_c", "unavailable", "healthy", "answers again"),
                  transition(-70, "gateway_a", "leader_e", "unknown", "healthy")):
        history.add(event)
    window = history.window(NOW.timestamp())
    assert (window["start"], window["end"]) == (at(-60), at(0))
    assert [row["link"] for row in window["links"]] == ["gateway_a->leader_e", "leader_b->worker_c"]
    assert rows(window) == {
        "gateway_a->leader_e": ("healthy", []),
        "leader_b->worker_c": ("healthy", [(at(-20), "healthy", "unavailable", "probe timed out"),
                                           (at(-5), "unavailable", "healthy", "answers again")])}


def test_a_link_first_heard_of_inside_the_window_starts_where_its_first_transition_left():
    history = TransitionHistory()
    history.add(transition(-10, "leader_e", "worker_f", "degraded", "unavailable", "gone"))
    assert rows(history.window(NOW.timestamp())) == {
        "leader_e->worker_f": ("degraded", [(at(-10), "degraded", "unavailable", "gone")])}


def test_transitions_that_leave_the_window_still_say_where_it_starts():
    history = TransitionHistory()
    history.add(transition(-30, "leader_b", "worker_c", "unknown", "healthy"))
    history.add(transition(-10, "leader_b", "worker_c", "healthy", "degraded", "slow"))
    assert rows(history.window(NOW.timestamp()))["leader_b->worker_c"][0] == "unknown"
    later = NOW + timedelta(minutes=55)  # both have left the hour
    assert rows(history.window(later.timestamp())) == {"leader_b->worker_c": ("degraded", [])}
    history.add(transition(56, "leader_b", "worker_c", "degraded", "healthy", "back"))
    assert rows(history.window((NOW + timedelta(minutes=57)).timestamp())) == {
        "leader_b->worker_c": ("degraded", [(at(56), "degraded", "healthy", "back")])}


def test_events_of_different_daemons_arriving_out_of_order_make_the_same_window():
    events = [transition(-80, "leader_b", "worker_c", "unknown", "healthy"),
              transition(-65, "leader_b", "worker_c", "healthy", "degraded"),
              transition(-5, "leader_b", "worker_c", "degraded", "healthy", "ok"),
              transition(-90, "gateway_a", "leader_b", "unknown", "healthy"),
              transition(-61, "gateway_a", "leader_b", "healthy", "unavailable"),
              transition(-30, "gateway_a", "leader_b", "unavailable", "healthy", "back")]
    in_order = TransitionHistory()
    for event in sorted(events, key=lambda event: event["timestamp"]):
        in_order.add(event)
    # Each daemon's own lines in its order, but leader_b's all heard before gateway_a's.
    interleaved = TransitionHistory()
    for event in events:
        interleaved.add(event)
    expected = {"gateway_a->leader_b": ("unavailable", [(at(-30), "unavailable", "healthy", "back")]),
                "leader_b->worker_c": ("degraded", [(at(-5), "degraded", "healthy", "ok")])}
    assert rows(in_order.window(NOW.timestamp())) == expected
    assert rows(interleaved.window(NOW.timestamp())) == expected
    # Asked again later, when the window has moved past some of them, both still agree.
    later = (NOW + timedelta(minutes=40)).timestamp()
    assert rows(in_order.window(later)) == rows(interleaved.window(later)) == {
        "gateway_a->leader_b": ("healthy", []), "leader_b->worker_c": ("degraded", [(at(-5), "degraded", "healthy", "ok")])}


def test_a_transition_after_now_is_not_shown_yet():
    history = TransitionHistory()
    history.add(transition(-10, "leader_b", "worker_c", "unknown", "healthy"))
    history.add(transition(2, "leader_b", "worker_c", "healthy", "unavailable"))
    assert rows(history.window(NOW.timestamp())) == {"leader_b->worker_c": ("unknown", [(at(-10), "unknown", "healthy",
                                                                                          "")])}


def test_a_transition_pushed_out_by_the_cap_still_says_where_its_link_stood(monkeypatch):
    monkeypatch.setattr(picture_module, "MAX_TRANSITIONS", 2)
    history = TransitionHistory()
    history.add(transition(-100, "leader_e", "worker_d", "unknown", "degraded"))
    for minutes in (-3, -2):
        history.add(transition(minutes, "leader_b", "worker_c", "healthy", "degraded"))
    assert rows(history.window(NOW.timestamp()))["leader_e->worker_d"] == ("degraded", [])


def test_an_empty_history_has_an_empty_window():
    window = TransitionHistory().window(NOW.timestamp())
    assert window == {"start": at(-60), "end": at(0), "links": []}


def test_only_transitions_with_their_fields_and_a_readable_time_are_kept():
    good = transition(-1, "leader_b", "worker_c", "healthy", "degraded")
    lines = [good, {**good, "timestamp": "yesterday"}, {**good, "timestamp": None},
             {key: value for key, value in good.items() if key != "timestamp"},
             {key: value for key, value in good.items() if key != "to"}, {"event": "daemon_started"}]
    assert transitions_in(lines) == [good]


# -- queries and partitions -------------------------------------------------------------------------


def test_an_empty_query_window_has_no_p99():
    assert QueryWindow().summary(1000.0) == {"window_seconds": 60.0, "count": 0, "per_second": 0.0, "p99_seconds": None}


def test_the_query_window_counts_the_last_minute_and_its_p99():
    window = QueryWindow()
    for index in range(200):  # one every half second over the last 100 s, each taking index ms
        window.add(900.0 + index * 0.5, index / 1000)
    summary = window.summary(1000.0)
    # Those from 940 s on: 120 queries (indexes 80..199), 2 a second.
    assert (summary["count"], summary["per_second"]) == (120, 2.0)
    assert summary["p99_seconds"] == 0.198  # nearest rank: the 119th of 120
    assert window.summary(1059.5)["count"] == 1  # the last, at 999.5 s, is exactly 60 s old: still in
    assert window.summary(1059.6) == {"window_seconds": 60.0, "count": 0, "per_second": 0.0, "p99_seconds": None}


def test_per_second_and_p99_are_rounded():
    window = QueryWindow()
    for seconds in (0.1234567891, 0.2, 0.3):
        window.add(10.0, seconds)
    summary = window.summary(10.0)
    assert summary["per_second"] == 0.05 and summary["count"] == 3
    assert summary["p99_seconds"] == 0.3
    window.add(11.0, 1.0000004)
    assert window.summary(11.0)["p99_seconds"] == 1.0


@given(st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=300))
def test_p99_is_the_nearest_rank(values):
    ordered = sorted(values)
    p99 = percentile(ordered, 0.99)
    assert p99 in values
    at_or_below = sum(1 for value in values if value <= p99)
    below = sum(1 for value in values if value < p99)
    assert Fraction(at_or_below, len(values)) >= Fraction(99, 100)  # at least 99 % at or below it ...
    assert Fraction(below, len(values)) < Fraction(99, 100)  # ... and it is the smallest such value


@given(st.integers(1, 1000))
def test_p99_of_one_to_n_is_the_rank_ninety_nine_percent_up(count):
    assert percentile(list(range(1, count + 1)), 0.99) == math.ceil(count * 99 / 100)


def test_each_partition_is_listed_with_its_path_and_holder_in_order():
    assert serving({"sep14-24": ((), "no copy reachable: worker_f unavailable"),
                    "aug10-17": (("leader_b",), ""), "aug18-26": (("leader_e", "worker_d"), "")}) == [
        {"partition": "aug10-17", "path": ["leader_b"], "holder": "leader_b", "problem": ""},
        {"partition": "aug18-26", "path": ["leader_e", "worker_d"], "holder": "worker_d", "problem": ""},
        {"partition": "sep14-24", "path": [], "holder": "", "problem": "no copy reachable: worker_f unavailable"}]


def test_the_nearest_rank_is_not_thrown_off_by_floating_point():
    assert percentile(list(range(1, 101)), 0.07) == 7  # 0.07 * 100 is 7.000000000000001 in floating point
