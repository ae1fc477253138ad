"""Private network namespaces for ICE interop tests (needs root and iproute2).

Why: ICE stacks such as baresip's never use 127.x host candidates, and in the machine's own
namespace the only other address is the machine's interface, which a test must never use.
:class:`PrivateNetns` creates a fresh namespace holding ``lo`` plus a veth pair whose *both*
ends live inside it (``veth0 = 10.77.N.1/24``, ``veth1 = 10.77.N.2/24``). Those two addresses
are the only non-loopback ones; there is no default route and no link to the outside, so
nothing sent in there can leave the machine.

Names are unique per run (``vtice-<pid>-<hex>``) and the namespace is deleted in
:meth:`PrivateNetns.destroy` (also used by ``with``), which first ends the processes still
inside it: only those this namespace holds, each by its PID. Namespaces left behind by a run
that crashed are removed by :func:`remove_stale` (only ours, only when their creator is gone).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Sequence
from types import TracebackType

PREFIX = "vtice-"
IP_TIMEOUT = 10.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=check)


def list_namespaces() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _pids_in(name: str) -> list[int]:
    out = _ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def _delete(name: str, grace: float = 2.0) -> None:
    """End what still runs in the namespace (by PID: TERM, then KILL) and delete it."""
    pids = _pids_in(name)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while pids and time.monotonic() < end:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete ``vtice-<pid>-*`` namespaces whose creating process no longer exists."""
    removed = []
    for name in list_namespaces():
        if not name.startswith(PREFIX):
            continue
        pid_text = name[len(PREFIX):].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            _delete(name)
            removed.append(name)
    return removed


class PrivateNetns:
    """``lo`` + veth0/veth1 (10.77.N.1/24, 10.77.N.2/24), no route out; deleted by :meth:`destroy`."""

    def __init__(self, subnet: int | None = None) -> None:
        self.name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"
        n = subnet if subnet is not None else 1 + secrets.randbelow(254)
        self.addr_a = f"10.77.{n}.1"
        self.addr_b = f"10.77.{n}.2"
        self.created = False

    def create(self) -> PrivateNetns:
        _ip("netns", "add", self.name)
        self.created = True
        try:
            script = (
                "set -e\n"
                "ip link set lo up\n"
                "ip link add veth0 type veth peer name veth1\n"
                "sysctl -qw net.ipv6.conf.veth0.disable_ipv6=1 net.ipv6.conf.veth1.disable_ipv6=1 || true\n"
                f"ip addr add {self.addr_a}/24 dev veth0\n"
                f"ip addr add {self.addr_b}/24 dev veth1\n"
                "ip link set veth0 up\n"
                "ip link set veth1 up\n"
            )
            subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c", script], check=True,
                           capture_output=True, text=True, timeout=IP_TIMEOUT)
            self._check_isolated()
        except BaseException:
            self.destroy()
            raise
        return self

    def _check_isolated(self) -> None:
        """Refuse to run if the namespace could reach anything beyond its own two addresses."""
        routes = subprocess.run(["ip", "netns", "exec", self.name, "ip", "-4", "route", "show"], check=True,
                                capture_output=True, text=True, timeout=IP_TIMEOUT).stdout
        for line in routes.splitlines():
            if line.startswith("default") or " via " in line:
                raise RuntimeError(f"namespace {self.name} has a route out: {line!r}")
        links = subprocess.run(["ip", "netns", "exec", self.name, "ip", "-o", "link", "show"], check=True,
                               capture_output=True, text=True, timeout=IP_TIMEOUT).stdout
        names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines() if ":" in line}
        if names - {"lo", "veth0", "veth1"}:
            raise RuntimeError(f"namespace {self.name} holds unexpected links: {sorted(names)}")

    def argv(self, command: Sequence[str]) -> list[str]:
        """``command`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *command]

    def run(self, command: Sequence[str], timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(command), capture_output=True, text=True, timeout=timeout)

    def destroy(self) -> None:
        if self.created:
            self.created = False
            _delete(self.name)

    def __enter__(self) -> PrivateNetns:
        return self.create()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()
