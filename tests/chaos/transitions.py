"""Every health transition during the soak, explained by an injected fault or listed as unexplained.

A transition is explained by a fault when it happened between the injection and a few seconds
after the faulted daemon served again, and either its neighbour is the faulted daemon, or the
observer is and the transition is one a faulted observer makes: logged before it served again
(while it was stopping, or hung), or `unknown -> healthy` (a restarted observer starts its
neighbours from `unknown`). Anything else, such as a healthy daemon marked degraded under load, a
leader marked down because its child died, or a restarted observer doubting a healthy neighbour,
is unexplained.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tests.chaos.faults import Fault
from tests.cluster import epoch_of

# How long after a faulted daemon serves again its observers may still be catching up: the
# recovery transition is targeted within 0.2 s (README, health figures); a few seconds leaves room
# for a loaded 2-core machine without letting an unrelated false alarm through for long.
GRACE_SECONDS = 5.0


def explanation(transition: dict[str, Any], faults: Iterable[Fault], grace: float = GRACE_SECONDS) -> Fault | None:
    """The fault that explains a `health_transition` event, if any."""
    moment = epoch_of(transition)
    for fault in faults:
        if not fault.covers(moment, grace):
            continue
        if transition["neighbor"] == fault.target:
            return fault
        if transition["daemon"] == fault.target and (
                (fault.serving_again is None or moment < fault.serving_again)
                or (transition["from"], transition["to"]) == ("unknown", "healthy")):
            return fault
    return None


def unexplained(transitions: Iterable[dict[str, Any]], faults: Sequence[Fault], since: float) -> list[dict[str, Any]]:
    """The transitions logged from `since` (epoch seconds) on that no fault explains, oldest first."""
    late = [t for t in transitions if epoch_of(t) >= since]
    return sorted((t for t in late if explanation(t, faults) is None), key=epoch_of)


def describe(transition: dict[str, Any]) -> str:
    return (f"{transition['timestamp']} {transition['daemon']} saw {transition['neighbor']} "
            f"{transition['from']} -> {transition['to']} ({transition['reason']})")
