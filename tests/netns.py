"""Hosts as network namespaces on one machine, joined pairwise by links that can be cut.

Each pair of hosts has a link of its own through a bridge in a namespace of its own. Setting
that bridge's ports down drops the pair's traffic silently: no RST, no ICMP, so connections hang
as a cut cable leaves them. Cutting every link of a host cuts the host off. (Filtering one pair's
traffic on a shared switch would need tc qdiscs, which not every kernel has.) Everything is made
by the test and torn down by `destroy`, even after a failure. Needs root and `ip`;
`unavailable()` says why not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence

ARP_RETRY_MILLISECONDS = 100


def unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "network namespaces need iproute2 (ip)"
    probe = f"fqprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot make a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Network:
    """Hosts joined pairwise: each pair of hosts by a link of its own, a bridge in a namespace of its
    own between them, whose ports can be set down. A host's address sits on its loopback interface,
    with a route to each other host over their pair's link; the test's own process reaches the
    first host (the gateway's) over a link of its own."""

    def __init__(self, hosts: Sequence[str]):
        tag = os.getpid() % 200 + 20
        self.subnet = f"10.{tag}.77"  # one per test process, so two runs on one machine never meet
        self.prefix = f"fq{os.getpid() % 100000}"
        self.hosts = list(hosts)
        self.addresses = {host: f"{self.subnet}.{index}" for index, host in enumerate(self.hosts, 1)}
        self.test_address = f"{self.subnet}.254"
        self.pairs = [(a, b) for index, a in enumerate(self.hosts) for b in self.hosts[index + 1:]]
        self._made: list[str] = []

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def _switch(self, a: str, b: str) -> str:
        return f"{self.prefix}-{a}{b}"

    def _port(self, a: str, b: str, toward: str) -> str:
        """The port of the a-b switch facing `toward`."""
        return f"{self.prefix}{a}{b}{toward}"[-15:]

    def _namespace_made(self, name: str) -> None:
        _ip("netns", "add", name)
        self._made.append(name)

    def create(self) -> None:
        for host in self.hosts:
            namespace = self.namespace(host)
            self._namespace_made(namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", namespace, "addr", "add", f"{self.addresses[host]}/32", "dev", "lo")
        for a, b in self.pairs:
            switch = self._switch(a, b)
            self._namespace_made(switch)
            _ip("-n", switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", switch, "link", "set", "br0", "up")
            for host, other in ((a, b), (b, a)):
                inside, port = f"{self.prefix}i{a}{b}{host}"[-15:], self._port(a, b, host)
                _ip("link", "add", inside, "type", "veth", "peer", "name", port)
                _ip("link", "set", inside, "netns", self.namespace(host))
                _ip("link", "set", port, "netns", switch)
                _ip("-n", switch, "link", "set", port, "master", "br0")
                _ip("-n", switch, "link", "set", port, "up")
                _ip("-n", self.namespace(host), "link", "set", inside, "up")
                # A cut link makes the kernel give up resolving the other host's address (ARP), and
                # after the mend it asks again only on its own retry clock, 1 s by default: heals
                # measured 0.15-0.65 s for bare datagrams, past the 1 s target once with daemons
                # (2026-11-30). At 0.1 s, a retry setting operators can choose too (README), the
                # heal times measured are the daemons' own.
                _ip("-n", self.namespace(host), "ntable", "change", "name", "arp_cache", "dev", inside,
                    "retrans", str(ARP_RETRY_MILLISECONDS))
                _ip("-n", self.namespace(host), "route", "add", f"{self.addresses[other]}/32", "dev", inside,
                    "src", self.addresses[host])
        first = self.hosts[0]
        ours, theirs = f"{self.prefix}t", f"{self.prefix}ti"
        _ip("link", "add", ours, "type", "veth", "peer", "name", theirs)
        self._made.append(f"link:{ours}")
        _ip("link", "set", theirs, "netns", self.namespace(first))
        _ip("-n", self.namespace(first), "link", "set", theirs, "up")
        _ip("-n", self.namespace(first), "route", "add", f"{self.test_address}/32", "dev", theirs,
            "src", self.addresses[first])
        _ip("addr", "add", f"{self.test_address}/32", "dev", ours)
        _ip("link", "set", ours, "up")
        _ip("route", "add", f"{self.addresses[first]}/32", "dev", ours, "src", self.test_address)

    def run(self, host: str, command: Sequence[str], **options) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.namespace(host), *command], text=True, **options)

    def _set(self, a: str, b: str, state: str) -> None:
        pair = (a, b) if (a, b) in self.pairs else (b, a)
        for toward in pair:
            _ip("-n", self._switch(*pair), "link", "set", self._port(*pair, toward), state)

    def cut(self, a: str, b: str) -> None:
        """The link between `a` and `b` cut: their traffic is dropped silently, both ways; the rest flows."""
        self._set(a, b, "down")

    def mend(self, a: str, b: str) -> None:
        self._set(a, b, "up")

    def isolate(self, host: str) -> None:
        """Every link of `host` cut: its daemons keep running, and hear nothing and nobody hears them."""
        for other in self.hosts:
            if other != host:
                self.cut(host, other)

    def heal(self, host: str) -> None:
        for other in self.hosts:
            if other != host:
                self.mend(host, other)

    def kill(self, host: str) -> None:
        """Every process in the host's namespace, at once (the machine lost its power)."""
        pids = subprocess.run(["ip", "netns", "pids", self.namespace(host)], capture_output=True, text=True).stdout
        for pid in pids.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)

    def destroy(self) -> None:
        for host in self.hosts:
            self.kill(host)
        for made in reversed(self._made):
            if made.startswith("link:"):
                subprocess.run(["ip", "link", "del", made[5:]], capture_output=True)
            else:
                subprocess.run(["ip", "netns", "del", made], capture_output=True)
        self._made.clear()
