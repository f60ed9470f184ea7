"""bin/start --layout NAME --host HOST and bin/stop --layout NAME --host HOST: one host's supervisord.

`start` derives the host's state folder (render.py), starts its supervisord (or starts its
programs again when it runs already), and waits until each of its programs serves; on the
gateway's host, until the gateway answers a count with every partition, or says which are
missing. Exit codes: 0 ready, 2 a bad layout, host or config (one line naming the file, the
field and the problem; nothing is started), 3 the gateway serves but partitions are missing, 1
anything else (not ready in time).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from daemons.client import FireClient, client_channel
from daemons.config import ConfigError
from daemons.deploy.render import CHECKOUT, HostDeployment, render_host
from daemons.deploy.wake import wake_supervisord
from daemons.security.certs import CLUSTER_KEY_FILE, write_cluster
from daemons.security.gencerts import places as certificate_places

READY_SECONDS = 120.0
POLL_SECONDS = 0.5  # between readiness checks: a first start parses CSVs for seconds
CHECK_TIMEOUT_SECONDS = 2.0

etc_option = click.option("--etc", "etc", type=click.Path(file_okay=False, path_type=Path), default=CHECKOUT / "etc",
                          show_default=True, help="The per-program configs and layouts/ (tests use a copy).")
state_option = click.option("--state", "state", type=click.Path(file_okay=False, path_type=Path),
                            default=CHECKOUT / "var" / "hosts", show_default=True,
                            help="Where each host's derived configs, socket, logs and caches go.")
layout_option = click.option("--layout", required=True, help="A layout in ETC/layouts/, e.g. two-hosts.")
host_option = click.option("--host", "host", required=True, help="This machine's host in the layout, e.g. h1.")


def venv_tool(name: str) -> str:
    """A command installed beside this interpreter (supervisord, supervisorctl)."""
    return str(Path(sys.executable).parent / name)


def _render(etc: Path, layout: str, host: str, state: Path, tls: Path | None) -> HostDeployment:
    try:
        return render_host(etc, layout, host, state, tls)
    except ConfigError as error:
        click.echo(f"start: {error}", err=True)
        sys.exit(2)


def _certificates(tls: Path) -> Path:
    """The TLS folder, when it holds the cluster's certificates and datagram key; else exit 2 saying
    how to make them."""
    wanted = [tls / "ca.pem", tls / "client" / "cert.pem", tls / CLUSTER_KEY_FILE]
    missing = [path for path in wanted if not path.is_file()]
    if missing:
        click.echo(f"start: --tls: no cluster certificates in {tls} (no {missing[0]}): make them once, on one "
                   f"machine, with bin/gen-certs {tls}, and copy the folder to every host (or run plaintext with "
                   f"--insecure)", err=True)
        sys.exit(2)
    return tls.resolve()


def _serving(address: str, program: str, tls: Path | None) -> bool:
    """Whether `program` at `address` says it serves (the standard health service, which any cluster
    certificate may ask: the client's, checking the daemon's certificate names the program)."""
    channel = grpc.insecure_channel(address) if tls is None else client_channel(
        address, tls / "client", [("grpc.ssl_target_name_override", program)])
    with channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                timeout=CHECK_TIMEOUT_SECONDS)
        except grpc.RpcError:
            return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


@click.group()
def main() -> None:
    """One host of a multi-host deployment."""


@main.command()
@layout_option
@host_option
@etc_option
@state_option
@click.option("--tls", "tls", type=click.Path(file_okay=False, path_type=Path), default=CHECKOUT / "var" / "tls",
              show_default=True, help="The cluster's certificates (bin/gen-certs), the same folder on every host.")
@click.option("--insecure", is_flag=True, help="Plaintext instead of mutual TLS: for a network you trust only.")
@click.option("--make-certs", is_flag=True,
              help="Make the certificates in --tls when they are missing (one host: no other needs a copy).")
def start(layout: str, host: str, etc: Path, state: Path, tls: Path, insecure: bool, make_certs: bool) -> None:
    """Start this host's programs under a supervisord of its own; wait until they serve."""
    if make_certs and not insecure and not (tls / "ca.pem").exists():
        try:
            write_cluster(tls, certificate_places(etc))
        except (ConfigError, OSError) as error:
            click.echo(f"start: --make-certs: {error}", err=True)
            sys.exit(2)
        click.echo(f"made the cluster's certificates in {tls} (the client's: {tls / 'client'})")
    certificates = None if insecure else _certificates(tls)
    deployment = _render(etc, layout, host, state, certificates)
    conf = str(deployment.supervisord_conf)
    running = (deployment.state / "run" / "supervisord.pid").exists() and subprocess.run(
        [venv_tool("supervisorctl"), "-c", conf, "pid"], capture_output=True, text=True, check=False).stdout.strip().isdigit()
    if running:
        subprocess.run([venv_tool("supervisorctl"), "-c", conf, "start", "all"], capture_output=True, check=False)
    else:
        subprocess.run([venv_tool("supervisord"), "-c", conf], check=True)
        wake_supervisord(str(deployment.state / "run" / "supervisor.sock"))
    deadline = time.monotonic() + READY_SECONDS
    waiting = list(deployment.programs)
    while waiting and time.monotonic() < deadline:
        waiting = [program for program in waiting
                   if not _serving(deployment.addresses[program], program, deployment.tls)]
        if waiting:
            time.sleep(POLL_SECONDS)
    if waiting:
        click.echo(f"start: not serving after {READY_SECONDS:.0f} s: {', '.join(waiting)}; see "
                   f"{deployment.state / 'logs'} and supervisorctl -c {conf} status", err=True)
        sys.exit(1)
    where = ", ".join(f"{program} at {deployment.addresses[program]}" for program in deployment.programs)
    if deployment.gateway is None:
        click.echo(f"ready: {layout} host {host} serves {where} (supervisorctl -c {conf})")
        return
    missing = "no answer yet"
    while time.monotonic() < deadline:
        try:
            with FireClient(deployment.gateway, deadline_seconds=30,
                            tls_dir=None if deployment.tls is None else deployment.tls / "client") as client:
                rows, answer = client.count()
        except grpc.RpcError as error:
            missing = f"the gateway: {error.code().name}"
        else:
            if answer.complete:
                click.echo(f"ready: {layout} host {host} serves {where}; the gateway counts {rows} rows "
                           f"(supervisorctl -c {conf})")
                return
            missing = ", ".join(answer.missing_partitions)
        time.sleep(POLL_SECONDS)
    click.echo(f"start: the gateway serves, but not every partition answers after {READY_SECONDS:.0f} s; "
               f"missing: {missing} (are the other hosts started?)", err=True)
    sys.exit(3)


@main.command()
@layout_option
@host_option
@state_option
def stop(layout: str, host: str, state: Path) -> None:
    """Stop this host's programs and its supervisord."""
    conf = state / layout / host / "etc" / "supervisord.conf"
    if not conf.exists():
        click.echo(f"stop: nothing was started for {layout} host {host} ({conf} does not exist)", err=True)
        sys.exit(2)
    sys.exit(subprocess.run([venv_tool("supervisorctl"), "-c", str(conf), "shutdown"], check=False).returncode)
