"""Choosing a copy of each partition, failing over within one request, and checking a placement
against single failures."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from daemons.planning.failover import Assignment, RequestPlan
from daemons.planning.paths import Path, choose_path, single_failure_losses
from daemons.rpc import airquality_pb2 as pb

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
    routes: dict[str, list[Path]] = {"p1": [("b",), ("e", "d")], "p2": [("b", "c")], "p3": [("e", "f"), ("e", "d")]}
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


# -- one request's plan: assignment and failover ------------------------------------------------------

ROUTES: dict[str, list[Path]] = {"p1": [("b", "c"), ("e", "d")], "p2": [("e",), ("b", "c")]}


def healthy(daemon: str) -> str:
    return "healthy"


def failed(partition: str, error: str = "UNAVAILABLE: gone") -> pb.PartitionStatus:
    return pb.PartitionStatus(partition=partition, complete=False, error=error)


def test_a_plan_assigns_the_preferred_copies_and_records_what_completes() -> None:
    plan = RequestPlan(ROUTES)
    assert plan.assign(healthy) == [Assignment("p1", ("b", "c")), Assignment("p2", ("e",))]
    assert plan.settle(pb.PartitionStatus(partition="p1", complete=True, rows=5), healthy) is None
    assert plan.progress.missing == ["p2"]


def test_a_failed_copy_is_replaced_after_the_rows_delivered_and_each_copy_is_tried_once() -> None:
    plan = RequestPlan(ROUTES)
    plan.assign(healthy)
    plan.rows_received("p1", 0, 8)
    plan.rows_received("p1", 8, 4)
    assert plan.settle(failed("p1"), healthy) == Assignment("p1", ("e", "d"), 12, replaces=("b", "c"),
                                                            reason="UNAVAILABLE: gone")
    assert plan.settle(failed("p1", "CANCELLED: hung"), healthy) is None  # no third copy
    assert plan.progress.statuses["p1"].error == "CANCELLED: hung; no other live copy"
    assert plan.progress.missing == ["p1", "p2"] and plan.rows_delivered == 12


def test_copies_out_of_reach_are_not_assigned_and_say_why() -> None:
    plan = RequestPlan(ROUTES)
    status_of = {"b": "unavailable", "e": "unavailable"}.get
    assert plan.assign(lambda daemon: status_of(daemon) or "healthy") == []
    assert plan.progress.statuses["p2"].error == "no live copy (unavailable: b, e)"


def test_a_resumed_plan_only_assigns_what_is_not_complete_and_skips_what_was_delivered() -> None:
    plan = RequestPlan.resumed(ROUTES, {"p1": 7, "p2": 3}, complete=["p2"])
    assert plan.assign(healthy) == [Assignment("p1", ("b", "c"), 7)]
    assert plan.progress.statuses["p2"].complete and plan.rows_delivered == 10


def test_a_status_for_a_partition_not_in_flight_changes_nothing() -> None:
    plan = RequestPlan(ROUTES)
    assert plan.settle(failed("p1"), healthy) is None  # never assigned
    assert plan.settle(failed("elsewhere"), healthy) is None
    assert plan.progress.statuses == {}
