"""Typed DTLS errors: one exception class per alert (RFC 5246 §7.2), aioquic style.

Every :class:`DtlsAlert` carries ``description`` (the :class:`AlertDescription` to send to
the peer) and names the alert in its message, e.g. ``"bad_certificate(42): fingerprint
mismatch"``. Alerts are :class:`~rtpcore.errors.RemoteProtocolError` too: they are what a
peer's bad input turns into. Two errors are not alerts: :class:`DtlsHandshakeTimeout`
(nothing came back; it names the flight it was stuck in) and :class:`InvalidFingerprint`
(an SDP ``a=fingerprint`` value that cannot be parsed).
"""

from __future__ import annotations

from ..errors import DtlsError, RemoteProtocolError
from .constants import AlertDescription, AlertLevel


class DtlsAlert(DtlsError, RemoteProtocolError):
    """A fatal TLS alert condition. Subclasses fix ``description``."""

    description: AlertDescription = AlertDescription.internal_error
    level: AlertLevel = AlertLevel.FATAL

    def __init__(self, detail: str = "") -> None:
        name = f"{self.description.name}({int(self.description)})"
        super().__init__(f"{name}: {detail}" if detail else name)
        self.detail = detail

    @property
    def alert_name(self) -> str:
        return self.description.name


class CloseNotify(DtlsAlert):
    description = AlertDescription.close_notify
    level = AlertLevel.WARNING


class UnexpectedMessage(DtlsAlert):
    description = AlertDescription.unexpected_message


class BadRecordMac(DtlsAlert):
    description = AlertDescription.bad_record_mac


class DecryptionFailed(DtlsAlert):
    description = AlertDescription.decryption_failed


class RecordOverflow(DtlsAlert):
    description = AlertDescription.record_overflow


class DecompressionFailure(DtlsAlert):
    description = AlertDescription.decompression_failure


class HandshakeFailure(DtlsAlert):
    description = AlertDescription.handshake_failure


class NoCertificate(DtlsAlert):
    description = AlertDescription.no_certificate


class BadCertificate(DtlsAlert):
    description = AlertDescription.bad_certificate


class UnsupportedCertificate(DtlsAlert):
    description = AlertDescription.unsupported_certificate


class CertificateRevoked(DtlsAlert):
    description = AlertDescription.certificate_revoked


class CertificateExpired(DtlsAlert):
    description = AlertDescription.certificate_expired


class CertificateUnknown(DtlsAlert):
    description = AlertDescription.certificate_unknown


class IllegalParameter(DtlsAlert):
    description = AlertDescription.illegal_parameter


class UnknownCa(DtlsAlert):
    description = AlertDescription.unknown_ca


class AccessDenied(DtlsAlert):
    description = AlertDescription.access_denied


class DecodeError(DtlsAlert):
    description = AlertDescription.decode_error


class DecryptError(DtlsAlert):
    description = AlertDescription.decrypt_error


class ExportRestriction(DtlsAlert):
    description = AlertDescription.export_restriction


class ProtocolVersionAlert(DtlsAlert):
    description = AlertDescription.protocol_version


class InsufficientSecurity(DtlsAlert):
    description = AlertDescription.insufficient_security


class InternalError(DtlsAlert):
    description = AlertDescription.internal_error


class InappropriateFallback(DtlsAlert):
    description = AlertDescription.inappropriate_fallback


class UserCanceled(DtlsAlert):
    description = AlertDescription.user_canceled
    level = AlertLevel.WARNING


class NoRenegotiation(DtlsAlert):
    description = AlertDescription.no_renegotiation
    level = AlertLevel.WARNING


class UnsupportedExtension(DtlsAlert):
    description = AlertDescription.unsupported_extension


class CertificateUnobtainable(DtlsAlert):
    description = AlertDescription.certificate_unobtainable


class UnrecognizedName(DtlsAlert):
    description = AlertDescription.unrecognized_name


class BadCertificateStatusResponse(DtlsAlert):
    description = AlertDescription.bad_certificate_status_response


class BadCertificateHashValue(DtlsAlert):
    description = AlertDescription.bad_certificate_hash_value


class UnknownPskIdentity(DtlsAlert):
    description = AlertDescription.unknown_psk_identity


class NoApplicationProtocol(DtlsAlert):
    description = AlertDescription.no_application_protocol


class FingerprintMismatch(BadCertificate):
    """The peer certificate does not match the SDP ``a=fingerprint`` (RFC 8122 §5)."""

    def __init__(self, *, expected: str, actual: str) -> None:
        super().__init__(f"certificate fingerprint mismatch: SDP says {expected}, peer presented {actual}")
        self.expected = expected
        self.actual = actual


class InvalidFingerprint(DtlsError, RemoteProtocolError):
    """An ``a=fingerprint`` value that is not ``<hash-func> <hex pairs separated by ':'>``."""


class DtlsHandshakeTimeout(DtlsError):
    """The retransmission limit of RFC 6347 §4.2.4 was reached: the peer never answered.

    ``flight`` is the RFC 6347 §4.2.4 flight number we kept sending and ``flight_name``
    says what it held, e.g. ``"flight 3 (ClientHello with cookie)"``.
    """

    def __init__(self, *, flight: int, flight_name: str, retransmissions: int, elapsed: float) -> None:
        super().__init__(
            f"DTLS handshake timed out in flight {flight} ({flight_name}): "
            f"{retransmissions} retransmissions over {elapsed:.1f} s without an answer"
        )
        self.flight = flight
        self.flight_name = flight_name
        self.retransmissions = retransmissions
        self.elapsed = elapsed


ALERT_CLASSES: dict[AlertDescription, type[DtlsAlert]] = {
    cls.description: cls
    for cls in (
        CloseNotify, UnexpectedMessage, BadRecordMac, DecryptionFailed, RecordOverflow,
        DecompressionFailure, HandshakeFailure, NoCertificate, BadCertificate,
        UnsupportedCertificate, CertificateRevoked, CertificateExpired, CertificateUnknown,
        IllegalParameter, UnknownCa, AccessDenied, DecodeError, DecryptError, ExportRestriction,
        ProtocolVersionAlert, InsufficientSecurity, InternalError, InappropriateFallback,
        UserCanceled, NoRenegotiation, UnsupportedExtension, CertificateUnobtainable,
        UnrecognizedName, BadCertificateStatusResponse, BadCertificateHashValue,
        UnknownPskIdentity, NoApplicationProtocol,
    )
}


def alert_for(description: int, detail: str = "") -> DtlsAlert:
    """The typed exception for an alert code (unknown codes map to the base class)."""
    try:
        desc = AlertDescription(description)
    except ValueError:
        err = DtlsAlert(f"unknown alert {description}" + (f": {detail}" if detail else ""))
        return err
    return ALERT_CLASSES[desc](detail)
