"""Sealed health datagrams (health/seal.py): what is believed, and why the rest is dropped.

The sockets around them are in test_datagram.py, the prober's echo check in test_monitor.py, and
forged datagrams at real daemons in tests/integration/test_tls.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.health.seal import (
    MAGIC,
    MALFORMED,
    MAX_DATAGRAM,
    OVERSIZED,
    REPLAYED,
    STALE,
    UNAUTHENTICATED,
    UNSEALED,
    Dropped,
    Kind,
    RequestFreshness,
    Seal,
)
from daemons.mac import MAC_BYTES
from daemons.rpc import airquality_pb2 as pb

KEY = bytes(range(32))
SEAL = Seal(KEY)
NOW_US = 1_790_000_000_000_000
REQUEST = pb.HealthRequest(requester_id="leader_e", timestamp=NOW_US, gasp_port=40000, gasp_token=b"t" * 16)
REPLY = pb.HealthResponse(healthy=True, status="SERVING", process_id=42, daemon="worker_f",
                          request_timestamp=NOW_US)


def reason(open_it) -> str:
    with pytest.raises(Dropped) as dropped:
        open_it()
    return dropped.value.reason


def test_each_kind_opens_as_itself_only() -> None:
    assert SEAL.open_request(SEAL.seal(Kind.REQUEST, REQUEST)) == REQUEST
    assert SEAL.open_response(Kind.REPLY, SEAL.seal(Kind.REPLY, REPLY)) == REPLY
    assert SEAL.open_response(Kind.GASP, SEAL.seal(Kind.GASP, REPLY)) == REPLY
    # A probe reflected back as its reply, or a reply passed off as a gasp, is not believed.
    assert reason(lambda: SEAL.open_response(Kind.REPLY, SEAL.seal(Kind.REQUEST, REQUEST))) == UNAUTHENTICATED
    assert reason(lambda: SEAL.open_response(Kind.GASP, SEAL.seal(Kind.REPLY, REPLY))) == UNAUTHENTICATED


def test_unsealed_another_keys_and_oversized_datagrams_are_dropped_with_their_reason() -> None:
    assert reason(lambda: SEAL.open_request(REQUEST.SerializeToString())) == UNAUTHENTICATED
    assert reason(lambda: SEAL.open_request(Seal(b"k" * 32).seal(Kind.REQUEST, REQUEST))) == UNAUTHENTICATED
    assert reason(lambda: SEAL.open_request(MAGIC + b"short")) == MALFORMED
    assert reason(lambda: SEAL.open_request(SEAL.seal(Kind.REQUEST, REQUEST) + b"\0" * MAX_DATAGRAM)) == OVERSIZED
    # A tag made over bytes that are no message at all is still no message.
    body = b"\xff" * 10
    forged_with_the_key = MAGIC + SEAL._tag(Kind.REQUEST, body) + body
    assert reason(lambda: SEAL.open_request(forged_with_the_key)) == MALFORMED


def test_without_a_key_the_bare_message_is_read_and_a_sealed_one_is_malformed() -> None:
    assert UNSEALED.seal(Kind.REQUEST, REQUEST) == REQUEST.SerializeToString()
    assert UNSEALED.open_request(REQUEST.SerializeToString()) == REQUEST
    assert reason(lambda: UNSEALED.open_request(b"\xff" * 10)) == MALFORMED


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_change_to_a_sealed_datagram_is_dropped(position: int, flip: int) -> None:
    sealed = bytearray(SEAL.seal(Kind.REPLY, REPLY))
    sealed[position % len(sealed)] ^= flip
    with pytest.raises(Dropped):
        SEAL.open_response(Kind.REPLY, bytes(sealed))


@given(st.integers(min_value=0))
def test_any_truncation_of_a_sealed_datagram_is_dropped(cut: int) -> None:
    sealed = SEAL.seal(Kind.REQUEST, REQUEST)
    with pytest.raises(Dropped):
        SEAL.open_request(sealed[:cut % len(sealed)])


@given(st.binary(max_size=MAX_DATAGRAM + 10))
def test_arbitrary_bytes_are_dropped_never_crash(data: bytes) -> None:
    with pytest.raises(Dropped):
        SEAL.open_request(data)
    with pytest.raises(Dropped):
        SEAL.open_request(MAGIC + data)


def test_a_sealed_datagram_is_its_message_and_a_fixed_overhead() -> None:
    assert len(SEAL.seal(Kind.REQUEST, REQUEST)) == len(MAGIC) + MAC_BYTES + REQUEST.ByteSize()


def test_requests_outside_the_window_are_stale_and_each_is_believed_once() -> None:
    fresh = RequestFreshness(window_seconds=30)
    fresh.admit(REQUEST, NOW_US)
    assert reason(lambda: fresh.admit(REQUEST, NOW_US)) == REPLAYED
    earlier = pb.HealthRequest(requester_id="leader_e", timestamp=NOW_US - 1, gasp_token=REQUEST.gasp_token)
    assert reason(lambda: fresh.admit(earlier, NOW_US)) == REPLAYED  # recorded before the latest
    later = pb.HealthRequest(requester_id="leader_e", timestamp=NOW_US + 400_000, gasp_token=REQUEST.gasp_token)
    fresh.admit(later, NOW_US)
    for skew_us in (31_000_000, -31_000_000):
        old = pb.HealthRequest(requester_id="leader_b", timestamp=NOW_US + skew_us)
        assert reason(lambda old=old: fresh.admit(old, NOW_US)) == STALE


def test_a_restarted_prober_has_a_new_token_and_a_timestamp_sequence_of_its_own() -> None:
    fresh = RequestFreshness(window_seconds=30)
    fresh.admit(REQUEST, NOW_US)
    # Its clock set back a second meanwhile: a new monitor, a new token, so not a replay.
    restarted = pb.HealthRequest(requester_id="leader_e", timestamp=NOW_US - 1_000_000, gasp_token=b"n" * 16)
    fresh.admit(restarted, NOW_US)


def test_the_probers_remembered_are_bounded() -> None:
    fresh = RequestFreshness(window_seconds=30, limit=4)
    for index in range(10):
        fresh.admit(pb.HealthRequest(requester_id=f"p{index}", timestamp=NOW_US), NOW_US)
    assert len(fresh._latest) == 4
