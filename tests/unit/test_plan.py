"""Choosing a copy of each partition, failing over within one request, and checking a placement
against single failures."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.planning.failover import Assignment, RequestPlan
from daemons.planning.paths import Path, choose_path, single_failure_losses
from daemons.planning.replicas import NO_ROWS, Copy, Mismatch, ReplicaCatalog, unverified_choices
from daemons.rpc import airquality_pb2 as pb

CANDIDATES = [("leader_b", "worker_c"), ("leader_e", "worker_d"), ("leader_b", "worker_d")]


def statuses(**known):
    return lambda daemon: known.get(daemon, "healthy")


def test_the_preferred_path_wins_when_all_are_healthy():
    assert choose_path(CANDIDATES, statuses()) == ("leader_b", "worker_c")


def test_a_first_hop_seen_unavailable_is_never_routed_through():
    assert choose_path(CANDIDATES, statuses(leader_b="unavailable")) == ("leader_e", "worker_d")
    assert choose_path(CANDIDATES, statuses(leader_b="unavailable", leader_e="unavailable")) is None


def test_a_daemon_reported_unavailable_further_down_is_the_last_resort():
    """Its watcher's word may be a second old: tried only when no other copy is left, and its
    watcher refuses the call at once if it is still down."""
    assert choose_path(CANDIDATES, statuses(worker_c="unavailable")) == ("leader_e", "worker_d")
    assert choose_path(CANDIDATES, statuses(worker_c="unavailable", worker_d="degraded")) == ("leader_e", "worker_d")
    assert choose_path(CANDIDATES, statuses(worker_c="unavailable", worker_d="unavailable")) == ("leader_b", "worker_c")
    assert choose_path(CANDIDATES, statuses(worker_c="unavailable", worker_d="unavailable"),
                       excluded=[("leader_b", "worker_c")]) == ("leader_e", "worker_d")


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
def test_the_choice_is_untried_its_first_hop_not_unavailable_and_no_worse_than_any_alternative(known, tried):
    names = {"leader_b": "b", "worker_c": "c", "worker_d": "d", "leader_e": "e"}
    status_of = lambda daemon: known.get(names[daemon], "healthy")  # noqa: E731
    rank = {"healthy": 0, "unknown": 1, "degraded": 2, "unavailable": 3}  # unavailable: below the first hop only
    usable = [p for p in CANDIDATES if p not in tried and status_of(p[0]) != "unavailable"]
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
CHOICES = unverified_choices(ROUTES)


def healthy(daemon: str) -> str:
    return "healthy"


def failed(partition: str, error: str = "UNAVAILABLE: gone") -> pb.PartitionStatus:
    return pb.PartitionStatus(partition=partition, complete=False, error=error)


def test_a_plan_assigns_the_preferred_copies_and_records_what_completes() -> None:
    plan = RequestPlan(CHOICES)
    assert plan.assign(healthy) == [Assignment("p1", ("b", "c")), Assignment("p2", ("e",))]
    assert plan.settle(pb.PartitionStatus(partition="p1", complete=True, rows=5), healthy) is None
    assert plan.progress.missing == ["p2"]


def test_a_failed_copy_is_replaced_after_the_rows_delivered_and_each_copy_is_tried_once() -> None:
    plan = RequestPlan(CHOICES)
    plan.assign(healthy)
    plan.rows_received("p1", 0, 8)
    plan.rows_received("p1", 8, 4)
    assert plan.settle(failed("p1"), healthy) == Assignment("p1", ("e", "d"), 12, replaces=("b", "c"),
                                                            reason="UNAVAILABLE: gone")
    assert plan.settle(failed("p1", "CANCELLED: hung"), healthy) is None  # no third copy
    assert plan.progress.statuses["p1"].error == "CANCELLED: hung; no other live copy"
    assert plan.progress.missing == ["p1", "p2"] and plan.rows_delivered == 12


def test_copies_out_of_reach_are_not_assigned_and_say_why() -> None:
    plan = RequestPlan(CHOICES)
    status_of = {"b": "unavailable", "e": "unavailable"}.get
    assert plan.assign(lambda daemon: status_of(daemon) or "healthy") == []
    assert plan.progress.statuses["p2"].error == "no live copy (unavailable: b, e)"


def test_a_resumed_plan_only_assigns_what_is_not_complete_and_skips_what_was_delivered() -> None:
    plan = RequestPlan.resumed(CHOICES, {"p1": 7, "p2": 3}, ["p2"], {})
    assert plan.assign(healthy) == [Assignment("p1", ("b", "c"), 7)]
    assert plan.progress.statuses["p2"].complete and plan.rows_delivered == 10


def test_a_status_for_a_partition_not_in_flight_changes_nothing() -> None:
    plan = RequestPlan(CHOICES)
    assert plan.settle(failed("p1"), healthy) is None  # never assigned
    assert plan.settle(failed("elsewhere"), healthy) is None
    assert plan.progress.statuses == {}


# -- copies that differ: pinned failover, gaps, disputes ---------------------------------------------


def finished(partition: str, fingerprint: str, gaps: tuple[str, ...] = (), served_by: str = "c") -> pb.PartitionStatus:
    return pb.PartitionStatus(partition=partition, complete=not gaps, fingerprint=fingerprint, gaps=gaps,
                              served_by=served_by, error="; ".join(gaps))


def catalog(*copies: tuple[str, str, tuple[str, ...]]) -> ReplicaCatalog:
    """ROUTES' p1 (copies on c, then d) with the given (daemon, fingerprint, gaps) known."""
    known = ReplicaCatalog(ROUTES)
    for daemon, fingerprint, gaps in copies:
        known.learn("p1", Copy(daemon, fingerprint, gaps))
    return known


