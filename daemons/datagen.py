"""Deterministic synthetic AirNow hourly data set: the embedded default when no real data is configured.

The tree has the layout and file format of the 2020 fire-season AirNow extract the service was built
for: a folder per day (2020-08-10, then 2020-08-14 .. 2020-09-24), a file per odd UTC hour named
`YYYYMMDD/YYYYMMDD-HH.csv`, headerless rows of 13 double-quoted fields ending in LF, rows ordered
west to east by site longitude, and -999 for missing values. Everything in it is invented: the
monitoring network (agencies, site names, AQS codes), the wildfire smoke episodes and every reading.
It is shaped like the real set so that queries, aggregates and tests see realistic data: a network
over the western and central US where most sites report one parameter and some two or three, the
real parameter mix, smoke episodes drifting over fire-prone regions on top of diurnal background
cycles, NowCast-style smoothed concentrations beside raw readings, EPA AQI with its category,
reporting gaps, and -999 markers at the real rates.

The output is a function of (sites, seed) alone: one seeded numpy Generator makes every random
choice in a fixed order, and values are quantised to the reported precision before formatting.
A tree is written into a temporary sibling directory and renamed into place only when complete,
so whatever exists at the target path is a complete tree; `ensure_generated` relies on that.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import click
import numpy as np

DEFAULT_SITES = 400
DEFAULT_SEED = 2020

MISSING = -999  # AirNow's marker for a missing value
_MISSING_TENTHS = MISSING * 10  # readings are held as integer tenths; this one formats as "-999.0"

OBSERVATION_DAYS = (dt.date(2020, 8, 10),) + tuple(dt.date(2020, 8, 14) + dt.timedelta(days=n) for n in range(42))
OBSERVATION_HOURS = tuple(range(1, 24, 2))  # the extract keeps the odd UTC hours only

Rng = np.random.Generator


# --------------------------------------------------------------------------------------------------
# Pollutants: units, EPA AQI breakpoints, and how their monitors report.


@dataclass(frozen=True)
class Pollutant:
    name: str
    unit: str
    # EPA breakpoints (concentration low, high, AQI low, high); empty when AirNow publishes no
    # hourly AQI for the parameter, which is the case for CO.
    aqi_segments: tuple[tuple[float, float, int, int], ...]
    aqi_resolution_tenths: int  # EPA truncates to 0.1 for PM2.5 and to whole units otherwise
    raw_noise: tuple[float, float]  # instrument noise sd: fixed part, part proportional to level
    whole_unit_raw_share: float  # share of monitors reporting whole units (BAM-type PM2.5, all PM10)
    whole_unit_concentration: bool
    smoothing_weights: tuple[float, ...]  # concentration = weighted recent raw readings, newest first
    clip_negative_concentration: bool
    concentration_missing_rate: float
    raw_missing_rate: float


_PM25_AQI = (
    (0.0, 12.0, 0, 50), (12.1, 35.4, 51, 100), (35.5, 55.4, 101, 150), (55.5, 150.4, 151, 200),
    (150.5, 250.4, 201, 300), (250.5, 350.4, 301, 400), (350.5, 500.4, 401, 500),
)
_PM10_AQI = (
    (0, 54, 0, 50), (55, 154, 51, 100), (155, 254, 101, 150), (255, 354, 151, 200),
    (355, 424, 201, 300), (425, 504, 301, 400), (505, 604, 401, 500),
)
# AirNow applies the 8-hour ozone table to hourly values.
_OZONE_AQI = ((0, 54, 0, 50), (55, 70, 51, 100), (71, 85, 101, 150), (86, 105, 151, 200), (106, 200, 201, 300))
_NO2_AQI = (
    (0, 53, 0, 50), (54, 100, 51, 100), (101, 360, 101, 150), (361, 649, 151, 200),
    (650, 1249, 201, 300), (1250, 2049, 301, 500),
)
_SO2_AQI = (
    (0, 35, 0, 50), (36, 75, 51, 100), (76, 185, 101, 150), (186, 304, 151, 200),
    (305, 604, 201, 300), (605, 1004, 301, 500),
)
_CATEGORY_UPPER_AQI = (50, 100, 150, 200, 300)  # categories 1..5; anything above is 6

# Particle and ozone monitors publish a smoothed (NowCast-like) concentration next to the raw hourly
# reading and drop either one now and then; gas analysers publish one value for both and, in the real
# set, never drop it.
_GAS = dict(
    raw_noise=(0.0, 0.0), whole_unit_raw_share=0.0, whole_unit_concentration=False, smoothing_weights=(1.0,),
    clip_negative_concentration=False, concentration_missing_rate=0.0, raw_missing_rate=0.0,
)
POLLUTANTS = {
    p.name: p
    for p in (
        Pollutant("PM2.5", "UG/M3", _PM25_AQI, 1, (1.0, 0.06), 0.45, False, (0.5, 0.3, 0.2), True, 0.0024, 0.0064),
        Pollutant("PM10", "UG/M3", _PM10_AQI, 10, (2.0, 0.08), 1.0, True, (0.5, 0.3, 0.2), True, 0.0018, 0.004),
        Pollutant("OZONE", "PPB", _OZONE_AQI, 10, (1.5, 0.03), 1.0, True, (0.6, 0.4), True, 0.0165, 0.019),
        Pollutant("NO2", "PPB", _NO2_AQI, 10, **_GAS),
        Pollutant("SO2", "PPB", _SO2_AQI, 10, **_GAS),
        Pollutant("CO", "PPM", (), 10, **_GAS),
    )
}

# Parameter sets of permanent sites and their relative frequency, tuned so that rows split like the
# real set: OZONE 41%, PM2.5 29%, PM10 11%, NO2 8%, SO2 6%, CO 5%.
_SITE_PROFILES = (
    (("OZONE",), 26), (("PM2.5",), 13), (("PM10",), 4), (("SO2",), 2),
    (("OZONE", "PM2.5"), 13), (("PM2.5", "PM10"), 5), (("OZONE", "NO2"), 5), (("OZONE", "PM10"), 4),
    (("OZONE", "SO2"), 4), (("NO2", "SO2"), 1), (("OZONE", "NO2", "CO"), 3), (("PM2.5", "NO2", "CO"), 3),
    (("OZONE", "PM2.5", "PM10"), 4), (("OZONE", "PM2.5", "SO2"), 2), (("OZONE", "PM2.5", "CO"), 1),
)


# --------------------------------------------------------------------------------------------------
# Geography.


@dataclass(frozen=True)
class Region:
    state_code: str  # FIPS state code, the first two digits of an AQS site code
    south: float
    north: float
    west: float
    east: float
    weight: float  # relative share of agencies
    fire_prone: bool

    def contains(self, latitude: float, longitude: float) -> bool:
        return self.south <= latitude <= self.north and self.west <= longitude <= self.east

    def uniform_point(self, rng: Rng) -> tuple[float, float]:
        return float(rng.uniform(self.south, self.north)), float(rng.uniform(self.west, self.east))

    def point_near(self, rng: Rng, latitude: float, longitude: float, spread: float) -> tuple[float, float]:
        """A normally scattered point inside the box; redrawn rather than clipped, which would pile
        points up on the edges. The centre must lie inside the box."""
        while True:
            near_latitude, near_longitude = (float(offset) for offset in rng.normal(0.0, spread, 2))
            if self.contains(latitude + near_latitude, longitude + near_longitude):
                return latitude + near_latitude, longitude + near_longitude


# Boxes kept inland of the coasts and borders, so every point is plausibly on land.
REGIONS = (
    Region("53", 45.8, 48.8, -122.9, -117.2, 7, True),
    Region("41", 42.1, 45.8, -123.3, -116.7, 7, True),
    Region("06", 38.0, 41.9, -123.2, -120.1, 9, True),
    Region("06", 34.3, 38.0, -121.3, -117.6, 9, True),
    Region("06", 32.8, 34.3, -117.2, -114.8, 4, True),
    Region("32", 36.0, 41.8, -119.8, -114.3, 3, True),
    Region("16", 42.1, 48.8, -116.8, -111.2, 4, True),
    Region("30", 44.6, 48.8, -115.8, -104.2, 4, True),
    Region("56", 41.1, 44.9, -110.9, -104.2, 3, True),
    Region("49", 37.1, 41.9, -113.9, -109.1, 4, True),
    Region("08", 37.1, 40.9, -108.9, -102.1, 5, True),
    Region("04", 31.5, 36.9, -114.3, -109.1, 5, True),
    Region("35", 32.1, 36.9, -108.9, -103.1, 3, True),
    Region("48", 29.5, 34.5, -102.9, -97.1, 5, False),
    Region("40", 34.1, 36.9, -99.9, -94.7, 3, False),
    Region("20", 37.1, 39.9, -101.9, -94.8, 3, False),
    Region("31", 40.1, 42.9, -103.9, -96.0, 2, False),
    Region("46", 43.1, 45.8, -103.9, -96.7, 2, False),
    Region("38", 46.1, 48.8, -103.9, -97.1, 2, False),
    Region("27", 43.6, 48.8, -96.3, -92.3, 3, False),
    Region("19", 40.7, 43.4, -95.8, -91.3, 3, False),
    Region("29", 36.6, 40.5, -94.5, -90.3, 3, False),
)

_STEMS = (
    "Alder", "Amber", "Antler", "Aspen", "Badger", "Basalt", "Bear", "Birch", "Bitter", "Blue", "Boulder",
    "Bramble", "Buck", "Cactus", "Cedar", "Chalk", "Cinder", "Clover", "Cobalt", "Copper", "Cotton", "Coyote",
    "Crane", "Crystal", "Dove", "Dust", "Eagle", "Elk", "Ember", "Falcon", "Fern", "Flint", "Fox", "Garnet",
    "Gold", "Granite", "Gravel", "Hawk", "Hazel", "Heron", "Hickory", "Iron", "Jasper", "Juniper", "Lark",
    "Laurel", "Lone", "Maple", "Marble", "Meadow", "Mill", "Mink", "Mist", "Moss", "Oak", "Obsidian",
    "Otter", "Owl", "Pine", "Poplar", "Quail", "Raven", "Red", "Rose", "Rush", "Sage", "Salt", "Sand", "Shale",
    "Silver", "Sky", "Slate", "Sorrel", "Spruce", "Stone", "Sumac", "Summit", "Tamarack", "Thistle", "Timber",
    "Tumble", "Twin", "Willow", "Wind", "Wolf", "Yarrow", "Yucca",
)
_PLACE_WORDS = (
    "Bend", "Bluff", "Butte", "Canyon", "Creek", "Crossing", "Falls", "Flats", "Fork", "Gap", "Grove", "Hills",
    "Hollow", "Junction", "Lake", "Meadows", "Mesa", "Mills", "Park", "Pass", "Point", "Ranch", "Ridge",
    "Springs", "Valley", "Wells",
)
_TOWN_ENDINGS = ("ton", "ville", "field", "dale", "wood", "ford", "land", "burg")
_AREA_WORDS = ("Basin", "Valley", "Plateau", "Range", "Highlands", "Plains", "Foothills", "Uplands", "River")
_AGENCY_FORMS = (
    "{area} Air Quality Management District", "{area} Air Pollution Control District",
    "{stem} County Air Quality Division", "{stem} County Department of Environmental Health",
    "{area} Regional Clean Air Agency", "{area} Air Resources Council", "{stem} Tribal Environmental Office",
    "{area} Department of Environmental Quality",
)
_LANDMARKS = (
    "Fire Station", "High School", "Middle School", "Elementary", "Airport", "Water Tower", "Library",
    "City Hall", "Fairgrounds", "Municipal Park", "Near Road", "District Office", "Community Center",
    "Ranger Station", "Treatment Plant", "Post Office", "Rail Yard", "Golf Course", "Senior Center",
)
_STREET_KINDS = ("Street", "Avenue", "Road", "Drive", "Boulevard", "Lane")

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


@dataclass(frozen=True)
class SmokeEpisode:
    region: Region
    latitude: float
    longitude: float
    drift: tuple[float, float]  # degrees per day north and east: plumes ride the westerlies
    radius: float  # degrees
    start_day: float  # days since the first observation
    duration_days: float
    peak: float  # PM2.5 added at the plume centre at its height, ug/m3


@dataclass(frozen=True, eq=False)
class Timeline:
    stamps: tuple[dt.datetime, ...]
    elapsed_days: np.ndarray
    utc_hours: np.ndarray

    @classmethod
    def of_extract(cls) -> Timeline:
        stamps = tuple(
            dt.datetime.combine(day, dt.time(hour)) for day in OBSERVATION_DAYS for hour in OBSERVATION_HOURS
        )
        elapsed = np.array([(stamp - stamps[0]).total_seconds() / 86400 for stamp in stamps])
        return cls(stamps, elapsed, np.array([stamp.hour for stamp in stamps], dtype=float))

    def __len__(self) -> int:
        return len(self.stamps)


def _weighted_choice(rng: Rng, weights: Sequence[float] | np.ndarray) -> int:
    weights = np.asarray(weights, dtype=float)
    return int(rng.choice(len(weights), p=weights / weights.sum()))


def _pick(rng: Rng, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _invent_town(rng: Rng) -> str:
    if rng.random() < 0.3:
        return _pick(rng, _STEMS) + _pick(rng, _TOWN_ENDINGS)
    return f"{_pick(rng, _STEMS)} {_pick(rng, _PLACE_WORDS)}"


def _invent_unique(used: set[str], invent: Callable[[], str]) -> str:
    while (candidate := invent()) in used:
        pass
    used.add(candidate)
    return candidate


def _invent_agency_name(rng: Rng) -> str:
    stem = _pick(rng, _STEMS)
    return _pick(rng, _AGENCY_FORMS).format(stem=stem, area=f"{stem} {_pick(rng, _AREA_WORDS)}")


def _invent_site_name(rng: Rng, town: str, with_comma: bool) -> str:
    detail = _pick(rng, _LANDMARKS) if rng.random() < 0.6 else f"{_pick(rng, _STEMS)} {_pick(rng, _STREET_KINDS)}"
    if with_comma:
        return f"{town}, {detail}"
    style = rng.random()
    if style < 0.25:
        return town
    if style < 0.55:
        return f"{town} {_pick(rng, _LANDMARKS)}"
    return f"{town} - {detail}"


def _published(rng: Rng, value: float) -> float:
    """Rounds a coordinate to the number of decimals a site happens to publish."""
    decimals, weights = _COORDINATE_DECIMALS
    return round(value, decimals[_weighted_choice(rng, weights)])


@dataclass
class _Agency:
    """A regional agency while its network is being invented."""

    name: str
    region: Region
    towns: list[tuple[str, float, float, str]]  # name, latitude, longitude, county code


class _NetworkBuilder:
    """Invents agencies, towns and sites; keeps names and codes unique across the whole network."""

    def __init__(self, rng: Rng, timeline: Timeline):
        self.rng = rng
        self.timeline = timeline
        self.used_place_names: set[str] = set()  # agencies and towns
        self.used_site_names: set[str] = set()
        self.used_codes: set[str] = set()

    def agencies(self, count: int) -> list[_Agency]:
        region_weights = [region.weight for region in REGIONS]
        agencies = []
        for _ in range(count):
            region = REGIONS[_weighted_choice(self.rng, region_weights)]
            name = _invent_unique(self.used_place_names, lambda: _invent_agency_name(self.rng))
            centre = region.uniform_point(self.rng)
            towns = [self._town(region, centre) for _ in range(int(self.rng.integers(2, 8)))]
            agencies.append(_Agency(name, region, towns))
        return agencies

    def _town(self, region: Region, centre: tuple[float, float]) -> tuple[str, float, float, str]:
        latitude, longitude = region.point_near(self.rng, *centre, spread=0.8)
        county = f"{2 * int(self.rng.integers(100)) + 1:03d}"  # FIPS county codes are odd
        name = _invent_unique(self.used_place_names, lambda: _invent_town(self.rng))
        return name, latitude, longitude, county

    def permanent_site(self, agency: _Agency, parameters: tuple[str, ...], with_comma: bool) -> Site:
        town, latitude, longitude, county = agency.towns[int(self.rng.integers(len(agency.towns)))]
        latitude, longitude = agency.region.point_near(self.rng, latitude, longitude, spread=0.04)
        name = _invent_unique(self.used_site_names, lambda: _invent_site_name(self.rng, town, with_comma))
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
        episode = episodes[_weighted_choice(self.rng, [e.peak for e in episodes])]
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


def plan_smoke_episodes(rng: Rng, timeline: Timeline, count: int = 18) -> list[SmokeEpisode]:
    fire_prone = [region for region in REGIONS if region.fire_prone]
    season_days = float(timeline.elapsed_days[-1])
    episodes = []
    for _ in range(count):
        region = fire_prone[_weighted_choice(rng, [region.weight for region in fire_prone])]
        latitude, longitude = region.uniform_point(rng)
        episodes.append(
            SmokeEpisode(
                region=region,
                latitude=latitude,
                longitude=longitude,
                drift=(float(rng.normal(0.0, 0.15)), float(rng.uniform(0.0, 0.4))),
                radius=float(rng.lognormal(np.log(1.6), 0.4)),
                start_day=float(rng.uniform(-3.0, season_days - 2.0)),
                duration_days=float(rng.uniform(3.0, 14.0)),
                peak=float(rng.lognormal(np.log(90.0), 1.1)),
            )
        )
    return episodes


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
        builder.permanent_site(agencies[_weighted_choice(rng, agency_sizes)], parameters, index in comma_sites)
        for index, parameters in enumerate(_apportion_profiles(rng, permanent_count))
    ]
    sites += [builder.portable_site(episodes) for _ in range(portable_count)]
    return sorted(sites, key=lambda site: site.longitude)  # stable: co-located sites keep invention order


# --------------------------------------------------------------------------------------------------
# The atmosphere: per-site hourly fields every pollutant is derived from.


def _red_noise(rng: Rng, rows: int, steps: int, persistence: float) -> np.ndarray:
    """Unit-variance AR(1) noise per row: weather and emissions wander over hours, not hour by hour."""
    shocks = rng.standard_normal((rows, steps))
    noise = np.empty_like(shocks)
    noise[:, 0] = shocks[:, 0]
    innovation = np.sqrt(1.0 - persistence**2)
    for step in range(1, steps):
        noise[:, step] = persistence * noise[:, step - 1] + innovation * shocks[:, step]
    return noise


def _lognormal_wobble(rng: Rng, rows: int, steps: int, persistence: float, spread: float) -> np.ndarray:
    """Multiplicative red noise with mean 1."""
    return np.exp(spread * _red_noise(rng, rows, steps, persistence) - spread**2 / 2)


def _hour_bump(local_hour: np.ndarray, centre: float, width: float) -> np.ndarray:
    offset = (local_hour - centre + 12.0) % 24.0 - 12.0
    return np.exp(-(offset**2) / (2 * width**2))


@dataclass(frozen=True, eq=False)
class Atmosphere:
    local_hour: np.ndarray  # solar time at each site, sites x steps
    daylight: np.ndarray  # 0 at night, 1 in mid-afternoon
    smoke: np.ndarray  # wildfire PM2.5, ug/m3
    fine_particles: np.ndarray  # total PM2.5, ug/m3

    @property
    def steps(self) -> int:
        return self.local_hour.shape[1]


def _smoke_field(
    rng: Rng, sites: list[Site], episodes: list[SmokeEpisode], timeline: Timeline, local_hour: np.ndarray
) -> np.ndarray:
    latitude = np.array([site.latitude for site in sites])[:, None]
    longitude = np.array([site.longitude for site in sites])[:, None]
    days = timeline.elapsed_days[None, :]
    smoke = np.zeros((len(sites), len(timeline)))
    for episode in episodes:
        progress = (days - episode.start_day) / episode.duration_days
        strength = np.sin(np.pi * np.clip(progress, 0.0, 1.0)) ** 0.7
        centre_latitude = episode.latitude + episode.drift[0] * (days - episode.start_day)
        centre_longitude = episode.longitude + episode.drift[1] * (days - episode.start_day)
        east = (longitude - centre_longitude) * np.cos(np.radians(episode.latitude))
        distance_squared = (latitude - centre_latitude) ** 2 + east**2
        smoke += episode.peak * strength * np.exp(-distance_squared / (2 * episode.radius**2))
    # Smoke pools in valleys overnight and mixes out in the afternoon.
    diurnal = 1.0 + 0.3 * np.cos(2 * np.pi * (local_hour - 6.0) / 24.0)
    return smoke * diurnal * _lognormal_wobble(rng, len(sites), len(timeline), 0.85, 0.55)


def simulate_atmosphere(rng: Rng, sites: list[Site], episodes: list[SmokeEpisode], timeline: Timeline) -> Atmosphere:
    longitude = np.array([site.longitude for site in sites])
    local_hour = (timeline.utc_hours[None, :] + longitude[:, None] / 15.0) % 24.0
    daylight = np.clip(np.sin(np.pi * (local_hour - 8.5) / 12.0), 0.0, None) ** 1.3
    smoke = _smoke_field(rng, sites, episodes, timeline, local_hour)
    background = (
        rng.lognormal(np.log(5.5), 0.45, (len(sites), 1))
        * _lognormal_wobble(rng, len(sites), len(timeline), 0.9, 0.35)
        * (1.0 + 0.2 * np.cos(2 * np.pi * (local_hour - 8.0) / 24.0))
    )
    return Atmosphere(local_hour, daylight, smoke, background + smoke)


# Each model maps the atmosphere at the reporting sites (one row per series) to true hourly levels.


def _pm25_levels(rng: Rng, air: Atmosphere, rows: np.ndarray) -> np.ndarray:
    return air.fine_particles[rows]


def _pm10_levels(rng: Rng, air: Atmosphere, rows: np.ndarray) -> np.ndarray:
    # Coarse dust is lifted by afternoon winds; fine particles count toward PM10 as well.
    coarse = rng.lognormal(np.log(16.0), 0.6, (len(rows), 1)) * _lognormal_wobble(rng, len(rows), air.steps, 0.7, 0.5)
    return 1.15 * air.fine_particles[rows] + coarse * (0.8 + 0.4 * air.daylight[rows])


def _ozone_levels(rng: Rng, air: Atmosphere, rows: np.ndarray) -> np.ndarray:
    night = rng.uniform(8.0, 28.0, (len(rows), 1))
    afternoon_rise = rng.uniform(20.0, 44.0, (len(rows), 1))
    daylight = air.daylight[rows]
    smoke_boost = np.minimum(0.2 * air.smoke[rows], 45.0)  # smoke precursors feed daytime ozone
    wander = 4.5 * _red_noise(rng, len(rows), air.steps, 0.6)
    return np.maximum(night + (afternoon_rise + smoke_boost) * daylight + wander, 0.5)


def _traffic_cycle(local_hour: np.ndarray) -> np.ndarray:
    return 0.55 + 0.7 * _hour_bump(local_hour, 7.5, 1.5) + 0.5 * _hour_bump(local_hour, 19.5, 2.0)


def _no2_levels(rng: Rng, air: Atmosphere, rows: np.ndarray) -> np.ndarray:
    mean = rng.lognormal(np.log(7.5), 0.7, (len(rows), 1))
    steps = air.steps
    levels = mean * _traffic_cycle(air.local_hour[rows]) * _lognormal_wobble(rng, len(rows), steps, 0.6, 0.45)
    return levels + rng.normal(0.0, 0.5, (len(rows), steps))  # analyser zero drift: small negatives


def _so2_levels(rng: Rng, air: Atmosphere, rows: np.ndarray) -> np.ndarray:
    steps = air.steps
    base = rng.lognormal(np.log(0.4), 0.8, (len(rows), 1)) * _lognormal_wobble(rng, len(rows), steps, 0.5, 0.5)
    # Occasional plumes from a nearby stack.
    plumes = (rng.random((len(rows), steps)) < 0.02) * rng.exponential(8.0, (len(rows), steps))
    return base + plumes + rng.normal(0.0, 0.12, (len(rows), steps))


def _co_levels(rng: Rng, air: Atmosphere, rows: np.ndarray) -> np.ndarray:
    steps = air.steps
    base = rng.lognormal(np.log(0.3), 0.45, (len(rows), 1))
    levels = base * _traffic_cycle(air.local_hour[rows]) * _lognormal_wobble(rng, len(rows), steps, 0.7, 0.3)
    return levels + 0.009 * air.smoke[rows] + rng.normal(0.0, 0.02, (len(rows), steps))


_LEVEL_MODELS: dict[str, Callable[[Rng, Atmosphere, np.ndarray], np.ndarray]] = {
    "PM2.5": _pm25_levels,
    "PM10": _pm10_levels,
    "OZONE": _ozone_levels,
    "NO2": _no2_levels,
    "SO2": _so2_levels,
    "CO": _co_levels,
}


# --------------------------------------------------------------------------------------------------
# Monitors: what gets published for the true levels.


def _to_tenths(values: np.ndarray, whole_units: np.ndarray | bool) -> np.ndarray:
    return np.where(whole_units, np.rint(values) * 10, np.rint(values * 10)).astype(np.int64)


def observe(rng: Rng, pollutant: Pollutant, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(concentration, raw concentration) in integer tenths, _MISSING_TENTHS where not published."""
    fixed_noise, relative_noise = pollutant.raw_noise
    raw = levels + (fixed_noise + relative_noise * np.abs(levels)) * rng.standard_normal(levels.shape)
    smoothed = np.zeros_like(raw)
    for age, weight in enumerate(pollutant.smoothing_weights):
        older = np.concatenate([np.repeat(raw[:, :1], age, axis=1), raw[:, : raw.shape[1] - age]], axis=1)
        smoothed += weight * older
    if pollutant.clip_negative_concentration:
        smoothed = np.maximum(smoothed, 0.0)
    whole_unit_monitors = rng.random((len(levels), 1)) < pollutant.whole_unit_raw_share
    raw_tenths = _to_tenths(raw, whole_unit_monitors)
    concentration_tenths = _to_tenths(smoothed, pollutant.whole_unit_concentration)
    concentration_tenths[rng.random(levels.shape) < pollutant.concentration_missing_rate] = _MISSING_TENTHS
    raw_tenths[rng.random(levels.shape) < pollutant.raw_missing_rate] = _MISSING_TENTHS
    return concentration_tenths, raw_tenths


