"""Choosing a copy of each partition, and checking a placement against single failures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemons.planning.paths import choose_path, single_failure_losses

CANDIDATES = [("leader_b", "worker_c"), ("leader_e", "worker_d"), ("leader_b", "worker_d")]


def statuses(**known):
    return lambda daemon: known.get(daemon, "healthy")


def test_the_preferred_path_wins_when_all_are_healthy():
    assert choose_path(CANDIDATES, statuses()) == ("leader_b", "worker_c")


def test_an_unavailable_daemon_is_never_routed_through():
    assert choose_path(CANDIDATES, statuses(worker_c="unavailable")) == ("leader_e", "worker_d")
    assert choose_path(CANDIDATES, statuses(leader_b="unavailable", worker_d="unavailable")) is None


def test_a_healthier_path_beats_a_preferred_but_doubtful_one():
    assert choose_path(CANDIDATES, statuses(worker_c="degraded")) == ("leader_e", "worker_d")
    assert choose_path(CANDIDATES, statuses(worker_c="unknown", leader_e="unknown")) == ("leader_b", "worker_d")
    assert choose_path(CANDIDATES, statuses(worker_c="degraded", leader_e="degraded", worker_d="degraded")) == (
        "leader_b", "worker_c")


def test_paths_already_tried_are_skipped():
    assert choose_path(CANDIDATES, statuses(), excluded=[CANDIDATES[0]]) == CANDIDATES[1]
    assert choose_path(CANDIDATES, statuses(), excluded=CANDIDATES) is None


def test_single_failure_losses_name_the_partitions_a_daemon_would_take():
    routes = {"p1": [("b",), ("e", "d")], "p2": [("b", "c")], "p3": [("e", "f"), ("e", "d")]}
    assert single_failure_losses(routes) == {"b": ["p2"], "c": ["p2"], "e": ["p3"]}
    assert single_failure_losses({"p1": [("b",), ("e",)]}) == {}


@given(st.dictionaries(st.sampled_from("bcdef"), st.sampled_from(["healthy", "unknown", "degraded", "unavailable"])),
       st.lists(st.sampled_from(CANDIDATES), unique=True))
def test_the_choice_is_usable_untried_and_no_worse_than_any_alternative(known, tried):
    names = {"leader_b": "b", "worker_c": "c", "worker_d": "d", "leader_e": "e"}
    status_of = lambda daemon: known.get(names[daemon], "healthy")  # noqa: E731
    rank = {"healthy": 0, "unknown": 1, "degraded": 2}
    usable = [p for p in CANDIDATES if p not in tried and all(status_of(h) != "unavailable" for h in p)]
    chosen = choose_path(CANDIDATES, status_of, tried)
    if not usable:
        assert chosen is None
        return
    assert chosen in usable
    worst = lambda path: max(rank[status_of(h)] for h in path)  # noqa: E731
    assert worst(chosen) == min(worst(p) for p in usable)
    assert chosen == next(p for p in usable if worst(p) == worst(chosen))
