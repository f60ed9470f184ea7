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

Package map, each module importing only those above it:

    sampling     the seeded Generator type and weighted choice
    timeline     the extract's days and odd UTC hours: the observation steps
    pollutants   units, EPA AQI breakpoints, and how each pollutant's monitors report
    geography    state boxes over the western and central US, and the smoke episodes over them
    names        invented agency, town and site names
    network      the monitoring sites: agencies, codes, coordinates, parameters, service spans
    atmosphere   hourly fields at each site and every pollutant's true level
    monitors     published readings, AQI and category, and reporting gaps
    dataset      everything simulated from (sites, seed), and its CSV files
    tree         putting a tree in place at a path: atomically, once, one writer at a time
    cli          the fire-generate-data command (also `python -m daemons.datagen`)
"""

from daemons.datagen.cli import main
from daemons.datagen.dataset import DataSet, simulate, write_files
from daemons.datagen.monitors import air_quality_index, aqi_category
from daemons.datagen.pollutants import POLLUTANTS, Pollutant
from daemons.datagen.tree import DEFAULT_SEED, DEFAULT_SITES, GenerationSummary, ensure_generated, generate
from daemons.storage.columns import MISSING

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_SITES",
    "MISSING",
    "POLLUTANTS",
    "DataSet",
    "GenerationSummary",
    "Pollutant",
    "air_quality_index",
    "aqi_category",
    "ensure_generated",
    "generate",
    "main",
    "simulate",
    "write_files",
]
