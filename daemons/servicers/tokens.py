"""Resume tokens: where an answer stands, signed by the gateway so that only its own come back.

A token tells the gateway how many rows of each partition the client already has, and the
gateway skips exactly that many: a forged one could make an answer leave rows out while claiming
to be complete, or claim a total it never sent. So a token is the ResumeToken message followed by
an HMAC-SHA256 of it under a key kept in a file beside the gateway's state, which survives the
gateway's restarts (the very moment tokens are for) and never leaves the gateway.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
from collections.abc import Collection
from pathlib import Path

from daemons.mac import MAC_BYTES, Mac
from daemons.planning.failover import RequestPlan
from daemons.query.filter import InvalidQuery
from daemons.rpc import airquality_pb2 as pb

KEY_BYTES = 32
MAX_TOKEN_BYTES = 64 * 1024  # a token names each partition once: far below this
NOT_OURS = "resume_token: not a token this service issued (resend the query without it to start over)"


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, created (mode 0600) with a random one when the file does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise OSError(f"{path} holds {len(key)} bytes, expected at least {KEY_BYTES}")
    return key


class ResumeTokens:
    def __init__(self, key: bytes):
        self._mac = Mac(key).of  # not hmac.digest: see daemons/mac.py

    def issue(self, digest: bytes, chunks: int, plan: RequestPlan) -> bytes:
        """What the client has of each partition, which are complete, and from which copy."""
        body = pb.ResumeToken(filter_digest=digest, chunks=chunks, delivered=plan.delivered,
                              complete=plan.progress.complete, fingerprints=plan.pinned).SerializeToString()
        return body + self._mac(body)

    def parse(self, token: bytes, digest: bytes, partitions: Collection[str]) -> pb.ResumeToken:
        """The state a token signed by this gateway holds; InvalidQuery for any other token."""
        if not MAC_BYTES < len(token) <= MAX_TOKEN_BYTES:
            raise InvalidQuery(NOT_OURS)
        body, mac = token[:-MAC_BYTES], token[-MAC_BYTES:]
        if not hmac.compare_digest(self._mac(body), mac):
            raise InvalidQuery(NOT_OURS)
        state = pb.ResumeToken.FromString(body)
        if state.filter_digest != digest:
            raise InvalidQuery("resume_token: it belongs to a query with another filter")
        named = {*state.delivered, *state.complete, *state.fingerprints}
        if not named <= set(partitions):  # signed by a gateway serving other partitions
            raise InvalidQuery(NOT_OURS)
        return state
