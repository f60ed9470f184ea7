"""Who is calling, from the certificate it presented, and what it may call: the cluster's one
authorization policy, pure.

With mutual TLS every caller presents a certificate the cluster CA signed, whose SPIFFE ID
(certs.py) names a daemon or a client. The daemons' internal service, Node, answers daemons only:
a client's certificate reaches the gateway's AirQuality service, the original system's
fire_service.FireQueryService, the standard health service and reflection, and nothing that
reads a worker's data or steers the overlay. A request can be
cancelled only by the identity that started it (the request registry keeps its owner).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The identities bin/gen-certs writes into certificates (certs.py): defined here, with the policy
# that reads them, so that a daemon checks callers without importing the certificate library.
TRUST_DOMAIN = "fire.cluster"
DAEMON_PREFIX = f"spiffe://{TRUST_DOMAIN}/daemon/"
CLIENT_PREFIX = f"spiffe://{TRUST_DOMAIN}/client/"
NODE_METHODS = "/airquality.v1.Node/"
SPIFFE_ID = "peer_spiffe_id"  # the key of the peer's SPIFFE ID in gRPC's auth context


@dataclass(frozen=True)
class Caller:
    kind: str  # "daemon" or "client"
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def caller_of(auth_context: Mapping[str, Sequence[bytes]]) -> Caller | None:
    """The caller a TLS peer's certificate names; None without TLS, or for a certificate that names
    no daemon nor client of the cluster (not one bin/gen-certs makes)."""
    for value in auth_context.get(SPIFFE_ID, ()):
        identity = value.decode("utf-8", "replace")
        for kind, prefix in (("daemon", DAEMON_PREFIX), ("client", CLIENT_PREFIX)):
            if identity.startswith(prefix) and len(identity) > len(prefix):
                return Caller(kind, identity[len(prefix):])
    return None


def refusal(method: str, caller: Caller | None) -> str | None:
    """Why `caller` may not call `method` (a full method name, /package.Service/Method), or None."""
    if caller is None:
        return (f"{method}: the certificate presented names no daemon nor client of this cluster "
                f"(no spiffe://fire.cluster/... identity)")
    if method.startswith(NODE_METHODS) and caller.kind != "daemon":
        return (f"{method} is the daemons' internal service; the {caller} may call the gateway's "
                f"airquality.v1.AirQuality service")
    return None


def may_cancel(owner: Caller | None, caller: Caller | None) -> bool:
    """Whether `caller` may cancel a request `owner` started: its owner only, when callers are known."""
    return owner is None or owner == caller
