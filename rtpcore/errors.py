"""Typed errors for rtpcore, in two directions (h11 style).

* :class:`LocalProtocolError`: the caller misused an API (wrong state, bad argument).
* :class:`RemoteProtocolError`: the peer sent something invalid. Parsers raise only this
  subtree. Each subclass carries what to send back on the wire, where the protocol has it:
  ``StunError.error_code`` (RFC 8489 §14.8), ``DtlsAlert.description`` (RFC 5246 §7.2).

A bad datagram is dropped and counted by its session; it never tears a session down unless
the RFC says so.
"""

from __future__ import annotations


class RtpCoreError(Exception):
    """Base of every rtpcore error."""


class LocalProtocolError(RtpCoreError):
    """The local caller did something the protocol or API does not allow."""


class RemoteProtocolError(RtpCoreError):
    """The peer sent something malformed or not allowed."""


class BufferReadError(RemoteProtocolError):
    """Read past the end of a buffer: the input is truncated."""


class BufferWriteError(LocalProtocolError):
    """Write past the capacity of a buffer."""


class SdpParseError(RemoteProtocolError):
    """Malformed SDP (RFC 8866). ``line`` is the 1-based line number when known."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


class OfferAnswerError(RemoteProtocolError):
    """An offer or answer that RFC 3264 does not allow (no common codec, bad m-line count...)."""


class RtpParseError(RemoteProtocolError):
    """Malformed RTP or RTCP packet (RFC 3550)."""


class StunError(RemoteProtocolError):
    """A STUN problem with the RFC 8489 §14.8 error code to answer with (400, 401, 420, 438...)."""

    def __init__(self, message: str, *, error_code: int = 400, unknown_attributes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.unknown_attributes = unknown_attributes


class IceError(RtpCoreError):
    """ICE failed (no valid pair, consent lost, role conflict that cannot be repaired)."""


class TurnError(RemoteProtocolError):
    """A TURN server refused a request; ``error_code`` is the STUN error code it sent."""

    def __init__(self, message: str, *, error_code: int = 0) -> None:
        super().__init__(message)
        self.error_code = error_code


class SrtpError(RemoteProtocolError):
    """An SRTP/SRTCP packet could not be processed."""


class SrtpAuthError(SrtpError):
    """The authentication tag did not verify (RFC 3711 §3.3 step 5)."""


class ReplayError(SrtpError):
    """The packet index was already seen or is older than the replay window (RFC 3711 §3.3.2)."""


class DtlsError(RtpCoreError):
    """Base of DTLS failures. Alerts are :class:`rtpcore.dtls.alerts.DtlsAlert` subclasses."""


class CodecError(RtpCoreError):
    """A codec could not encode or decode."""


class CodecUnavailableError(ImportError, CodecError):
    """A codec needs a native library that is not installed; the message names the package."""


class CodecDecodeError(RemoteProtocolError, CodecError):
    """A payload from the peer could not be decoded (corrupt or truncated codec frame)."""
