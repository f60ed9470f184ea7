"""daemons/mac.py: the same tags as hmac.digest, made without letting go of the interpreter lock."""

from __future__ import annotations

import hmac
import sys
import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from daemons.mac import MAC_BYTES, Mac


@given(key=st.binary(min_size=1, max_size=100), messages=st.lists(st.binary(max_size=3000), max_size=4))
def test_a_tag_is_hmac_sha256_of_the_message_under_the_key(key: bytes, messages: list[bytes]) -> None:
    mac = Mac(key)
    for message in messages:  # one keyed object serves every message, each on its own
        assert mac.of(message) == hmac.digest(key, message, "sha256")
        assert len(mac.of(message)) == MAC_BYTES


def test_tags_are_made_while_another_thread_keeps_the_interpreter_busy() -> None:
    """hmac.digest lets go of the lock, and each call then waits a switch interval to take it back
    from a busy thread: 20 calls would take 20 x 50 ms here. A Mac takes microseconds."""
    mac = Mac(b"k" * 32)
    message = b"m" * 200
    busy = threading.Event()
    stop = threading.Event()

    def spin() -> None:
        busy.set()
        while not stop.is_set():
            pass

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.05)
    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        busy.wait(5)
        started = time.perf_counter()
        for _ in range(20):
            mac.of(message)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        spinner.join(5)
        sys.setswitchinterval(interval)
    assert seconds < 0.5, f"20 tags took {seconds:.3f} s: each waited for the interpreter lock"
