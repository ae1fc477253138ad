"""Events a :class:`~rtpcore.dtls.connection.DtlsConnection` reports (facts in the past tense).

Key material is excluded from ``repr`` so events can be logged safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .alerts import DtlsAlert, alert_for
from .constants import AlertDescription, AlertLevel, CipherSuite, SrtpProfile


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeCompleted:
    """The handshake finished and the peer certificate matched the SDP fingerprint.

    ``local_*`` protect what we send and ``remote_*`` unprotect what we receive: the RFC 5764
    §4.2 client_write/server_write halves picked by our role. ``None`` when no SRTP profile
    was negotiated (plain DTLS).
    """

    cipher_suite: CipherSuite
    srtp_profile: SrtpProfile | None
    local_key: bytes = field(repr=False)
    local_salt: bytes = field(repr=False)
    remote_key: bytes = field(repr=False)
    remote_salt: bytes = field(repr=False)
    extended_master_secret: bool
    peer_fingerprint: str
    peer_certificate: bytes = field(repr=False)
    srtp_mki: bytes = b""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationDataReceived:
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertReceived:
    """The peer sent an alert (``description`` is the RFC 5246 §7.2 code)."""

    level: AlertLevel | int
    description: AlertDescription | int

    @property
    def name(self) -> str:
        d = self.description
        return d.name if isinstance(d, AlertDescription) else f"unknown_alert_{d}"

    @property
    def fatal(self) -> bool:
        return self.level == AlertLevel.FATAL

    def as_error(self) -> DtlsAlert:
        """The typed exception for this alert (e.g. :class:`~rtpcore.dtls.alerts.HandshakeFailure`)."""
        return alert_for(int(self.description), "received from peer")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed:
    """The connection ended: close_notify, a fatal alert (sent or received), or a timeout."""

    reason: str
    by_peer: bool
    alert: AlertDescription | int | None = None


# Names used in the original brief.
HandshakeComplete = HandshakeCompleted
ApplicationData = ApplicationDataReceived

DtlsEvent = HandshakeCompleted | ApplicationDataReceived | AlertReceived | ConnectionClosed
