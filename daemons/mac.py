"""HMAC-SHA256 of short messages, made without letting go of the interpreter lock.

`hmac.digest` is one call into OpenSSL, and CPython lets go of the lock around it whatever the
message's length. Taking the lock back then waits for whichever thread holds it to reach a
switch interval (5 ms): measured 2026-12-01 with one busy thread beside it, 4.6 ms a call instead
of 2.6 us; a profiled gateway answering one-site queries one at a time, its merge's threads
beside it, spent 0.1 ms on each resume token (one a chunk). A keyed HMAC object, copied for each
message, lets go of the lock only for messages of 2 KiB or more, which tokens and health datagrams
never are: 1.4 us a call, busy thread or not.
"""

from __future__ import annotations

import hashlib
import hmac

MAC_BYTES = hashlib.sha256().digest_size


class Mac:
    """HMAC-SHA256 under one key: `of(message)` is `hmac.digest(key, message, "sha256")`."""

    def __init__(self, key: bytes):
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def of(self, message: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.digest()
