"""Command-line options the client tools share (bin/query, bin/healthlog)."""

from __future__ import annotations

from pathlib import Path

import click

from daemons.client import TlsFilesError, read_tls_folder


def _readable_tls_folder(_context: click.Context, _parameter: click.Parameter, folder: Path | None) -> Path | None:
    """Checked when the command line is read: a usage error (exit 2) names the file missing."""
    if folder is not None:
        try:
            read_tls_folder(folder)
        except TlsFilesError as error:
            raise click.BadParameter(str(error)) from None
    return folder


# The client's certificates: the Python client (daemons/client.py) reads FIRE_TLS_DIR the same way.
tls_option = click.option(
    "--tls", "tls_dir", envvar="FIRE_TLS_DIR", type=click.Path(file_okay=False, path_type=Path),
    callback=_readable_tls_folder,
    help="Mutual TLS with DIR's ca.pem, cert.pem and key.pem (bin/gen-certs's DIR/client); default "
         "$FIRE_TLS_DIR, else plaintext.")
