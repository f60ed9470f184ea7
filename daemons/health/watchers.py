"""What a daemon can know of its own isolation: its watchers falling silent.

A daemon cut off from its parents hears no error: their probes simply stop coming. Its watchers
are the monitors that probe it by datagram and say where they hear its dying gasp (gasp.py), as
our monitors do every few tenths of a second; a one-off tool probing it is no watcher. One that
has probed steadily and then sends nothing for SILENCE_SECONDS is lost: the daemon logs it, and
when every watcher is lost, that it is cut off, with what it can no longer reach or serve. The
first probe after a silence brings the watcher back. Pure: fed with probes and the time.
"""

from __future__ import annotations

from collections.abc import Collection

# Well past the parents' own verdict on a cut link (unavailable within 3 s), so that the daemons on
# both sides of a cut tell the same story in the same order, and long enough (7 probe intervals
# at the default 0.4 s) that no lost datagram or busy moment of a parent counts.
SILENCE_SECONDS = 3.0
STEADY_PROBES = 3  # probes before a requester counts as a watcher: a monitor, not a passing tool


class Watchers:
    def __init__(self, silence_seconds: float = SILENCE_SECONDS):
        self.silence_seconds = silence_seconds
        self._heard: dict[str, tuple[float, int]] = {}  # watcher -> (last heard, probes heard)
        self._lost: set[str] = set()

    def heard(self, watcher: str, now: float) -> float | None:
        """Records a probe from `watcher`; returns how long it was silent if it had been lost."""
        last, probes = self._heard.get(watcher, (now, 0))
        self._heard[watcher] = (now, probes + 1)
        if watcher in self._lost:
            self._lost.discard(watcher)
            return now - last
        return None

    def newly_lost(self, now: float, known: Collection[str]) -> list[tuple[str, float]]:
        """The steady watchers silent for `silence_seconds` that were not lost yet, each with how
        long it has been silent. Requesters not in `known` (the bounded set of gasp recipients,
        which a flood of made-up requesters cannot grow) are forgotten."""
        for name in [name for name in self._heard if name not in known]:
            del self._heard[name]
            self._lost.discard(name)
        lost = []
        for name, (last, probes) in self._heard.items():
            if name not in self._lost and probes >= STEADY_PROBES and now - last >= self.silence_seconds:
                self._lost.add(name)
                lost.append((name, now - last))
        return lost

    @property
    def lost(self) -> list[str]:
        return sorted(self._lost)

    @property
    def all_lost(self) -> bool:
        """Every steady watcher lost (and there was one): nobody reaches this daemon any more."""
        steady = [name for name, (_, probes) in self._heard.items() if probes >= STEADY_PROBES]
        return bool(steady) and all(name in self._lost for name in steady)
