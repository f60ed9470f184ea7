"""Resume tokens are signed by the gateway: its own come back, anything else is refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from daemons.planning.failover import RequestPlan
from daemons.planning.replicas import unverified_choices
from daemons.query.filter import InvalidQuery
from daemons.rpc import airquality_pb2 as pb
from daemons.servicers.tokens import KEY_BYTES, ResumeTokens, load_or_create_key

DIGEST = b"d" * 16
PARTITIONS = {"p1": [("b",)], "p2": [("e",)]}


def issued(tokens: ResumeTokens) -> bytes:
    plan = RequestPlan(unverified_choices(PARTITIONS))
    plan.assign(lambda daemon: "healthy")
    plan.rows_received("p1", 0, 7, "7:abc")
    return tokens.issue(DIGEST, 3, plan)


def test_a_token_round_trips_with_what_was_delivered_and_from_which_copy() -> None:
    tokens = ResumeTokens(b"k" * KEY_BYTES)
    state = tokens.parse(issued(tokens), DIGEST, PARTITIONS)
    assert (state.chunks, dict(state.delivered), dict(state.fingerprints)) == (3, {"p1": 7}, {"p1": "7:abc"})


@pytest.mark.parametrize("forge", [
    pytest.param(lambda token: token[:-1] + bytes([token[-1] ^ 1]), id="flipped-signature"),
    pytest.param(lambda token: token[:-32], id="unsigned"),
    pytest.param(lambda token: b"", id="empty"),
    pytest.param(lambda token: token * 3000, id="huge"),
    pytest.param(lambda token: ResumeTokens(b"x" * KEY_BYTES).issue(DIGEST, 1, RequestPlan({})), id="another-key"),
])
def test_anything_but_the_gateways_own_token_is_refused(forge) -> None:
    tokens = ResumeTokens(b"k" * KEY_BYTES)
    with pytest.raises(InvalidQuery, match="not a token this service issued"):
        tokens.parse(forge(issued(tokens)), DIGEST, PARTITIONS)


def test_an_edited_count_is_refused_even_when_the_message_still_decodes() -> None:
    tokens = ResumeTokens(b"k" * KEY_BYTES)
    token = issued(tokens)
    state = pb.ResumeToken.FromString(token[:-32])
    state.delivered["p1"] = 2**64 - 1
    with pytest.raises(InvalidQuery, match="not a token this service issued"):
        tokens.parse(state.SerializeToString() + token[-32:], DIGEST, PARTITIONS)


def test_a_token_of_another_query_or_naming_unknown_partitions_is_refused() -> None:
    tokens = ResumeTokens(b"k" * KEY_BYTES)
    with pytest.raises(InvalidQuery, match="another filter"):
        tokens.parse(issued(tokens), b"x" * 16, PARTITIONS)
    with pytest.raises(InvalidQuery, match="not a token this service issued"):
        tokens.parse(issued(tokens), DIGEST, {"p2": [("e",)]})


def test_the_key_is_created_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "resume-token.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key  # a restarted gateway accepts its earlier tokens
    path.write_bytes(b"short")
    with pytest.raises(OSError, match="expected at least"):
        load_or_create_key(path)