def air_quality_index(pollutant: Pollutant, concentration_tenths: np.ndarray) -> np.ndarray:
    """EPA AQI by linear interpolation within the breakpoint segment, MISSING where unavailable.

    Above the top of the table the last segment is extended, as AirNow does for extreme smoke.
    """
    if not pollutant.aqi_segments:
        return np.full(concentration_tenths.shape, MISSING, dtype=np.int64)
    low, high, index_low, index_high = (np.array(column, dtype=float) for column in zip(*pollutant.aqi_segments))
    low, high = np.rint(low * 10), np.rint(high * 10)
    resolution = pollutant.aqi_resolution_tenths
    truncated = np.maximum(concentration_tenths, 0) // resolution * resolution
    segment = np.clip(np.searchsorted(low, truncated, side="right") - 1, 0, len(low) - 1)
    index = index_low[segment] + (index_high[segment] - index_low[segment]) * (truncated - low[segment]) / (
        high[segment] - low[segment]
    )
    rounded = np.floor(index + 0.5).astype(np.int64)
    return np.where(concentration_tenths == _MISSING_TENTHS, MISSING, rounded)


def aqi_category(aqi: np.ndarray) -> np.ndarray:
    category = np.searchsorted(np.array(_CATEGORY_UPPER_AQI), aqi, side="left") + 1
    return np.where(aqi == MISSING, MISSING, category)


