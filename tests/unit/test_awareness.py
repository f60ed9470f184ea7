"""The prober's own slowness (Lifeguard's awareness): how it is scored and how it stretches deadlines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.health.awareness import Awareness


@pytest.mark.parametrize("lateness, expected_score", [
    ([], 0),
    ([0.001, 0.002, 0.049], 0),  # the wake-up noise of an idle loop
    ([0.3], 1),
    ([0.3, 0.3, 0.3], 3),
    ([0.3] * 10, 4),  # capped
    ([0.3] * 10 + [0.001] * 2, 2),  # on time again: it wears off one point a timer
    ([0.3, 0.001, 0.001, 0.001], 0),  # never below zero
])
def test_late_timers_raise_the_score_and_timely_ones_lower_it(lateness: list[float], expected_score: int) -> None:
    awareness = Awareness()
    for seconds in lateness:
        awareness.timer_fired(seconds)
    assert awareness.score == expected_score


@pytest.mark.parametrize("score, stretched", [(0, 0.6), (1, 0.675), (2, 0.75), (4, 0.9)])
def test_a_deadline_is_stretched_by_an_eighth_a_point_and_at_most_half(score: int, stretched: float) -> None:
    awareness = Awareness()
    awareness.apply_delta(score)
    assert awareness.scale(0.6) == pytest.approx(stretched)


def test_a_late_answer_counts_as_local_slowness() -> None:
    awareness = Awareness()
    awareness.late_answer()
    assert awareness.score == 1


def test_the_stretch_keeps_a_hang_detectable_within_the_targets() -> None:
    """The cap is what keeps SIGSTOP -> degraded within 1.6 s: a probe sent at most one interval
    (0.4 s, +5 % jitter) after the hang, then its stretched deadline."""
    awareness = Awareness()
    awareness.apply_delta(100)
    assert 0.4 * 1.05 + awareness.scale(0.6) <= 1.6 - 0.2  # 0.2 s left for the prober's own lag


@given(st.lists(st.one_of(st.floats(0, 10), st.just(-1.0)), max_size=100))
def test_the_score_stays_within_its_bounds(events: list[float]) -> None:
    awareness = Awareness()
    for event in events:
        if event < 0:
            awareness.late_answer()
        else:
            awareness.timer_fired(event)
        assert 0 <= awareness.score <= awareness.max_score
        assert 1.0 <= awareness.multiplier <= 1 + awareness.max_score * awareness.stretch_per_point
