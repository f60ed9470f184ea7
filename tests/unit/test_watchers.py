"""A daemon's watchers falling silent and coming back (daemons/health/watchers.py): pure."""

from __future__ import annotations

from daemons.health.watchers import SILENCE_SECONDS, STEADY_PROBES, Watchers


def _steady(watchers: Watchers, name: str, now: float) -> float:
    for _ in range(STEADY_PROBES):
        watchers.heard(name, now)
        now += 0.4
    return now


def test_a_steady_watcher_silent_for_the_limit_is_lost_once_and_back_with_its_silence() -> None:
    watchers = Watchers()
    now = _steady(watchers, "gateway_a", 0.0)
    assert watchers.newly_lost(now, {"gateway_a"}) == []
    later = now - 0.4 + SILENCE_SECONDS
    assert watchers.newly_lost(later, {"gateway_a"}) == [("gateway_a", SILENCE_SECONDS)]
    assert watchers.newly_lost(later + 5, {"gateway_a"}) == []
    assert watchers.all_lost and watchers.lost == ["gateway_a"]
    assert watchers.heard("gateway_a", later + 5) == SILENCE_SECONDS + 5
    assert not watchers.all_lost and watchers.lost == []


def test_one_watcher_of_two_lost_is_not_cut_off() -> None:
    watchers = Watchers()
    _steady(watchers, "leader_b", 0.0)
    now = _steady(watchers, "leader_e", 10.0)
    assert watchers.newly_lost(now, {"leader_b", "leader_e"}) == [("leader_b", now - 0.8)]
    assert not watchers.all_lost


def test_a_passing_requester_is_no_watcher_and_forgotten_names_are_dropped() -> None:
    watchers = Watchers()
    watchers.heard("healthlog", 0.0)
    assert watchers.newly_lost(100.0, {"healthlog"}) == []
    assert not watchers.all_lost  # nobody ever watched
    _steady(watchers, "gateway_a", 0.0)
    assert watchers.newly_lost(100.0, set()) == []  # evicted from the recipients: not tracked
    assert watchers.lost == []