def _reporting(rng: Rng, sites: list[Site], series_sites: np.ndarray, steps: int) -> np.ndarray:
    """Which series publish a row at which step: sites in service, minus outages and lost hours."""
    step = np.arange(steps)[None, :]
    first = np.array([site.first_step for site in sites])[:, None]
    end = np.array([site.end_step for site in sites])[:, None]
    site_online = (step >= first) & (step < end) & (rng.random((len(sites), steps)) >= 0.01)
    series = len(series_sites)
    dropout_rate = np.minimum(0.003 + rng.exponential(0.008, (series, 1)), 0.2)
    reporting = site_online[series_sites] & (rng.random((series, steps)) >= dropout_rate)
    for row in np.flatnonzero(rng.random(series) < 0.12):  # one longer instrument outage
        length = int(rng.integers(2, 30))
        start = int(rng.integers(0, steps - length))
        reporting[row, start : start + length] = False
    return reporting


# --------------------------------------------------------------------------------------------------
# The data set and its files.


class SeriesLabel(NamedTuple):
    """The fields of a (site, parameter) series that are the same in every row."""

    latitude: str
    longitude: str
    parameter: str
    unit: str
    site_name: str
    agency_name: str
    aqs_code: str
    full_aqs_code: str


@dataclass(frozen=True, eq=False)
class DataSet:
    """One row per (site, parameter) series in file order, one column per observation step."""

    timeline: Timeline
    labels: list[SeriesLabel]
    concentration: np.ndarray  # tenths
    raw_concentration: np.ndarray  # tenths
    aqi: np.ndarray
    category: np.ndarray
    reporting: np.ndarray  # bool


