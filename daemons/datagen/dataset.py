"""The data set: every series simulated from one seed, as arrays, and written out as AirNow CSV files.

The output is a function of (sites, seed) alone: one seeded numpy Generator makes every random
choice in a fixed order, and values are quantised to the reported precision before formatting.
Putting a written tree in place safely is daemons.datagen.tree.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from daemons.datagen.atmosphere import LEVEL_MODELS, simulate_atmosphere
from daemons.datagen.geography import plan_smoke_episodes
from daemons.datagen.monitors import air_quality_index, aqi_category, observe, reporting_mask
from daemons.datagen.network import Site, build_network
from daemons.datagen.pollutants import POLLUTANTS
from daemons.datagen.timeline import Timeline


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
        levels = LEVEL_MODELS[name](rng, air, series_sites[rows])
        concentration[rows], raw[rows] = observe(rng, pollutant, levels)
        aqi[rows] = air_quality_index(pollutant, concentration[rows])
    return DataSet(
        timeline=timeline,
        labels=[_label(sites[index], parameter) for index, parameter in series],
        concentration=concentration,
        raw_concentration=raw,
        aqi=aqi,
        category=aqi_category(aqi),
        reporting=reporting_mask(rng, sites, series_sites, len(timeline)),
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
