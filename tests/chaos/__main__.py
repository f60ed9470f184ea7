"""bin/chaos: injects faults into a private cluster for N minutes while clients check every answer
against the oracle; prints the tally and exits 1 on any wrong answer, unexplained health transition
or fault the cluster did not recover from."""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

import click

from tests.chaos import soak


@click.command()
@click.option("--minutes", type=float, default=10.0, show_default=True, help="How long to inject faults.")
@click.option("--seed", type=int, help="Seeds the faults, pauses and requests (default: a random one, printed).")
@click.option("--data", "data_root", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="AirNow data root (default: ../shared/fire-data beside the checkout, else var/fire-data).")
@click.option("--scans", default=2, show_default=True, help="Clients streaming full scans all the time.")
@click.option("--mixed", default=2, show_default=True, help="Clients sending filtered queries, counts and aggregates.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path),
              help="Run the cluster in this folder and keep it, logs included (default: a temporary folder).")
@click.option("--json", "as_json", is_flag=True, help="Print the tally as a JSON document.")
def main(minutes: float, seed: int | None, data_root: Path | None, scans: int, mixed: int, home: Path | None,
         as_json: bool) -> None:
    """Chaos and abuse soak of the whole service under real supervisord."""
    settings = soak.Settings(minutes * 60, random.randrange(1 << 31) if seed is None else seed,
                             data_root or soak.default_data_root(), scans, mixed)
    if home is None:
        with tempfile.TemporaryDirectory(prefix="fire-chaos-") as scratch:
            tally = soak.run(settings, Path(scratch) / "cluster", Path(scratch) / "cache")
    else:
        tally = soak.run(settings, home / "cluster", home / "cache")
    click.echo(json.dumps(tally.document(), indent=2) if as_json else tally.text())
    sys.exit(0 if tally.passed else 1)


main(prog_name="chaos")
