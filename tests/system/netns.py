"""Test hosts in Linux network namespaces: a switch namespace with a bridge, host namespaces wired to it.

Nothing is created in the root namespace: the bridge lives in its own "switch" namespace, and each veth
pair is created there with its other end moved straight into the host's namespace. Unplugging a host
sets its switch port down (the host's end loses carrier, as with a pulled cable); plugging it back sets
the port up. Every name carries a random tag, and the subnet's third octet is random too, so parallel
runs do not collide; `close()` deletes the namespaces, which takes their links with them.

Needs `ip` from iproute2 and CAP_NET_ADMIN (root); `unavailable_reason()` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

IP_TIMEOUT = 10.0
BRIDGE = "br0"
HOST_IFACE = "eth0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args],
        capture_output=True,
        text=True,
        timeout=IP_TIMEOUT,
        check=check,
        stdin=subprocess.DEVNULL,
    )


class NetnsError(RuntimeError):
    """An `ip` command failed while building or changing the lab."""


def _run_ip(*args: str) -> None:
    result = _ip(*args, check=False)
    if result.returncode != 0:
        raise NetnsError(f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can (probed by creating one)."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.name != "posix" or not os.path.isdir("/proc/self/ns") or not os.path.exists("/proc/self/ns/net"):
        return "this system has no Linux network namespaces"
    probe = f"sh-probe-{secrets.token_hex(4)}"
    try:
        result = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns add` could not run: {e}"
    if result.returncode != 0:
        euid = os.geteuid()
        who = "root" if euid == 0 else f"uid {euid}, not root"
        return f"`ip netns add` failed as {who}: {result.stderr.strip() or result.returncode}"
    try:
        veth = _ip("-n", probe, "link", "add", "pa", "type", "veth", "peer", "name", "pb", check=False)
        bridge = _ip("-n", probe, "link", "add", "pbr", "type", "bridge", check=False)
    finally:
        _ip("netns", "del", probe, check=False)
    for what, res in (("a veth pair", veth), ("a bridge", bridge)):
        if res.returncode != 0:
            return f"cannot create {what} in a namespace: {res.stderr.strip() or res.returncode}"
    return None


@dataclass(frozen=True, slots=True)
class NetnsHost:
    """One test host: its namespace, its address on the lab subnet and its port on the switch."""

    index: int
    namespace: str
    address: str
    switch_port: str

    def exec_prefix(self) -> list[str]:
        """Prefix a command with this to run it inside the host's namespace."""
        return ["ip", "netns", "exec", self.namespace]


class NetnsLab:
    """`count` hosts on one bridged /24, 10.231.<random>.0/24, host i at .(i+1)."""

    def __init__(self, count: int, *, tag: str | None = None) -> None:
        if not 1 <= count <= 200:
            raise ValueError(f"host count must be from 1 to 200, got {count}")
        self.tag = tag or secrets.token_hex(3)
        self.subnet_octet = secrets.randbelow(256)
        self.switch = f"sh-sw-{self.tag}"
        self.hosts = [
            NetnsHost(i, f"sh-n{i}-{self.tag}", f"10.231.{self.subnet_octet}.{i + 1}", f"p{i}")
            for i in range(count)
        ]
        self._created: list[str] = []

    def build(self) -> None:
        """Create the switch, the hosts and their links, all up. On failure, undoes what it made."""
        try:
            self._add_namespace(self.switch)
            _run_ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
            _run_ip("-n", self.switch, "link", "set", BRIDGE, "up")
            for host in self.hosts:
                self._add_namespace(host.namespace)
                _run_ip("-n", host.namespace, "link", "set", "lo", "up")
                _run_ip(
                    "-n", self.switch, "link", "add", host.switch_port, "type", "veth",
                    "peer", "name", HOST_IFACE, "netns", host.namespace,
                )  # fmt: skip
                _run_ip("-n", self.switch, "link", "set", host.switch_port, "master", BRIDGE)
                _run_ip("-n", self.switch, "link", "set", host.switch_port, "up")
                _run_ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", HOST_IFACE)
                _run_ip("-n", host.namespace, "link", "set", HOST_IFACE, "up")
        except BaseException:
            self.close()
            raise

    def _add_namespace(self, name: str) -> None:
        _run_ip("netns", "add", name)
        self._created.append(name)

    def unplug(self, hosts: Sequence[NetnsHost]) -> None:
        """Cut `hosts` off the switch: their ports go down, so nothing reaches or leaves them."""
        for host in hosts:
            _run_ip("-n", self.switch, "link", "set", host.switch_port, "down")

    def plug(self, hosts: Sequence[NetnsHost]) -> None:
        """Reconnect `hosts` cut off by `unplug`."""
        for host in hosts:
            _run_ip("-n", self.switch, "link", "set", host.switch_port, "up")

    def close(self) -> None:
        """Delete every namespace this lab made (their veths and the bridge go with them)."""
        for name in reversed(self._created):
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                _ip("netns", "del", name, check=False)
        self._created.clear()