def test_once_rows_are_delivered_a_replacement_must_hold_the_same_content() -> None:
    plan = RequestPlan(CHOICES)
    assert plan.assign(healthy)[0].fingerprint == ""  # nothing known: the first copy may hold anything
    plan.rows_received("p1", 0, 8, "100:aaa")
    replacement = plan.settle(failed("p1"), healthy)
    assert replacement is not None and (replacement.skip_rows, replacement.fingerprint) == (8, "100:aaa")


def test_a_resumed_plan_keeps_the_content_its_token_names() -> None:
    plan = RequestPlan.resumed(CHOICES, {"p1": 7}, [], {"p1": "100:aaa"})
    assert [(a.partition, a.skip_rows, a.fingerprint) for a in plan.assign(healthy)] == [
        ("p1", 7, "100:aaa"), ("p2", 0, "")]


def test_a_copy_with_gaps_finishes_the_partition_incomplete_without_a_failover() -> None:
    plan = RequestPlan(CHOICES)
    plan.assign(healthy)
    assert plan.settle(finished("p1", "90:bbb", ("day 20200914 missing on disk",)), healthy) is None
    assert plan.progress.missing == ["p1", "p2"]
    assert plan.progress.statuses["p1"].error == "day 20200914 missing on disk"


def test_copies_that_agree_are_all_candidates_and_expected_to_hold_that_content() -> None:
    choice = catalog(("c", "100:aaa", ()), ("d", "100:aaa", ())).choose("p1")
    assert choice.paths == (("b", "c"), ("e", "d")) and not choice.fallback and not choice.disputed
    assert choice.expected(("e", "d")) == "100:aaa"


def test_a_copy_with_gaps_is_only_a_fallback_behind_a_complete_one() -> None:
    choice = catalog(("c", "90:bbb", ("day 20200914 missing on disk",)), ("d", "100:aaa", ())).choose("p1")
    assert (choice.paths, choice.fallback) == ((("e", "d"),), (("b", "c"),))
    plan = RequestPlan({"p1": choice})
    assert plan.assign(lambda daemon: "unavailable" if daemon == "e" else "healthy")[0].path == ("b", "c")
    # A complete copy reported down is still tried before the one with gaps.
    reported = RequestPlan({"p1": choice})
    d_down = lambda daemon: "unavailable" if daemon == "d" else "healthy"  # noqa: E731
    assert reported.assign(d_down)[0].path == ("e", "d")
    replacement = reported.settle(failed("p1", "d: unavailable, as e's health monitor sees it"), d_down)
    assert replacement is not None and replacement.path == ("b", "c")
    pinned = RequestPlan({"p1": choice})
    pinned.assign(healthy)
    pinned.rows_received("p1", 0, 5, "100:aaa")
    assert pinned.settle(failed("p1"), healthy) is None  # rows delivered: the copy with gaps may not continue them
    assert pinned.progress.missing == ["p1"]


