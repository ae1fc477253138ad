"""DTLS 1.2 for DTLS-SRTP (RFC 6347, RFC 5246, RFC 5764), sans-IO, on ``cryptography`` primitives.

Typical use (one connection per ICE-selected path; ``role`` follows SDP ``a=setup``)::

    cert, key = generate_certificate(now=wall_clock_seconds)
    offer_fingerprint = fingerprint(cert)                      # "sha-256 AB:CD:..."
    conn = DtlsConnection("client", cert, key, [SrtpProfile.SRTP_AEAD_AES_128_GCM],
                          remote_fingerprint=peer_sdp_fingerprint)
    conn.start(now)
    ...  conn.receive(datagram, now); for d in conn.datagrams_to_send(): sock.send(d)
    ...  for ev in conn.events(): if isinstance(ev, HandshakeCompleted): srtp keys are ev.local_*/remote_*
"""

from __future__ import annotations

from .alerts import (
    BadCertificate,
    DecodeError,
    DecryptError,
    DtlsAlert,
    DtlsHandshakeTimeout,
    FingerprintMismatch,
    HandshakeFailure,
    IllegalParameter,
    InvalidFingerprint,
    UnexpectedMessage,
    alert_for,
)
from .certificate import fingerprint, generate_certificate, parse_fingerprint, verify_fingerprint
from .connection import DtlsConnection, Role, State
from .constants import AlertDescription, AlertLevel, CipherSuite, DtlsTimers, SrtpProfile
from .events import (
    AlertReceived,
    ApplicationData,
    ApplicationDataReceived,
    ConnectionClosed,
    DtlsEvent,
    HandshakeComplete,
    HandshakeCompleted,
)
from .keylog import KeyLogWriter, client_random_line

__all__ = [
    "AlertDescription", "AlertLevel", "AlertReceived", "ApplicationData", "ApplicationDataReceived",
    "BadCertificate", "CipherSuite", "ConnectionClosed", "DecodeError", "DecryptError", "DtlsAlert",
    "DtlsConnection", "DtlsEvent", "DtlsHandshakeTimeout", "DtlsTimers", "FingerprintMismatch",
    "HandshakeComplete", "HandshakeCompleted", "HandshakeFailure", "IllegalParameter", "InvalidFingerprint",
    "KeyLogWriter", "Role", "SrtpProfile", "State", "UnexpectedMessage", "alert_for", "client_random_line",
    "fingerprint", "generate_certificate", "parse_fingerprint", "verify_fingerprint",
]
