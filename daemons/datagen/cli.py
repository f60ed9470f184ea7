"""The `fire-generate-data` command (`python -m daemons.datagen`, bin/generate-data): options and report.

What it writes and how is daemons.datagen.tree; this module only parses options and reports.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from daemons.datagen.tree import DEFAULT_SEED, DEFAULT_SITES, REAL_SET_SITES, generate, generate_if_absent


@click.command()
@click.option("--sites", type=click.IntRange(min=1), help=f"Monitoring sites  [default: {DEFAULT_SITES}].")
@click.option("--scale", type=click.IntRange(min=1),
              help=f"Instead of --sites: N times the real season's size ({REAL_SET_SITES} x N sites, about 1.18M x N rows).")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_SEED, show_default=True, help="Random seed.")
@click.option("--force", is_flag=True, help="Regenerate even if ROOT already holds a data set.")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
def main(sites: int | None, scale: int | None, seed: int, force: bool, root: Path) -> None:
    """Write a synthetic AirNow fire-season data set (YYYYMMDD/YYYYMMDD-HH.csv) to ROOT."""
    if sites is not None and scale is not None:
        raise click.UsageError("give --sites or --scale, not both")
    sites = REAL_SET_SITES * scale if scale is not None else sites or DEFAULT_SITES
    started = time.perf_counter()
    summary = generate(root, sites=sites, seed=seed) if force else generate_if_absent(root, sites, seed)
    if summary is None:
        click.echo(f"{root} already holds a data set; nothing written (use --force to regenerate)")
        return
    elapsed = time.perf_counter() - started
    click.echo(f"wrote {summary.files_written} files, {summary.rows_written} rows to {root} in {elapsed:.1f}s")