def test_complete_copies_that_disagree_serve_the_preferred_one_and_never_claim_complete() -> None:
    known = catalog(("c", "100:aaa", ()))
    assert known.learn("p1", Copy("d", "100:zzz")) == [
        Mismatch("p1", "c", "100:aaa", "d", "100:zzz")]
    assert known.learn("p1", Copy("d", "100:zzz")) == []  # reported once
    choice = known.choose("p1")
    assert choice.paths == (("b", "c"),) and "copies disagree" in choice.disputed
    plan = RequestPlan({"p1": choice})
    plan.assign(healthy)
    assert plan.settle(finished("p1", "100:aaa"), healthy) is None
    status = plan.progress.statuses["p1"]
    assert not status.complete and "copies disagree" in status.error and plan.progress.missing == ["p1"]


@settings(deadline=None)  # milliseconds each, but a loaded CI machine must not fail it
@given(st.lists(st.tuples(st.sampled_from("cd"), st.sampled_from(["1:a", "1:b", "2:c"]), st.booleans()), max_size=6),
       st.lists(st.sampled_from(["c", "d"]), max_size=2, unique=True))
def test_no_failover_ever_mixes_rows_of_different_contents(learned, failing) -> None:
    """Whatever the catalog knows and whichever copies fail, the copies that deliver rows of a
    partition in one request all hold the content of the first one that did (a property)."""
    known = ReplicaCatalog(ROUTES)
    contents = {"c": "1:a", "d": "1:a"}
    for daemon, fingerprint, gap in learned:
        known.learn("p1", Copy(daemon, fingerprint, ("a gap",) if gap else ()))
        contents[daemon] = fingerprint
    plan = RequestPlan({"p1": known.choose("p1")})
    assignment = next((a for a in plan.assign(healthy) if a.partition == "p1"), None)
    delivered_from: list[str] = []
    while assignment is not None:
        holder = assignment.path[-1]
        if assignment.fingerprint and assignment.fingerprint != contents[holder]:
            status = pb.PartitionStatus(partition="p1", error="replica mismatch")  # the copy refuses
        else:
            plan.rows_received("p1", assignment.skip_rows, 1, contents[holder])
            delivered_from.append(contents[holder])
            status = failed("p1") if holder in failing else finished("p1", contents[holder], served_by=holder)
        assignment = plan.settle(status, healthy)
    assert len(set(delivered_from)) <= 1


# -- pruning: partitions a query's time range misses ---------------------------------------------------

AUGUST_20, AUGUST_21 = 26_631_360, 26_632_800  # epoch minutes of 2020-08-20T00:00 and 2020-08-21T00:00


PROCESSES = {"c": 301, "d": 302}  # the holders' processes, as their watchers hear them now
running = PROCESSES.get


def spanned(*copies: tuple[str, tuple[int, int] | None]) -> ReplicaCatalog:
    """p1 held by c and d (each with the span of its rows, said by its process), p2 by nobody known."""
    known = ReplicaCatalog({"p1": [("b", "c"), ("e", "d")], "p2": [("b", "c")]})
    for daemon, minutes in copies:
        known.learn("p1", Copy(daemon, "100:aaa", (), minutes, PROCESSES[daemon]))
    return known


def test_a_partition_whose_every_copy_misses_the_range_is_complete_without_asking_anyone() -> None:
    plan = RequestPlan(spanned(("c", (AUGUST_20, AUGUST_21)), ("d", (AUGUST_20, AUGUST_21))).choices())
    assert plan.prune(AUGUST_21 + 1, None, running) == ["p1"]
    assert [a.partition for a in plan.assign(statuses())] == ["p2"]  # nothing is known of p2's copies
    status = plan.progress.statuses["p1"]
    assert (status.complete, status.pruned, status.rows) == (True, True, 0)
    assert plan.progress.pruned == ["p1"] and plan.progress.missing == ["p2"]


