"""The six pollutants: units, EPA AQI breakpoints, and how their monitors report them.

Plain values only; what a monitor publishes from them is daemons.datagen.monitors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict


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

# Particle and ozone monitors publish a smoothed (NowCast-like) concentration next to the raw hourly
# reading and drop either one now and then; gas analysers publish one value for both and, in the real
# set, never drop it.
class _Reporting(TypedDict):
    raw_noise: tuple[float, float]
    whole_unit_raw_share: float
    whole_unit_concentration: bool
    smoothing_weights: tuple[float, ...]
    clip_negative_concentration: bool
    concentration_missing_rate: float
    raw_missing_rate: float


_GAS = _Reporting(
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
