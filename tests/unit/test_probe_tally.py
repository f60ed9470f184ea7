"""A neighbour's probe counts (health/tally.py): latencies in Prometheus buckets (a value on a bound
counts in that bucket), cumulative counts ending at the total, and tallies that add up."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from daemons.health.tally import FAILURE, LATENCY_BUCKETS_SECONDS, SUCCESS, LatencyCounts, ProbeKind, ProbeTally

STATUSES = ("unknown", "healthy", "degraded", "unavailable")

# Latencies on the bounds, just either side of them, and dyadic fractions of a second (whose sums
# are exact, so that tallies added in any order agree to the last bit).
bounds_and_neighbours = st.sampled_from([*LATENCY_BUCKETS_SECONDS,
                                         *(math.nextafter(bound, 0.0) for bound in LATENCY_BUCKETS_SECONDS),
                                         *(math.nextafter(bound, math.inf) for bound in LATENCY_BUCKETS_SECONDS)])
latencies = st.one_of(bounds_and_neighbours, st.integers(0, 4 * 4096).map(lambda k: k / 4096))
dyadic_latencies = st.one_of(st.none(), st.integers(0, 4 * 4096).map(lambda k: k / 4096))
probes = st.lists(st.tuples(st.sampled_from(list(ProbeKind)), st.booleans(), dyadic_latencies), max_size=40)
transitions = st.lists(st.tuples(st.sampled_from(STATUSES), st.sampled_from(STATUSES)), max_size=10)


def tally_of(probe_list: list[tuple[ProbeKind, bool, float | None]],
             transition_list: list[tuple[str, str]] = ()) -> ProbeTally:
    tally = ProbeTally()
    for kind, ok, latency in probe_list:
        tally.probe(kind, ok, latency)
    for previous, current in transition_list:
        tally.transition(previous, current)
    return tally


def as_plain(tally: ProbeTally) -> tuple[dict, dict, dict]:
    """What a tally says, with zero counts left out (a Counter sum drops them)."""
    return ({key: count for key, count in tally.results.items() if count},
            {key: count for key, count in tally.transitions.items() if count},
            {kind: (tuple(counts.buckets), counts.total_seconds) for kind, counts in tally.latencies.items()})


def test_a_latency_exactly_on_a_bound_counts_in_that_bound_s_bucket():
    for index, bound in enumerate(LATENCY_BUCKETS_SECONDS):
        on, above = LatencyCounts(), LatencyCounts()
        on.add(bound)
        above.add(math.nextafter(bound, math.inf))
        assert on.buckets.index(1) == index, bound
        assert above.buckets.index(1) == index + 1, bound


def test_latencies_beyond_the_last_bound_and_at_zero_land_at_the_ends():
    counts = LatencyCounts()
    for seconds in (0.0, 2.5000001, 60.0):
        counts.add(seconds)
    assert counts.buckets[0] == 1 and counts.buckets[-1] == 2
    assert sum(counts.buckets) == 3
    assert counts.cumulative()[-1] == (math.inf, 3)
    assert counts.total_seconds == 0.0 + 2.5000001 + 60.0


def test_an_empty_histogram_is_all_zeros_up_to_inf():
    pairs = LatencyCounts().cumulative()
    assert [bound for bound, _ in pairs] == [*LATENCY_BUCKETS_SECONDS, math.inf]
    assert all(count == 0 for _, count in pairs)


@given(st.lists(latencies, max_size=60))
def test_each_cumulative_count_is_the_number_of_latencies_at_or_below_its_bound(values: list[float]):
    counts = LatencyCounts()
    for seconds in values:
        counts.add(seconds)
    pairs = counts.cumulative()
    assert [bound for bound, _ in pairs] == [*LATENCY_BUCKETS_SECONDS, math.inf]
    for bound, count in pairs:
        assert count == sum(1 for seconds in values if seconds <= bound), bound
    running = [count for _, count in pairs]
    assert running == sorted(running)  # never decreasing
    assert running[-1] == len(values)


def test_probes_count_by_kind_and_outcome_and_only_timed_ones_make_latencies():
    tally = tally_of([(ProbeKind.DATAGRAM, True, 0.001), (ProbeKind.DATAGRAM, False, None),
                      (ProbeKind.DATAGRAM, True, 0.002), (ProbeKind.GRPC, False, 0.3)],
                     [("unknown", "healthy"), ("healthy", "degraded"), ("unknown", "healthy")])
    assert tally.results == {("datagram", SUCCESS): 2, ("datagram", FAILURE): 1, ("grpc", FAILURE): 1}
    assert sum(tally.latencies["datagram"].buckets) == 2 and sum(tally.latencies["grpc"].buckets) == 1
    assert "watch" not in tally.latencies
    assert tally.transitions == {("unknown", "healthy"): 2, ("healthy", "degraded"): 1}


@given(probes, probes, transitions, transitions)
def test_the_tally_of_two_runs_of_probes_is_the_sum_of_their_tallies(first, second, first_moves, second_moves):
    together = tally_of(first + second, first_moves + second_moves)
    added = tally_of(first, first_moves).plus(tally_of(second, second_moves))
    assert as_plain(added) == as_plain(together)


@given(probes, transitions)
def test_a_copy_says_the_same_and_shares_nothing_with_its_original(probe_list, transition_list):
    original = tally_of(probe_list, transition_list)
    before = as_plain(original)
    copied = original.copy()
    assert as_plain(copied) == before
    for kind in ProbeKind:
        copied.probe(kind, True, 0.001)
        copied.probe(kind, False, 3.0)
    copied.transition("healthy", "unavailable")
    assert as_plain(original) == before
    assert as_plain(copied) != before


def test_adding_a_tally_leaves_the_other_operand_unchanged():
    first = tally_of([(ProbeKind.GRPC, True, 0.01)])
    second = tally_of([(ProbeKind.GRPC, False, 0.5), (ProbeKind.WATCH, True, 0.002)], [("healthy", "degraded")])
    before = as_plain(second)
    total = first.plus(second)
    total.probe(ProbeKind.WATCH, True, 0.002)  # a kind only the right operand had
    total.probe(ProbeKind.GRPC, True, 0.002)  # a kind both had: summed into a new histogram
    assert as_plain(second) == before
    assert first.latencies["grpc"].buckets == tally_of([(ProbeKind.GRPC, True, 0.01)]).latencies["grpc"].buckets


def test_a_sum_shares_no_histogram_with_the_tally_that_alone_had_the_kind():
    alone = ProbeTally()
    alone.probe(ProbeKind.GRPC, True, 0.01)
    total = alone.plus(ProbeTally())
    total.probe(ProbeKind.GRPC, True, 0.01)
    assert sum(alone.latencies["grpc"].buckets) == 1
