"""What the monitors publish for the true levels: rounded readings, AQI and category, and gaps.

The true levels are daemons.datagen.atmosphere's; the pollutants' reporting habits are
daemons.datagen.pollutants'.
"""

from __future__ import annotations

import numpy as np

from daemons.datagen.network import Site
from daemons.datagen.pollutants import Pollutant
from daemons.datagen.sampling import Rng
from daemons.storage.columns import MISSING

_MISSING_TENTHS = MISSING * 10  # readings are held as integer tenths; this one formats as "-999.0"
_CATEGORY_UPPER_AQI = (50, 100, 150, 200, 300)  # categories 1..5; anything above is 6


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


def reporting_mask(rng: Rng, sites: list[Site], series_sites: np.ndarray, steps: int) -> np.ndarray:
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
