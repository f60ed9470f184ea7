"""Deadline on a hand-moved clock: what is left, the timeouts handed to gRPC, and the margin a call
to a child keeps so that a partial answer can still be reported."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.deadline import MAX_MARGIN_SECONDS, MIN_TIMEOUT_SECONDS, Deadline
from tests.unit.fakes import FakeContext


class Now:
    def __init__(self, start: float = 100.0):
        self.time = start

    def __call__(self) -> float:
        return self.time


def test_remaining_counts_down_with_the_clock_and_never_goes_below_zero() -> None:
    now = Now()
    deadline = Deadline.after(10.0, now)
    assert deadline.remaining() == 10.0
    now.time = 104.0
    assert deadline.remaining() == 6.0
    now.time = 125.0
    assert deadline.remaining() == 0.0


@pytest.mark.parametrize("cap, expected", [(2.0, 2.0), (6.0, 6.0), (100.0, 6.0)])
def test_remaining_is_at_most_the_cap(cap: float, expected: float) -> None:
    now = Now()
    deadline = Deadline.after(10.0, now)
    now.time = 104.0
    assert deadline.remaining(cap) == expected


def test_without_a_deadline_only_the_cap_bounds_what_is_left() -> None:
    deadline = Deadline.after(None, Now())
    assert deadline.at is None
    assert deadline.remaining() is None
    assert deadline.remaining(3.0) == 3.0
    assert deadline.timeout() is None
    assert deadline.timeout(3.0) == 3.0
    assert not deadline.expired()


def test_timeout_is_what_is_left_but_never_below_the_minimum() -> None:
    now = Now()
    deadline = Deadline.after(10.0, now)
    assert deadline.timeout() == 10.0
    assert deadline.timeout(4.0) == 4.0
    now.time = 110.0
    assert deadline.timeout() == MIN_TIMEOUT_SECONDS
    now.time = 500.0
    assert deadline.timeout(4.0) == MIN_TIMEOUT_SECONDS
    assert Deadline.after(None, now).timeout(0.0) == MIN_TIMEOUT_SECONDS


def test_expired_from_the_deadline_on() -> None:
    now = Now()
    deadline = Deadline.after(10.0, now)
    now.time = 109.999
    assert not deadline.expired()
    now.time = 110.0
    assert deadline.expired()
    now.time = 200.0
    assert deadline.expired()


@pytest.mark.parametrize("left, cap, expected", [
    (100.0, 30.0, 29.0),  # the cap bounds what is left; the margin is at its most
    (30.0, 30.0, 29.0),
    (20.0, 30.0, 19.0),
    (10.0, 30.0, 9.0),  # 10% is exactly the most
    (5.0, 30.0, 4.5),  # 10%
    (5.0, 2.0, 1.8),  # 10% of the cap
    (0.5, 30.0, 0.45),
    (0.001, 30.0, MIN_TIMEOUT_SECONDS),  # 0.0009 would be below the minimum
    (0.0, 30.0, MIN_TIMEOUT_SECONDS),  # expired: still a timeout gRPC accepts
    (-5.0, 30.0, MIN_TIMEOUT_SECONDS),  # long past
    (None, 30.0, 29.0),  # no deadline: the cap alone
    (None, 2.0, 1.8),
])
def test_child_timeout_keeps_a_margin_of_ten_percent_up_to_a_second(left: float | None, cap: float,
                                                                     expected: float) -> None:
    now = Now()
    deadline = Deadline(None if left is None else now() + left, now)
    assert deadline.child_timeout(cap) == pytest.approx(expected)


def test_of_call_takes_the_callers_deadline_when_the_call_arrives() -> None:
    now = Now()
    deadline = Deadline.of_call(FakeContext(timeout=30.0), now)
    assert deadline.at == 130.0
    now.time = 120.0
    assert deadline.remaining() == 10.0
    assert deadline.child_timeout(60.0) == 9.0


def test_of_call_without_a_deadline_has_none() -> None:
    deadline = Deadline.of_call(FakeContext(), Now())
    assert deadline.at is None
    assert deadline.remaining() is None
    assert not deadline.expired()


@given(left=st.floats(min_value=-10.0, max_value=1e5, allow_nan=False),
       cap=st.floats(min_value=MIN_TIMEOUT_SECONDS, max_value=1e4, allow_nan=False),
       start=st.floats(min_value=0.0, max_value=1e6, allow_nan=False))
def test_a_child_timeout_is_positive_within_the_cap_and_what_is_left_and_keeps_the_margin(
        left: float, cap: float, start: float) -> None:
    now = Now(start)
    deadline = Deadline(start + left, now)
    remaining = deadline.remaining()
    assert remaining is not None
    timeout = deadline.child_timeout(cap)
    assert timeout > 0
    assert timeout <= cap
    # Only the floor handed to gRPC may exceed what is left (an expired deadline still gets one).
    assert timeout <= max(remaining, MIN_TIMEOUT_SECONDS)
    bounded = min(remaining, cap)
    if timeout > MIN_TIMEOUT_SECONDS:
        assert bounded - timeout >= min(MAX_MARGIN_SECONDS, 0.1 * bounded) * (1 - 1e-9)