def _label(site: Site, parameter: str) -> SeriesLabel:
    return SeriesLabel(
        latitude=str(site.latitude),  # shortest repr, so published decimals show without padding
        longitude=str(site.longitude),
        parameter=parameter,
        unit=POLLUTANTS[parameter].unit,
        site_name=site.name,
        agency_name=site.agency,
        aqs_code=site.aqs_code,
        full_aqs_code=site.full_aqs_code,
    )


def simulate(site_count: int, seed: int) -> DataSet:
    rng = np.random.default_rng(seed)
    timeline = Timeline.of_extract()
    episodes = plan_smoke_episodes(rng, timeline)
    sites = build_network(rng, timeline, site_count, episodes)
    air = simulate_atmosphere(rng, sites, episodes, timeline)
    series = [(index, parameter) for index, site in enumerate(sites) for parameter in site.parameters]
    series_sites = np.array([index for index, _ in series])
    shape = (len(series), len(timeline))
    concentration, raw, aqi = (np.empty(shape, dtype=np.int64) for _ in range(3))
    for name, pollutant in POLLUTANTS.items():
        rows = np.array([row for row, (_, parameter) in enumerate(series) if parameter == name], dtype=np.int64)
        levels = _LEVEL_MODELS[name](rng, air, series_sites[rows])
        concentration[rows], raw[rows] = observe(rng, pollutant, levels)
        aqi[rows] = air_quality_index(pollutant, concentration[rows])
    return DataSet(
        timeline=timeline,
        labels=[_label(sites[index], parameter) for index, parameter in series],
        concentration=concentration,
        raw_concentration=raw,
        aqi=aqi,
        category=aqi_category(aqi),
        reporting=_reporting(rng, sites, series_sites, len(timeline)),
    )


