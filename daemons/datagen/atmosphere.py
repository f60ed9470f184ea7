"""The atmosphere at each site, hour by hour, and the true level of each pollutant derived from it.

What the monitors make of those true levels is daemons.datagen.monitors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from daemons.datagen.geography import SmokeEpisode
from daemons.datagen.network import Site
from daemons.datagen.sampling import Rng
from daemons.datagen.timeline import Timeline


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


LEVEL_MODELS: dict[str, Callable[[Rng, Atmosphere, np.ndarray], np.ndarray]] = {
    "PM2.5": _pm25_levels,
    "PM10": _pm10_levels,
    "OZONE": _ozone_levels,
    "NO2": _no2_levels,
    "SO2": _so2_levels,
    "CO": _co_levels,
}
