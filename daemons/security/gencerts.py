"""bin/gen-certs DIR: the cluster's CA, a certificate per daemon and one for clients, and the health
datagrams' key (certs.py). Each daemon's certificate names the addresses and host names it runs at
in every layout of etc/layouts/ (its one-host layout is 127.0.0.1), and localhost.

Exit codes: 0 done, 2 bad arguments or a layout that cannot be read.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import click

from daemons.config import ConfigError
from daemons.deploy.layout import load_layout
from daemons.deploy.render import CHECKOUT, program_names
from daemons.security.certs import write_cluster

ETC = CHECKOUT / "etc"


def places(etc: Path) -> dict[str, list[str]]:
    """program -> every address and host name it runs at in etc's layouts, with localhost."""
    programs = program_names(etc)
    found: dict[str, list[str]] = defaultdict(lambda: ["localhost", "127.0.0.1"])
    for path in sorted((etc / "layouts").glob("*.json")):
        for host in load_layout(path, programs).hosts:
            for program in host.programs:
                found[program] += [host.address, host.name]
    return {program: list(dict.fromkeys(found[program])) for program in programs}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--rotate", is_flag=True, help="Issue every certificate again (the CA and the datagram key stay).")
@click.option("--etc", type=click.Path(file_okay=False, path_type=Path), default=ETC, show_default=True,
              help="The folder of the programs' configs and layouts.")
def main(folder: Path, rotate: bool, etc: Path) -> None:
    """Create (or complete) the certificates of a cluster in DIR; what exists is kept unless --rotate."""
    try:
        where = places(etc)
    except (ConfigError, OSError) as error:
        click.echo(f"gen-certs: {error}", err=True)
        sys.exit(2)
    written = write_cluster(folder, where, rotate=rotate)
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo(f"{folder}: every certificate and key is there already (--rotate issues them again)")


if __name__ == "__main__":
    main(prog_name="gen-certs")
