"""Command-line options the client tools share (bin/query, bin/healthlog)."""

from __future__ import annotations

from pathlib import Path

import click

# The client's certificates: the Python client (daemons/client.py) reads FIRE_TLS_DIR the same way.
tls_option = click.option(
    "--tls", "tls_dir", envvar="FIRE_TLS_DIR", type=click.Path(file_okay=False, path_type=Path),
    help="Mutual TLS with DIR's ca.pem, cert.pem and key.pem (bin/gen-certs's DIR/client); default "
         "$FIRE_TLS_DIR, else plaintext.")
