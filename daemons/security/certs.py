"""The cluster's certificates and keys, made with the `cryptography` package (no shelling out).

A cluster CA signs one certificate per daemon and one for clients. Who a certificate speaks for is
a URI in its subject alternative names, `spiffe://fire.cluster/daemon/<program>` or
`spiffe://fire.cluster/client/<name>` (the SPIFFE form, which gRPC reads as the peer's identity),
so authorization (identity.py) never guesses from a common name. A daemon's certificate also
names the program as a DNS name, which is what the channels to it verify (whatever address it is
reached at), and the addresses and host names it runs at in every layout.

Layout of the folder: `ca.pem` (and the CA's key, `ca-key.pem`), `<program>/{cert.pem,key.pem}`,
`client/{ca.pem,cert.pem,key.pem}`, and `cluster.key`, the secret of the health datagrams'
HMAC. Keys are written mode 0600. What exists is kept unless told to rotate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from daemons.security.identity import CLIENT_PREFIX, DAEMON_PREFIX

CLIENT_NAME = "client"
CA_DAYS = 3650
LEAF_DAYS = 825  # within what browsers and most TLS stacks accept for a leaf
CLUSTER_KEY_BYTES = 32
CLUSTER_KEY_FILE = "cluster.key"
PRIVATE = 0o600


@dataclass(frozen=True)
class Leaf:
    """A certificate to issue: its identity URI, and the DNS names and IP addresses it answers for."""

    common_name: str
    identity: str
    names: tuple[str, ...]
    server: bool  # a daemon serves and calls; a client only calls


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fire cluster"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    name = _name("fire cluster CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _alternative_name(text: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        return x509.DNSName(text)


def issue(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, leaf: Leaf, now: dt.datetime,
          days: int = LEAF_DAYS) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, *([ExtendedKeyUsageOID.SERVER_AUTH] if leaf.server else [])]
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(leaf.identity)]
    names += [_alternative_name(name) for name in dict.fromkeys(leaf.names)]
    cert = (x509.CertificateBuilder().subject_name(_name(leaf.common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def daemon_leaf(program: str, places: Iterable[str]) -> Leaf:
    return Leaf(program, DAEMON_PREFIX + program, (program, *places), server=True)


def client_leaf(name: str = CLIENT_NAME) -> Leaf:
    return Leaf(name, CLIENT_PREFIX + name, (), server=False)


def tls_section(folder: Path, program: str) -> dict[str, str]:
    """A daemon config's `tls` section for `program`, with the certificates in `folder`."""
    return {"ca": str(folder / "ca.pem"), "cert": str(folder / program / "cert.pem"),
            "key": str(folder / program / "key.pem"), "cluster_key": str(folder / CLUSTER_KEY_FILE)}


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    """Writes a file whole or not at all; a private one is never readable by others, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE if private else 0o644)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.replace(partial, path)


def write_cluster(folder: Path, places: Mapping[str, Iterable[str]], *, rotate: bool = False,
                  now: dt.datetime | None = None) -> list[Path]:
    """Makes the cluster's CA, a certificate for each program of `places` (program -> the addresses
    and host names it runs at), one for clients, and the datagram key, in `folder`. Keeps what
    exists (a missing piece is made) unless `rotate`: then every certificate is issued again by
    the same CA, whose key stays. Returns the files written."""
    now = now or dt.datetime.now(dt.UTC)
    written: list[Path] = []
    ca_cert_path, ca_key_path = folder / "ca.pem", folder / "ca-key.pem"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: not the elliptic-curve key this tool makes")
        ca_key = loaded
    else:
        ca_key, ca_cert = make_ca(now)
        _write(ca_key_path, key_pem(ca_key), private=True)
        _write(ca_cert_path, cert_pem(ca_cert))
        written += [ca_key_path, ca_cert_path]
        rotate = True  # a new CA: nothing the old one signed is trusted any more
    leaves = {program: daemon_leaf(program, program_places) for program, program_places in places.items()}
    leaves[CLIENT_NAME] = client_leaf()
    for folder_name, leaf in leaves.items():
        cert_path, key_path = folder / folder_name / "cert.pem", folder / folder_name / "key.pem"
        if not rotate and cert_path.exists() and key_path.exists():
            continue
        key, cert = issue(ca_key, ca_cert, leaf, now)
        _write(key_path, key_pem(key), private=True)
        _write(cert_path, cert_pem(cert))
        written += [key_path, cert_path]
    client_ca = folder / CLIENT_NAME / "ca.pem"
    if rotate or not client_ca.exists():
        _write(client_ca, cert_pem(ca_cert))
        written.append(client_ca)
    cluster_key = folder / CLUSTER_KEY_FILE
    if not cluster_key.exists():
        _write(cluster_key, secrets.token_bytes(CLUSTER_KEY_BYTES), private=True)
        written.append(cluster_key)
    return written