def _as_text(values: np.ndarray, render: Callable[[int], str]) -> np.ndarray:
    """Renders integers through a lookup table: values repeat far more often than they differ."""
    low = int(values.min())
    table = np.array([render(value) for value in range(low, int(values.max()) + 1)], dtype=object)
    return table[values - low]


def relative_path(stamp: dt.datetime) -> str:
    day = f"{stamp:%Y%m%d}"
    return f"{day}/{day}-{stamp.hour:02d}.csv"


def write_files(data: DataSet, directory: Path) -> tuple[int, int]:
    """Writes one CSV per observation step under directory; returns (files, rows)."""
    concentration = _as_text(data.concentration, lambda tenths: f"{tenths / 10:.1f}")
    raw = _as_text(data.raw_concentration, lambda tenths: f"{tenths / 10:.1f}")
    aqi = _as_text(data.aqi, str)
    category = _as_text(data.category, str)
    rows_written = 0
    for step, stamp in enumerate(data.timeline.stamps):
        rows = np.flatnonzero(data.reporting[:, step])
        when = f"{stamp:%Y-%m-%dT%H:%M}"
        path = directory / relative_path(stamp)
        path.parent.mkdir(exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerows(
                (
                    label.latitude, label.longitude, when, label.parameter, value, label.unit, raw_value,
                    index, level, label.site_name, label.agency_name, label.aqs_code, label.full_aqs_code,
                )
                for label, value, raw_value, index, level in zip(
                    (data.labels[row] for row in rows),
                    concentration[rows, step],
                    raw[rows, step],
                    aqi[rows, step],
                    category[rows, step],
                )
            )
        rows_written += len(rows)
    return len(data.timeline), rows_written


# --------------------------------------------------------------------------------------------------
# Putting a tree in place.


@dataclass(frozen=True)
class GenerationSummary:
    root: Path
    files_written: int
    rows_written: int


def _staging_prefix(root: Path) -> str:
    return f".{root.name}.partial-"


def _retired_prefix(root: Path) -> str:
    return f".{root.name}.retired-"


def _remove_leftovers(root: Path) -> None:
    """Deletes staging trees of writers that crashed; callers hold the lock, so none is in use."""
    for prefix in (_staging_prefix(root), _retired_prefix(root)):
        for leftover in root.parent.glob(prefix + "*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _swap_into_place(staging: Path, root: Path) -> None:
    if not root.exists():
        staging.rename(root)
        return
    retired = Path(tempfile.mkdtemp(prefix=_retired_prefix(root), dir=root.parent))
    root.rename(retired / root.name)
    staging.rename(root)
    shutil.rmtree(retired)


def _write_tree(root: Path, site_count: int, seed: int) -> GenerationSummary:
    if site_count < 1:
        raise ValueError(f"sites must be at least 1, got {site_count}")
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} exists and is not a directory")
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(root)
    staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(root), dir=root.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; the tree is meant to be shared
        files, rows = write_files(simulate(site_count, seed), staging)
        _swap_into_place(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return GenerationSummary(root=root, files_written=files, rows_written=rows)


@contextmanager
def _exclusive_lock(root: Path) -> Iterator[None]:
    """Serialises writers of one tree across processes; the lock file sits next to the tree."""
    lock_path = root.with_name(root.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        yield


def _holds_data_set(root: Path) -> bool:
    """Trees only ever appear at root complete (see _write_tree), so any non-empty one is done."""
    return root.is_dir() and any(root.iterdir())


def generate(root: Path, *, sites: int = DEFAULT_SITES, seed: int = DEFAULT_SEED) -> GenerationSummary:
    """Writes the data set to root, replacing whatever tree is there."""
    root = Path(root)
    with _exclusive_lock(root):
        return _write_tree(root, sites, seed)


def _generate_if_absent(root: Path, sites: int, seed: int) -> GenerationSummary | None:
    with _exclusive_lock(root):
        return None if _holds_data_set(root) else _write_tree(root, sites, seed)


def ensure_generated(root: Path, *, sites: int = DEFAULT_SITES, seed: int = DEFAULT_SEED) -> bool:
    """Writes the data set to root unless a tree is already there; True if it wrote one."""
    return _generate_if_absent(Path(root), sites, seed) is not None


@click.command()
@click.option("--sites", type=click.IntRange(min=1), default=DEFAULT_SITES, show_default=True, help="Monitoring sites.")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_SEED, show_default=True, help="Random seed.")
@click.option("--force", is_flag=True, help="Regenerate even if ROOT already holds a data set.")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
def main(sites: int, seed: int, force: bool, root: Path) -> None:
    """Write a synthetic AirNow fire-season data set (YYYYMMDD/YYYYMMDD-HH.csv) to ROOT."""
    started = time.perf_counter()
    summary = generate(root, sites=sites, seed=seed) if force else _generate_if_absent(root, sites, seed)
    if summary is None:
        click.echo(f"{root} already holds a data set; nothing written (use --force to regenerate)")
        return
    elapsed = time.perf_counter() - started
    click.echo(f"wrote {summary.files_written} files, {summary.rows_written} rows to {root} in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
