"""Typed SIP errors in two directions (h11 style).

* :class:`LocalProtocolError`: the local caller misused the API (wrong state, bad argument).
* :class:`RemoteProtocolError`: the peer sent something invalid. Parsers raise only
  :class:`SipParseError`, which carries ``status_hint``: the response a UAS should send
  (400 Bad Request, 413 Request Entity Too Large, 416 Unsupported URI Scheme, 420 Bad
  Extension, 505 Version Not Supported, 513 Message Too Large, ...; RFC 3261 §21).
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "RemoteProtocolError", "SipError", "SipParseError"]


class SipError(Exception):
    """Base of every sipcore error."""


class LocalProtocolError(SipError):
    """The local caller did something SIP or this API does not allow."""


class RemoteProtocolError(SipError):
    """The peer sent something malformed or not allowed."""


class SipParseError(RemoteProtocolError):
    """A message (or one of its headers) is malformed, or must be rejected by a UAS.

    ``status_hint`` is the status code to answer a request with; ``unsupported`` lists the
    option tags for a 420 response's ``Unsupported`` header; ``header`` names the header that
    failed, when one did.
    """

    def __init__(
        self,
        message: str,
        status_hint: int = 400,
        *,
        header: str | None = None,
        unsupported: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status_hint = status_hint
        self.header = header
        self.unsupported = unsupported

    def __repr__(self) -> str:
        return f"SipParseError({str(self)!r}, status_hint={self.status_hint})"
