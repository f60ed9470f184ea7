"""The neighbour health state machine, explored exhaustively against an independent model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemons.health.state import InvalidThreshold, NeighborState, ProbeResult, Status, Thresholds

OK = ProbeResult(True, "HealthCheck: SERVING", 0.5)
FAIL = ProbeResult(False, "UNAVAILABLE: connection refused", 0.3)


def feed(state: NeighborState, results: str, start: float = 100.0, step: float = 0.1):
    """Feeds 'o' (success) and 'x' (failure) results; returns the transitions as (from, to) pairs."""
    transitions = []
    for index, symbol in enumerate(results):
        transition = state.observe(OK if symbol == "o" else FAIL, start + index * step)
        if transition:
            transitions.append((transition.previous.value, transition.current.value))
    return transitions


def test_reference_defaults_one_failure_degrades_three_make_unavailable_one_success_heals():
    state = NeighborState("worker_c", Thresholds(startup_grace_seconds=0), now=0.0)
    assert feed(state, "oxxxxxo") == [("unknown", "healthy"), ("healthy", "degraded"), ("degraded", "unavailable"),
                                      ("unavailable", "healthy")]


def test_a_neighbour_that_stays_down_makes_one_transition():
    state = NeighborState("worker_c", Thresholds(), now=0.0)
    assert feed(state, "o" + "x" * 500) == [("unknown", "healthy"), ("healthy", "degraded"),
                                            ("degraded", "unavailable")]


def test_a_neighbour_that_has_not_started_stays_unknown_during_the_grace_period():
    state = NeighborState("worker_c", Thresholds(startup_grace_seconds=5), now=0.0)
    assert feed(state, "x" * 40, start=0.0, step=0.1) == []  # four seconds of refusals
    assert state.status is Status.UNKNOWN
    assert feed(state, "xx", start=6.0) == [("unknown", "unavailable")]


def test_successes_before_healthy_damps_flapping():
    state = NeighborState("worker_c", Thresholds(successes_before_healthy=3, startup_grace_seconds=0), now=0.0)
    assert feed(state, "ooo") == [("unknown", "healthy")]
    assert feed(state, "xxx" + "oo" + "x" + "oo", start=200) == [("healthy", "degraded"), ("degraded", "unavailable")]
    assert feed(state, "o", start=300) == [("unavailable", "healthy")]


def test_transition_carries_reason_failures_and_latency():
    state = NeighborState("worker_c", Thresholds(), now=0.0)
    state.observe(OK, 1.0)
    transition = state.observe(FAIL, 2.0)
    assert (transition.neighbor, transition.reason, transition.consecutive_failures, transition.latency_ms,
            transition.at) == ("worker_c", FAIL.reason, 1, 0.3, 2.0)
    assert state.since == 2.0


def test_a_failure_of_a_probe_sent_before_a_later_success_is_outdated():
    state = NeighborState("worker_c", Thresholds(startup_grace_seconds=0), now=0.0)
    state.observe(ProbeResult(True, "ping: SERVING", 0.4, sent=9.6), 10.0)  # answered after a resume
    # A check sent at 9.4, while the neighbour was still stopped, runs out of time after that answer:
    assert state.observe(ProbeResult(False, "DEADLINE_EXCEEDED: Deadline Exceeded", 600.0, sent=9.4), 10.0) is None
    assert (state.status, state.consecutive_failures, state.suspected) == (Status.HEALTHY, 0, False)
    # A probe sent after the success still counts.
    transition = state.observe(ProbeResult(False, "ping: no answer within 0.6 s", 600.0, sent=9.8), 10.4)
    assert transition is not None and transition.current is Status.DEGRADED


def test_a_neighbour_seen_running_settles_a_suspicion_without_changing_its_status():
    state = NeighborState("worker_c", Thresholds(startup_grace_seconds=0), now=0.0)
    state.observe(OK, 1.0)
    state.observe(FAIL, 2.0)  # degraded, and a suspicion to settle
    assert state.confirmations_wanted() == 2
    state.running()  # a probe timed out, but the process answered a PING: busy
    assert (state.status, state.consecutive_failures, state.confirmations_wanted()) == (Status.DEGRADED, 1, 0)
    assert state.observe(OK, 3.0).current is Status.HEALTHY  # its late answer heals it


def test_success_rate_over_the_window():
    state = NeighborState("worker_c", Thresholds(window_seconds=10), now=0.0)
    for second, result in enumerate([OK, OK, FAIL, OK]):
        state.observe(result, float(second))
    assert state.success_rate(3.0) == (0.75, 4)
    assert state.success_rate(12.5) == (1.0, 1)  # only the result at t=3 is within 10 s
    assert state.success_rate(100.0) == (0.0, 0)


@pytest.mark.parametrize("arguments", [dict(failures_before_degraded=0), dict(failures_before_degraded=4),
                                       dict(successes_before_healthy=0), dict(window_seconds=0)])
def test_inconsistent_thresholds_are_refused(arguments):
    with pytest.raises(InvalidThreshold, match=next(iter(arguments))):
        Thresholds(**arguments)


def model(thresholds: Thresholds, results: list[tuple[bool, float]], created: float) -> list[tuple[str, str]]:
    """An independent statement of the rules, written from the specification."""
    status, failures, successes, transitions = "unknown", 0, 0, []
    for ok, now in results:
        failures, successes = (0, successes + 1) if ok else (failures + 1, 0)
        target = status
        if ok and successes >= thresholds.successes_before_healthy:
            target = "healthy"
        elif not ok:
            grace_over = now - created >= thresholds.startup_grace_seconds
            if failures >= thresholds.failures_before_unavailable and (status != "unknown" or grace_over):
                target = "unavailable"
            elif status == "healthy" and failures >= thresholds.failures_before_degraded:
                target = "degraded"
        if target != status:
            transitions.append((status, target))
            status = target
    return transitions


@st.composite
def scenarios(draw):
    degraded = draw(st.integers(1, 4))
    thresholds = Thresholds(failures_before_degraded=degraded,
                            failures_before_unavailable=draw(st.integers(degraded, 6)),
                            successes_before_healthy=draw(st.integers(1, 4)),
                            startup_grace_seconds=draw(st.sampled_from([0.0, 1.0, 5.0])))
    gaps = draw(st.lists(st.floats(0.0, 2.0), max_size=80))
    outcomes = draw(st.lists(st.booleans(), min_size=len(gaps), max_size=len(gaps)))
    times, now = [], 0.0
    for gap in gaps:
        now += gap
        times.append(now)
    return thresholds, list(zip(outcomes, times))


@settings(max_examples=500, deadline=None)
@given(scenarios())
def test_the_machine_agrees_with_the_model_and_keeps_its_invariants(scenario):
    thresholds, results = scenario
    state = NeighborState("n", thresholds, now=0.0)
    seen = []
    for ok, now in results:
        before = state.status
        transition = state.observe(ProbeResult(ok, "r"), now)
        if transition is None:
            assert state.status is before  # no silent change
            continue
        assert transition.previous is before and transition.current is state.status != before
        assert state.since == now
        # never back to unknown, and healthy only after a success, degraded/unavailable only after a failure
        assert transition.current is not Status.UNKNOWN
        assert ok == (transition.current is Status.HEALTHY)
        assert ok or transition.consecutive_failures >= thresholds.failures_before_degraded
        seen.append((transition.previous.value, transition.current.value))
    assert seen == model(thresholds, results, created=0.0)
