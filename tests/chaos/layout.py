"""Which day folders make up each partition, read from the deployment's daemon configs.

Read here rather than through the daemons' config loader, so the oracle's idea of a partition does
not share code with the daemons it checks.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path


def days_of(spec: str) -> list[str]:
    """`YYYYMMDD` or an inclusive range `YYYYMMDD-YYYYMMDD`, as the day folder names it covers."""
    first, _, last = spec.partition("-")
    start, end = _date(first), _date(last or first)
    return [(start + timedelta(days=offset)).strftime("%Y%m%d") for offset in range((end - start).days + 1)]


def _date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def partition_days(config_paths: list[Path]) -> dict[str, list[str]]:
    """Partition name -> its day folders, from every daemon config holding data; a partition's
    copies must agree (they do in the shipped deployment), else the oracle would be ambiguous."""
    layout: dict[str, list[str]] = {}
    for path in config_paths:
        for partition in json.loads(path.read_text()).get("data", {}).get("partitions", []):
            days = [day for spec in partition["days"] for day in days_of(spec)]
            if layout.setdefault(partition["name"], days) != days:
                raise ValueError(f"{path}: partition {partition['name']} lists other days than another copy")
    return layout
