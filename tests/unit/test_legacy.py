"""The original contract's translation (servicers/legacy.py): filters, names and the statuses kept
for GetStatus. The whole path, on real daemons, is tests/integration/test_legacy.py."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.query.filter import InvalidQuery, parse_filter
from daemons.rpc import airquality_pb2 as pb
from daemons.rpc import fire_service_pb2 as fs
from daemons.servicers.legacy import (
    CANCELLED,
    COMPLETED,
    DEFAULT_LEGACY_CHUNK,
    MAX_LEGACY_CHUNK,
    PENDING,
    PROCESSING,
    LegacyStatuses,
    chunk_size_of,
    native_filter,
    process_letter,
)


def test_each_daemon_has_its_old_letter() -> None:
    assert [process_letter(name) for name in ("gateway_a", "leader_b", "worker_c", "worker_d", "leader_e",
                                              "worker_f")] == list("ABCDEF")


def test_zero_empty_and_none_mean_not_set_each_on_its_own() -> None:
    assert native_filter(fs.QueryFilter()) == pb.QueryFilter()
    native = native_filter(fs.QueryFilter(parameters=["PM2.5"], min_aqi=0, max_aqi=100, min_concentration=0.5,
                                          min_latitude=30.0, max_longitude=-100.0))
    assert list(native.parameters) == ["PM2.5"]
    assert not native.HasField("min_aqi") and native.max_aqi == 100
    assert native.min_concentration == 0.5 and not native.HasField("max_concentration")
    # A box with some bounds unset is open on those sides.
    assert (native.bbox.min_latitude, native.bbox.min_longitude, native.bbox.max_latitude,
            native.bbox.max_longitude) == (30.0, -180.0, 90.0, -100.0)


def test_iso_times_with_seconds_become_the_datas_minutes_and_others_are_refused_by_the_native_rules() -> None:
    native = native_filter(fs.QueryFilter(min_datetime="2020-08-10T01:00:00Z", max_datetime="2020-08-12"))
    assert (native.datetime_from, native.datetime_to) == ("2020-08-10T01:00", "2020-08-12")
    with pytest.raises(InvalidQuery, match="datetime_from"):
        parse_filter(native_filter(fs.QueryFilter(min_datetime="2020-08-10T01:00:30")))


@given(st.builds(fs.QueryFilter, min_aqi=st.integers(-1000, 1000) | st.just(0),
                 max_aqi=st.integers(-1000, 1000) | st.just(0),
                 min_concentration=st.floats(allow_nan=False, allow_infinity=False) | st.just(0.0),
                 max_concentration=st.floats(allow_nan=False, allow_infinity=False) | st.just(0.0)))
def test_each_range_bound_is_set_exactly_when_it_is_not_zero(legacy: fs.QueryFilter) -> None:
    native = native_filter(legacy)
    for field in ("min_aqi", "max_aqi", "min_concentration", "max_concentration"):
        value = getattr(legacy, field)
        assert native.HasField(field) == (value != 0)
        if value:
            assert getattr(native, field) == value
    with contextlib.suppress(InvalidQuery):  # a range upside down is refused with a reason; nothing else may raise
        parse_filter(native)


def test_chunk_sizes_zero_is_the_default_and_beyond_what_old_clients_receive_is_refused() -> None:
    assert chunk_size_of(fs.QueryRequest(max_results_per_chunk=0)) == DEFAULT_LEGACY_CHUNK
    assert chunk_size_of(fs.QueryRequest(max_results_per_chunk=1000)) == 1000
    for wrong in (-1, MAX_LEGACY_CHUNK + 1):
        with pytest.raises(InvalidQuery, match="max_results_per_chunk"):
            chunk_size_of(fs.QueryRequest(max_results_per_chunk=wrong))


def test_statuses_are_kept_a_while_after_the_end_and_an_id_runs_once_at_a_time() -> None:
    now = [0.0]
    statuses = LegacyStatuses(clock=lambda: now[0], keep_seconds=600, limit=3)
    first = statuses.start(1)
    assert first is not None and first.status == PENDING
    assert statuses.start(1) is None  # still running
    statuses.end(first, COMPLETED)
    again = statuses.start(1)  # ended: the id may be used again
    assert again is not None
    statuses.end(again, CANCELLED)
    now[0] = 599.0
    found = statuses.find(1)
    assert found is not None and found.status == CANCELLED
    now[0] = 601.0
    assert statuses.find(1) is None


def test_a_cancelled_request_stays_cancelled_whatever_ends_it_and_the_kept_are_bounded() -> None:
    statuses = LegacyStatuses(limit=2)
    cancelled = statuses.start(1)
    assert cancelled is not None
    cancelled.status = CANCELLED
    statuses.end(cancelled, COMPLETED)
    assert cancelled.status == CANCELLED
    for request_id in (2, 3, 4):
        ended = statuses.start(request_id)
        assert ended is not None
        statuses.end(ended, COMPLETED)
    assert [statuses.find(r) is not None for r in (1, 2, 3, 4)] == [False, False, True, True]


def test_a_cancel_is_kept_over_later_progress_and_an_ended_request_is_not_cancelled_after() -> None:
    statuses = LegacyStatuses()
    running = statuses.start(1)
    assert running is not None
    statuses.progress(running, delivered=2)
    statuses.cancel(running)
    statuses.progress(running, delivered=1)  # a chunk already on its way
    assert (statuses.response(1, running).status, running.chunks_delivered) == (CANCELLED, 3)
    done = statuses.start(2)
    assert done is not None
    statuses.progress(done)
    assert done.status == PROCESSING
    statuses.end(done, COMPLETED)
    statuses.cancel(done)
    statuses.end(done, CANCELLED)  # its stream's own end, later: the first end stands
    assert done.status == COMPLETED


def test_a_request_refused_before_it_ran_leaves_no_status() -> None:
    statuses = LegacyStatuses()
    refused = statuses.start(3)
    assert refused is not None
    statuses.forget(3, refused)
    assert statuses.find(3) is None
