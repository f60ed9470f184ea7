"""A daemon's dying gasp: how the watchers of a daemon that is killed hear of it at once.

Why: a killed process's sockets close only after the kernel has unmapped its memory, and on a
saturated machine that work waits for a core like any other. Measured 2026-11-30 under the load
of issue 12 (2 cores): an independent observer's connection to a daemon saw EOF 52-358 ms after
kill -9, and every signal that rides a connection or a port (a broken stream, a refused datagram)
came no sooner. The daemon's threads, though, end within a few milliseconds of the kill, and the
kernel tells a child process when the thread that started it ends (PR_SET_PDEATHSIG). So the
daemon's monitor process (process.py), started from the daemon's main thread, learns of the
death then and sends a gasp to each watcher, as Ethernet OAM's Dying Gasp (IEEE 802.3ah) is sent
when a link partner loses power. A hang (SIGSTOP) ends no thread and sends no gasp.

A watcher's datagram probes say where it hears gasps (a UDP port on the address they come from)
and carry a random token of its own. A gasp is believed only with that token and with the
process id the watcher last heard from the daemon: a forged gasp, or a late one from an earlier
incarnation of the daemon, is ignored. Believed, it is conclusive: the neighbour is unavailable
at once, with no confirmation probes (their answers would wait for the same teardown).

Pure: recipients, gasps and the check; the sockets and the signal are process.py's and
transport.py's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from daemons.rpc import airquality_pb2 as pb

STATUS_ENDED = "ENDED"  # a HealthResponse with this status is a gasp
MAX_RECIPIENTS = 16  # a daemon has one or two watchers; the rest is room for a restart's new ports
TOKEN_BYTES = 16
MAX_TOKEN_BYTES = 64  # a longer token is not one of ours: its probe registers nothing


@dataclass(frozen=True)
class Recipient:
    requester: str
    host: str
    port: int
    token: bytes


def wants_gasps(request: pb.HealthRequest) -> bool:
    """Whether a datagram probe says where its sender hears gasps: a watcher's, as our monitors send."""
    return bool(request.gasp_port and request.gasp_token) and len(request.gasp_token) <= MAX_TOKEN_BYTES


class GaspRecipients:
    """The watchers to gasp to: the latest port and token of each requester, at most `limit`
    requesters. A newcomer beyond the limit takes the place of the one with the fewest probes (the
    least recent among equals), so a monitor, which probes every 0.4 s, keeps its place through a
    flood of made-up requester ids (as the probe counts do, servicers/health.py)."""

    def __init__(self, limit: int = MAX_RECIPIENTS):
        self.limit = limit
        self._by_requester: OrderedDict[str, tuple[Recipient, int]] = OrderedDict()  # least recent first

    def note(self, requester: str, host: str, request: pb.HealthRequest) -> bool:
        """Records a datagram probe from `host`; True when the recipients changed."""
        if not wants_gasps(request):
            return False
        recipient = Recipient(requester, host, request.gasp_port, request.gasp_token)
        known, probes = self._by_requester.pop(requester, (None, 0))
        if known is None and len(self._by_requester) >= self.limit:
            fewest = min(self._by_requester, key=lambda name: self._by_requester[name][1])  # least recent on ties
            del self._by_requester[fewest]
        self._by_requester[requester] = (recipient, probes + 1)
        return known != recipient

    def requesters(self) -> set[str]:
        return set(self._by_requester)

    def snapshot(self) -> tuple[Recipient, ...]:
        return tuple(recipient for recipient, _probes in self._by_requester.values())


def gasp(recipient: Recipient, daemon: str, role: str, pid: int, now_us: int) -> pb.HealthResponse:
    return pb.HealthResponse(healthy=False, status=STATUS_ENDED, timestamp=now_us, process_id=pid, role=role,
                             daemon=daemon, gasp_token=recipient.token)


def believed(answer: pb.HealthResponse, token: bytes, last_pid: int | None) -> bool:
    """Whether a gasp is true: it carries this watcher's token and names the process it last heard."""
    return answer.status == STATUS_ENDED and answer.gasp_token == token and answer.process_id == last_pid
