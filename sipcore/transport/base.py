"""Flows and transport errors."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SipError

__all__ = ["RELIABLE", "Flow", "TransportError", "default_port"]

RELIABLE = frozenset({"tcp", "tls", "ws", "wss"})


class TransportError(SipError):
    """Sending failed: connection refused or closed, no route, name not resolvable.

    A transaction treats it as RFC 3261 §8.1.3.1 / §17.1.4 transport error (503 to the TU).
    """


@dataclass(frozen=True, slots=True)
class Flow:
    """Where a message came from / goes to: transport, local and remote (host, port), connection."""

    transport: str
    local: tuple[str, int]
    remote: tuple[str, int]
    conn_id: int = 0

    @property
    def reliable(self) -> bool:
        return self.transport in RELIABLE

    @property
    def via_transport(self) -> str:
        return self.transport.upper()

    def __str__(self) -> str:
        return f"{self.transport}:{self.remote[0]}:{self.remote[1]}"


def default_port(transport: str) -> int:
    return {"tls": 5061, "wss": 443, "ws": 80}.get(transport, 5060)
