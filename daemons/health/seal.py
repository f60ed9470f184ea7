"""Authenticated health datagrams: what makes a UDP probe, its reply and a dying gasp unforgeable.

Why: a datagram is a source address and some bytes, and anyone who can reach the port can send
both. Unsealed, a spoofed reply kept a SIGSTOPped worker healthy to its leader, and a process
that bound a stopped worker's port answered "healthy" for it. So, with a cluster key (bin/gen-certs
writes `cluster.key`; a daemon's config names it in its `tls` section), every datagram carries an
HMAC-SHA256 over what it says and over which of the three kinds it is, so that nothing can be
passed off as another kind (a probe reflected back as its own reply, a reply as a gasp):

    MAGIC (4 bytes) | tag (32 bytes) | the serialized HealthRequest or HealthResponse

and the freshness that a tag alone cannot give:
- a request names the daemon probed (datagram.py): one recorded on its way to another daemon is
  refused;
- a request's timestamp is within `window` of the responder's clock, and newer than the last
  one from the same prober (RequestFreshness), or the request registers nothing (no gasp
  recipient, no watcher heard). It is answered all the same: its reply echoes a timestamp that
  only its own prober awaits, and refusing it would make clock skew look like a dead neighbour;
- a reply echoes the timestamp of a probe still out and names the daemon probed (pings.py and
  datagram.py): an old or a borrowed reply answers nothing;
- a gasp echoes the prober's secret token and the pid it last heard (gasp.py).
A datagram that fails is dropped and counted by reason (DropCounts), and changes nothing else.

Without a key (the one-host system on loopback, plaintext) the bytes are the bare message, as
before; a sealed datagram then reads as malformed, and an unsealed one to a keyed daemon as
unauthenticated.

Pure, apart from the key it is given: the sockets are datagram.py's.
"""

from __future__ import annotations

import hmac
import threading
from collections import Counter, OrderedDict
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from google.protobuf.message import DecodeError, Message

from daemons.mac import MAC_BYTES, Mac
from daemons.rpc import airquality_pb2 as pb

if TYPE_CHECKING:
    from daemons.config import TlsConfig

M = TypeVar("M", bound=Message)
MAGIC = b"FHD1"  # fire health datagram, version 1
MAX_DATAGRAM = 2048  # far above any health message (a few hundred bytes); longer is dropped unread
MAX_PROBERS = 256  # probers whose latest timestamp a responder remembers: a daemon has one or two


class Kind(Enum):
    REQUEST = b"request"
    REPLY = b"reply"
    GASP = b"gasp"


class Dropped(Exception):
    """A datagram that is not to be believed; `reason` is its drop counter's name."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# Why datagrams are dropped, the names of their counters.
MALFORMED = "malformed"  # truncated, or not the message it should be
OVERSIZED = "oversized"  # longer than MAX_DATAGRAM
UNAUTHENTICATED = "unauthenticated"  # no tag, or one the cluster key did not make (for this kind)
STALE = "stale"  # a request whose timestamp is outside the window (answered, registering nothing)
REPLAYED = "replayed"  # a request (answered, registering nothing) or a reply seen before
MISDIRECTED = "misdirected"  # a request for another daemon, or a reply or gasp from one


class Seal:
    """Seals and opens datagrams with the cluster key (None: the bare messages, unauthenticated)."""

    def __init__(self, key: bytes | None):
        self.key = key
        self._mac = None if key is None else Mac(key)

    def _tag(self, kind: Kind, body: bytes) -> bytes:
        assert self._mac is not None
        return self._mac.of(MAGIC + kind.value + b"\0" + body)

    def seal(self, kind: Kind, message: Message) -> bytes:
        body = message.SerializeToString()
        if self.key is None:
            return body
        return MAGIC + self._tag(kind, body) + body

    def open_request(self, data: bytes) -> pb.HealthRequest:
        return _parsed(pb.HealthRequest, self._open(Kind.REQUEST, data))

    def open_response(self, kind: Kind, data: bytes) -> pb.HealthResponse:
        """A reply or a gasp, as `kind` says the socket it came to expects."""
        return _parsed(pb.HealthResponse, self._open(kind, data))

    def _open(self, kind: Kind, data: bytes) -> bytes:
        """The message's bytes, once the datagram is known to be of `kind` and unaltered."""
        if len(data) > MAX_DATAGRAM:
            raise Dropped(OVERSIZED)
        if self.key is None:
            return data
        if not data.startswith(MAGIC):
            raise Dropped(UNAUTHENTICATED)
        if len(data) < len(MAGIC) + MAC_BYTES:
            raise Dropped(MALFORMED)
        tag, body = data[len(MAGIC):len(MAGIC) + MAC_BYTES], data[len(MAGIC) + MAC_BYTES:]
        # A truncated datagram fails here too: its tag no longer matches what is left.
        if not hmac.compare_digest(tag, self._tag(kind, body)):
            raise Dropped(UNAUTHENTICATED)
        return body


def _parsed(message_type: type[M], body: bytes) -> M:
    try:
        return message_type.FromString(body)
    except DecodeError:
        raise Dropped(MALFORMED) from None


UNSEALED = Seal(None)


def datagram_seal(tls: TlsConfig | None) -> Seal:
    """The seal of a daemon's datagrams: with its cluster key when it runs TLS, else none."""
    return UNSEALED if tls is None else Seal(tls.cluster_key)


class RequestFreshness:
    """Which sealed requests are fresh: timestamped within `window_seconds` of this clock, and newer
    than the last from the same prober. A prober is a requester and its gasp token, which each
    monitor draws anew when it starts (pings.py), so a restarted monitor is a new prober and its
    timestamps need not follow the old one's (the wall clock may have been set back meanwhile).
    Only requests whose tag is good come here: every prober remembered is a daemon of the cluster,
    and the oldest is forgotten beyond `limit` (it would be stale by now anyway)."""

    def __init__(self, window_seconds: float, limit: int = MAX_PROBERS):
        self.window_us = int(window_seconds * 1e6)
        self.limit = limit
        self._latest: OrderedDict[tuple[str, bytes], int] = OrderedDict()  # least recently heard first

    def admit(self, request: pb.HealthRequest, now_us: int) -> None:
        """Raises Dropped (stale, replayed) unless the request is fresh, and then remembers it."""
        if abs(now_us - request.timestamp) > self.window_us:
            raise Dropped(STALE)
        prober = (request.requester_id, request.gasp_token)
        latest = self._latest.pop(prober, None)
        if latest is not None and request.timestamp <= latest:
            self._latest[prober] = latest
            raise Dropped(REPLAYED)
        self._latest[prober] = request.timestamp
        while len(self._latest) > self.limit:
            self._latest.popitem(last=False)


class DropCounts:
    """Datagrams dropped so far, by reason. Any thread may count and read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