def test_a_range_touching_a_copy_or_unbounded_prunes_nothing() -> None:
    for first, last in ((AUGUST_21, None), (None, AUGUST_20), (None, None), (AUGUST_20 + 5, AUGUST_20 + 5)):
        plan = RequestPlan(spanned(("c", (AUGUST_20, AUGUST_21)), ("d", (AUGUST_20, AUGUST_21))).choices())
        assert plan.prune(first, last, running) == [], (first, last)


def test_a_copy_whose_span_is_not_known_keeps_the_partition_asked() -> None:
    plan = RequestPlan(spanned(("c", (AUGUST_20, AUGUST_21)), ("d", None)).choices())
    assert plan.prune(AUGUST_21 + 1, None, running) == []
    plan = RequestPlan(spanned(("c", (AUGUST_20, AUGUST_21))).choices())  # d has not said yet
    assert plan.prune(AUGUST_21 + 1, None, running) == []


def test_copies_with_no_rows_miss_every_range_and_spans_combine() -> None:
    assert spanned(("c", NO_ROWS), ("d", NO_ROWS)).choose("p1").misses(None, None, running)
    choice = spanned(("c", NO_ROWS), ("d", (AUGUST_20, AUGUST_21))).choose("p1")
    assert choice.minutes == (AUGUST_20, AUGUST_21) and not choice.misses(AUGUST_20, AUGUST_20, running)


def test_a_scans_status_keeps_the_span_a_status_fetch_gave() -> None:
    known = spanned(("c", (AUGUST_20, AUGUST_21)), ("d", (AUGUST_20, AUGUST_21)))
    known.learn("p1", Copy("c", "100:aaa"))  # from a scan: the fingerprint, no span
    assert known.known("p1", "c") == Copy("c", "100:aaa", (), (AUGUST_20, AUGUST_21), PROCESSES["c"])
    known.learn("p1", Copy("c", "120:bbb"))  # other rows now: their span is not known
    assert known.known("p1", "c") == Copy("c", "120:bbb")


def test_a_resumed_plan_never_prunes_a_partition_whose_rows_the_client_has() -> None:
    choices = spanned(("c", (AUGUST_20, AUGUST_21)), ("d", (AUGUST_20, AUGUST_21))).choices()
    plan = RequestPlan.resumed(choices, {"p1": 10}, (), {"p1": "100:aaa"})
    assert plan.prune(AUGUST_21 + 1, None, running) == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=3),
       st.one_of(st.none(), st.integers(-5, 105)), st.one_of(st.none(), st.integers(-5, 105)))
def test_pruning_never_drops_a_partition_with_a_row_in_range(rows_by_copy, first, last) -> None:
    """Each copy holds rows at the given minutes; a pruned partition has none in [first, last]."""
    known = ReplicaCatalog({"p1": [(f"h{i}",) for i in range(len(rows_by_copy))]})
    for index, (one, other) in enumerate(rows_by_copy):
        known.learn("p1", Copy(f"h{index}", f"{index}:x", (), (min(one, other), max(one, other)), 1))
    in_range = any(not ((first is not None and max(minutes) < first) or (last is not None and min(minutes) > last))
                   for minutes in rows_by_copy)
    if RequestPlan(known.choices()).prune(first, last, lambda daemon: 1):
        assert not in_range


def test_a_copy_with_gaps_keeps_its_partition_asked_whatever_the_range() -> None:
    known = ReplicaCatalog({"p1": [("b", "c")]})
    known.learn("p1", Copy("c", "0:x", ("day 20200821 missing on disk",), NO_ROWS))
    plan = RequestPlan(known.choices())
    assert plan.prune(None, None, running) == [] and plan.prune(AUGUST_21, AUGUST_21, running) == []


def test_a_restarted_holder_keeps_its_partition_asked_until_its_new_process_says_what_it_holds() -> None:
    """Rows change only when their holder restarts, perhaps with other files: a span its old process
    gave is not trusted once its watcher hears another process, nor before it hears any."""
    choices = spanned(("c", (AUGUST_20, AUGUST_21)), ("d", (AUGUST_20, AUGUST_21))).choices()
    assert RequestPlan(choices).prune(AUGUST_21 + 1, None, {**PROCESSES, "d": 999}.get) == []
    assert RequestPlan(choices).prune(AUGUST_21 + 1, None, {"c": 301}.get) == []  # d not heard
    assert RequestPlan(choices).prune(AUGUST_21 + 1, None, running) == ["p1"]
