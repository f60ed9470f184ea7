"""The invented monitoring network: its sites, their agencies, codes, coordinates and parameters.

Sites are placed in daemons.datagen.geography's boxes and named by daemons.datagen.names; what
they measure is daemons.datagen.atmosphere and what they publish daemons.datagen.monitors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from daemons.datagen.geography import REGIONS, Region, SmokeEpisode
from daemons.datagen.names import invent_agency_name, invent_site_name, invent_town
from daemons.datagen.sampling import Rng, weighted_choice
from daemons.datagen.timeline import Timeline

# Parameter sets of permanent sites and their relative frequency, tuned so that rows split like the
# real set: OZONE 41%, PM2.5 29%, PM10 11%, NO2 8%, SO2 6%, CO 5%.
_SITE_PROFILES = (
    (("OZONE",), 26), (("PM2.5",), 13), (("PM10",), 4), (("SO2",), 2),
    (("OZONE", "PM2.5"), 13), (("PM2.5", "PM10"), 5), (("OZONE", "NO2"), 5), (("OZONE", "PM10"), 4),
    (("OZONE", "SO2"), 4), (("NO2", "SO2"), 1), (("OZONE", "NO2", "CO"), 3), (("PM2.5", "NO2", "CO"), 3),
    (("OZONE", "PM2.5", "PM10"), 4), (("OZONE", "PM2.5", "SO2"), 2), (("OZONE", "PM2.5", "CO"), 1),
)

# National programmes whose portable monitors follow the fires; their codes have no county part.
_SMOKE_PROGRAMMES = (("Interagency Smoke Response Cache", "MMSR"), ("Portable Particulate Network", "MMPN"))

_SITES_PER_AGENCY = 8
_MAX_AGENCIES = 60
_PORTABLE_SITE_SHARE = 0.06
_COMMA_NAME_SHARE = 0.03
_COORDINATE_DECIMALS = ((6, 5, 4, 3, 2), (0.46, 0.14, 0.36, 0.03, 0.01))  # as published per site


@dataclass(frozen=True)
class Site:
    name: str
    agency: str
    latitude: float  # already rounded to the decimals the site publishes
    longitude: float
    aqs_code: str
    full_aqs_code: str
    parameters: tuple[str, ...]  # in the order the site's rows appear each hour
    first_step: int  # reports from this observation step ...
    end_step: int  # ... up to, not including, this one


def _invent_unique(used: set[str], invent: Callable[[], str]) -> str:
    while (candidate := invent()) in used:
        pass
    used.add(candidate)
    return candidate


def _published(rng: Rng, value: float) -> float:
    """Rounds a coordinate to the number of decimals a site happens to publish."""
    decimals, weights = _COORDINATE_DECIMALS
    return round(value, decimals[weighted_choice(rng, weights)])


@dataclass
class _Agency:
    """A regional agency while its network is being invented."""

    name: str
    region: Region
    towns: list[tuple[str, float, float, str]]  # name, latitude, longitude, county code


class _NetworkBuilder:
    """Invents agencies, towns and sites; keeps names and codes unique across the whole network."""

    def __init__(self, rng: Rng, timeline: Timeline) -> None:
        self.rng = rng
        self.timeline = timeline
        self.used_place_names: set[str] = set()  # agencies and towns
        self.used_site_names: set[str] = set()
        self.used_codes: set[str] = set()

    def agencies(self, count: int) -> list[_Agency]:
        region_weights = [region.weight for region in REGIONS]
        agencies = []
        for _ in range(count):
            region = REGIONS[weighted_choice(self.rng, region_weights)]
            name = _invent_unique(self.used_place_names, lambda: invent_agency_name(self.rng))
            centre = region.uniform_point(self.rng)
            towns = [self._town(region, centre) for _ in range(int(self.rng.integers(2, 8)))]
            agencies.append(_Agency(name, region, towns))
        return agencies

    def _town(self, region: Region, centre: tuple[float, float]) -> tuple[str, float, float, str]:
        latitude, longitude = region.point_near(self.rng, *centre, spread=0.8)
        county = f"{2 * int(self.rng.integers(100)) + 1:03d}"  # FIPS county codes are odd
        name = _invent_unique(self.used_place_names, lambda: invent_town(self.rng))
        return name, latitude, longitude, county

    def permanent_site(self, agency: _Agency, parameters: tuple[str, ...], with_comma: bool) -> Site:
        town, latitude, longitude, county = agency.towns[int(self.rng.integers(len(agency.towns)))]
        latitude, longitude = agency.region.point_near(self.rng, latitude, longitude, spread=0.04)
        name = _invent_unique(self.used_site_names, lambda: invent_site_name(self.rng, town, with_comma))
        state = agency.region.state_code
        code = _invent_unique(self.used_codes, lambda: f"{state}{county}{int(self.rng.integers(1, 10000)):04d}")
        first_step, end_step = self._reporting_span()
        return Site(
            name=name,
            agency=agency.name,
            latitude=_published(self.rng, latitude),
            longitude=_published(self.rng, longitude),
            # Most sites are listed under the 9-digit AQS code, some under the 12-digit one with the
            # country prefix that full_aqs_code always has.
            aqs_code=code if self.rng.random() < 0.88 else "840" + code,
            full_aqs_code="840" + code,
            parameters=tuple(parameters[i] for i in self.rng.permutation(len(parameters))),
            first_step=first_step,
            end_step=end_step,
        )

    def _reporting_span(self) -> tuple[int, int]:
        """Most permanent sites report all season; a few are commissioned or retired during it."""
        steps = len(self.timeline)
        if self.rng.random() >= 0.05:
            return 0, steps
        cut = int(self.rng.integers(steps // 10, steps * 7 // 10))
        return (cut, steps) if self.rng.random() < 0.5 else (0, steps - cut)

    def portable_site(self, episodes: list[SmokeEpisode]) -> Site:
        """A PM2.5 monitor deployed near a fire for the life of its smoke episode."""
        episode = episodes[weighted_choice(self.rng, [e.peak for e in episodes])]
        latitude, longitude = episode.region.point_near(
            self.rng, episode.latitude, episode.longitude, spread=0.6 * episode.radius
        )
        programme, prefix = _SMOKE_PROGRAMMES[int(self.rng.integers(len(_SMOKE_PROGRAMMES)))]
        code = _invent_unique(self.used_codes, lambda: f"{prefix}{int(self.rng.integers(10000, 100000))}")
        # Some programmes label a monitor with its code; the code is unique, so this draw ends.
        name = _invent_unique(
            self.used_site_names, lambda: code if self.rng.random() < 0.5 else f"Smoke Unit {code[-4:]}"
        )
        # Crews set up as a fire flares and leave the monitor in place well after the smoke clears.
        deployed = (self.timeline.elapsed_days >= episode.start_day - 2) & (
            self.timeline.elapsed_days <= episode.start_day + episode.duration_days + 10
        )
        active = np.flatnonzero(deployed)
        return Site(
            name=name,
            agency=programme,
            latitude=_published(self.rng, latitude),
            longitude=_published(self.rng, longitude),
            aqs_code=code if self.rng.random() < 0.5 else "840" + code,
            full_aqs_code="840" + code,
            parameters=("PM2.5",),
            first_step=int(active[0]),
            end_step=int(active[-1]) + 1,
        )


def _apportion_profiles(rng: Rng, site_count: int) -> list[tuple[str, ...]]:
    """Parameter sets in proportion to _SITE_PROFILES (largest remainder), in random site order.

    Quotas rather than independent draws keep the parameter mix steady for every seed.
    """
    profiles, weights = zip(*_SITE_PROFILES)
    exact = np.array(weights, dtype=float) / sum(weights) * site_count
    counts = np.floor(exact).astype(int)
    short = site_count - int(counts.sum())
    counts[np.argsort(counts - exact, kind="stable")[:short]] += 1
    assigned = [profile for profile, count in zip(profiles, counts) for _ in range(count)]
    return [assigned[i] for i in rng.permutation(site_count)]


def build_network(rng: Rng, timeline: Timeline, site_count: int, episodes: list[SmokeEpisode]) -> list[Site]:
    """Invents the monitoring network, ordered as rows appear in a file: west to east."""
    builder = _NetworkBuilder(rng, timeline)
    portable_count = round(site_count * _PORTABLE_SITE_SHARE)
    permanent_count = site_count - portable_count
    agency_count = min(_MAX_AGENCIES, round(site_count / _SITES_PER_AGENCY))
    agencies = builder.agencies(max(1, agency_count - len(_SMOKE_PROGRAMMES)))
    agency_sizes = rng.lognormal(0.0, 0.8, len(agencies))
    comma_count = max(1, round(permanent_count * _COMMA_NAME_SHARE))
    comma_sites = set(rng.choice(permanent_count, comma_count, replace=False).tolist())
    sites = [
        builder.permanent_site(agencies[weighted_choice(rng, agency_sizes)], parameters, index in comma_sites)
        for index, parameters in enumerate(_apportion_profiles(rng, permanent_count))
    ]
    sites += [builder.portable_site(episodes) for _ in range(portable_count)]
    return sorted(sites, key=lambda site: site.longitude)  # stable: co-located sites keep invention order
