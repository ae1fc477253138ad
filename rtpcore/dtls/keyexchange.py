"""Ephemeral ECDH for the ECDHE_* suites (RFC 8422 §5.4, §5.7; RFC 7748 for x25519).

A :class:`KeyShare` is one side's ephemeral key for one named group. Points are sent in
the uncompressed form (RFC 8422 §5.1.2); a peer point that is not on the curve, has the
wrong length, or (x25519) yields the all-zero secret raises ``illegal_parameter``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from ..errors import LocalProtocolError
from .alerts import HandshakeFailure, IllegalParameter
from .constants import NamedGroup

_CURVES: dict[NamedGroup, type[ec.EllipticCurve]] = {
    NamedGroup.secp256r1: ec.SECP256R1,
    NamedGroup.secp384r1: ec.SECP384R1,
}


class KeyShare:
    """Ephemeral private key for ``group``; ``public_bytes`` goes on the wire."""

    __slots__ = ("group", "_x25519", "_ec", "public_bytes")

    def __init__(self, group: int) -> None:
        self._x25519: x25519.X25519PrivateKey | None = None
        self._ec: ec.EllipticCurvePrivateKey | None = None
        if group == NamedGroup.x25519:
            self.group = NamedGroup.x25519
            self._x25519 = x25519.X25519PrivateKey.generate()
            self.public_bytes = self._x25519.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        elif group in _CURVES:
            self.group = NamedGroup(group)
            self._ec = ec.generate_private_key(_CURVES[self.group]())
            self.public_bytes = self._ec.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        else:
            raise HandshakeFailure(f"unsupported named group {group}")

    def exchange(self, peer_public: bytes) -> bytes:
        """The ECDH shared secret = the pre-master secret (RFC 8422 §5.10)."""
        try:
            if self._x25519 is not None:
                if len(peer_public) != 32:
                    raise IllegalParameter(f"x25519 public key has {len(peer_public)} octets")
                return self._x25519.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
            if self._ec is None:
                raise LocalProtocolError("internal state: _ec not set (constructor sets one of the two)")
            if not peer_public or peer_public[0] != 0x04:
                raise IllegalParameter("EC point is not in uncompressed form")
            peer = ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[self.group](), peer_public)
            return self._ec.exchange(ec.ECDH(), peer)
        except ValueError as exc:
            raise IllegalParameter(f"bad {self.group.name} public key: {exc}") from None
