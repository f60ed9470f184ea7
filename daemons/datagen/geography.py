"""Where things happen: state boxes over the western and central US, and the smoke episodes over them.

The monitoring network placed in these boxes is daemons.datagen.network; the smoke each site
breathes is daemons.datagen.atmosphere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemons.datagen.sampling import Rng, weighted_choice
from daemons.datagen.timeline import Timeline


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


def plan_smoke_episodes(rng: Rng, timeline: Timeline, count: int = 18) -> list[SmokeEpisode]:
    fire_prone = [region for region in REGIONS if region.fire_prone]
    season_days = float(timeline.elapsed_days[-1])
    episodes = []
    for _ in range(count):
        region = fire_prone[weighted_choice(rng, [region.weight for region in fire_prone])]
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
