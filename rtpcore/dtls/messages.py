"""DTLS 1.2 handshake message bodies and hello extensions (RFC 5246 §7.4, RFC 6347 §4.2, RFC 5764 §4.1.1).

One dataclass per message with ``parse(body)`` / ``serialize()``; ``serialize(parse(b)) == b``
for every captured message (extensions and unknown code points are kept, in order). The
12-octet DTLS handshake header lives in :mod:`.fragment`. Any malformed body raises
:class:`~rtpcore.dtls.alerts.DecodeError` (never ``IndexError``/``struct.error``).

Messages (RFC 5246 §7.4 unless noted)::

    ClientHello         version random session_id cookie(RFC 6347) suites compressions [exts]
    HelloVerifyRequest  server_version cookie                                  (RFC 6347 §4.2.1)
    ServerHello         version random session_id suite compression [exts]
    Certificate         certificate_list<0..2^24-1> of ASN.1Cert<1..2^24-1>
    ServerKeyExchange   ECParameters(named_curve) ECPoint  SignatureAndHash signature (RFC 8422 §5.4)
    CertificateRequest  types<1..> supported_signature_algorithms<2..> authorities<0..>
    ServerHelloDone     (empty)
    ClientKeyExchange   ECPoint<1..2^8-1>                                      (RFC 8422 §5.7)
    CertificateVerify   SignatureAndHash signature<0..2^16-1>
    Finished            verify_data[12]
    NewSessionTicket    lifetime_hint ticket<0..2^16-1>    (RFC 5077 §3.3, parsed and ignored)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..buffer import Buffer
from ..errors import BufferReadError
from .alerts import DecodeError, IllegalParameter, UnexpectedMessage
from .constants import RANDOM_SIZE, ECCurveType, ExtensionType, HandshakeType

# -- helpers -------------------------------------------------------------------------------


@contextmanager
def _decoding(what: str) -> Iterator[None]:
    try:
        yield
    except BufferReadError as exc:
        raise DecodeError(f"truncated {what}: {exc}") from None


def _finish(buf: Buffer, what: str) -> None:
    if not buf.eof():
        raise DecodeError(f"{buf.remaining()} trailing octets after {what}")


def _u16_list(data: bytes, what: str, *, min_items: int = 0) -> tuple[int, ...]:
    if len(data) % 2:
        raise DecodeError(f"{what}: odd length {len(data)}")
    if len(data) < 2 * min_items:
        raise DecodeError(f"{what}: needs at least {min_items} entries")
    return tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))


def _push_u16_list(values: tuple[int, ...] | list[int]) -> bytes:
    return b"".join(v.to_bytes(2, "big") for v in values)


# -- extensions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extension:
    """One hello extension, kept raw so unknown ones survive a round trip."""

    type: int
    data: bytes


def _pull_extensions(buf: Buffer) -> tuple[Extension, ...] | None:
    """The optional extensions block (RFC 5246 §7.4.1.2): ``None`` when absent."""
    if buf.eof():
        return None
    block = Buffer(buf.pull_vector(2))
    out: list[Extension] = []
    seen: set[int] = set()
    while not block.eof():
        ext_type = block.pull_uint16()
        if ext_type in seen:
            raise IllegalParameter(f"duplicate extension {ext_type}")
        seen.add(ext_type)
        out.append(Extension(ext_type, block.pull_vector(2)))
    return tuple(out)


def _push_extensions(buf: Buffer, extensions: tuple[Extension, ...] | None) -> None:
    if extensions is None:
        return
    inner = Buffer()
    for ext in extensions:
        inner.push_uint16(ext.type)
        inner.push_vector(2, ext.data)
    buf.push_vector(2, inner.data)


def find_extension(extensions: tuple[Extension, ...] | None, ext_type: int) -> bytes | None:
    for ext in extensions or ():
        if ext.type == ext_type:
            return ext.data
    return None


@dataclass(frozen=True, slots=True)
class UseSrtp:
    """RFC 5764 §4.1.1 ``UseSRTPData``: profiles<2..2^16-1> and srtp_mki<0..255>."""

    profiles: tuple[int, ...]
    mki: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> UseSrtp:
        buf = Buffer(data)
        with _decoding("use_srtp"):
            profiles = _u16_list(buf.pull_vector(2), "use_srtp profiles", min_items=1)
            mki = buf.pull_vector(1)
        _finish(buf, "use_srtp")
        return cls(profiles, mki)

    def serialize(self) -> bytes:
        buf = Buffer()
        buf.push_vector(2, _push_u16_list(self.profiles))
        buf.push_vector(1, self.mki)
        return buf.data


def parse_u16_vector(data: bytes, what: str, *, min_items: int = 1) -> tuple[int, ...]:
    """supported_groups (RFC 8422 §5.1.1) and signature_algorithms (RFC 5246 §7.4.1.4.1)."""
    buf = Buffer(data)
    with _decoding(what):
        values = _u16_list(buf.pull_vector(2), what, min_items=min_items)
    _finish(buf, what)
    return values


def u16_vector(values: tuple[int, ...] | list[int]) -> bytes:
    buf = Buffer()
    buf.push_vector(2, _push_u16_list(values))
    return buf.data


def parse_u8_vector(data: bytes, what: str, *, min_items: int = 1) -> tuple[int, ...]:
    """ec_point_formats (RFC 8422 §5.1.2), renegotiation_info (RFC 5746 §3.2)."""
    buf = Buffer(data)
    with _decoding(what):
        values = buf.pull_vector(1)
    _finish(buf, what)
    if len(values) < min_items:
        raise DecodeError(f"{what}: needs at least {min_items} entries")
    return tuple(values)


def u8_vector(values: bytes) -> bytes:
    return len(values).to_bytes(1, "big") + values


# -- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientHello:
    client_version: int
    random: bytes
    session_id: bytes
    cookie: bytes
    cipher_suites: tuple[int, ...]
    compression_methods: bytes = b"\x00"
    extensions: tuple[Extension, ...] | None = None
    msg_type = HandshakeType.CLIENT_HELLO

    @classmethod
    def parse(cls, body: bytes) -> ClientHello:
        buf = Buffer(body)
        with _decoding("ClientHello"):
            version = buf.pull_uint16()
            random = buf.pull_bytes(RANDOM_SIZE)
            session_id = buf.pull_vector(1)
            cookie = buf.pull_vector(1)
            suites = _u16_list(buf.pull_vector(2), "cipher_suites", min_items=1)
            compressions = buf.pull_vector(1)
            extensions = _pull_extensions(buf)
        _finish(buf, "ClientHello")
        if len(session_id) > 32:
            raise DecodeError("session_id longer than 32 octets")
        if not compressions:
            raise DecodeError("empty compression_methods")
        return cls(version, random, session_id, cookie, suites, compressions, extensions)

    def serialize(self) -> bytes:
        buf = Buffer()
        buf.push_uint16(self.client_version)
        buf.push_bytes(self.random)
        buf.push_vector(1, self.session_id)
        buf.push_vector(1, self.cookie)
        buf.push_vector(2, _push_u16_list(self.cipher_suites))
        buf.push_vector(1, self.compression_methods)
        _push_extensions(buf, self.extensions)
        return buf.data

    def extension(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)

    @property
    def use_srtp(self) -> UseSrtp | None:
        data = self.extension(ExtensionType.use_srtp)
        return None if data is None else UseSrtp.parse(data)

    @property
    def supported_groups(self) -> tuple[int, ...] | None:
        data = self.extension(ExtensionType.supported_groups)
        return None if data is None else parse_u16_vector(data, "supported_groups")

    @property
    def signature_algorithms(self) -> tuple[int, ...] | None:
        data = self.extension(ExtensionType.signature_algorithms)
        return None if data is None else parse_u16_vector(data, "signature_algorithms")

    @property
    def ec_point_formats(self) -> tuple[int, ...] | None:
        data = self.extension(ExtensionType.ec_point_formats)
        return None if data is None else parse_u8_vector(data, "ec_point_formats")


@dataclass(frozen=True, slots=True)
class HelloVerifyRequest:
    server_version: int
    cookie: bytes
    msg_type = HandshakeType.HELLO_VERIFY_REQUEST

    @classmethod
    def parse(cls, body: bytes) -> HelloVerifyRequest:
        buf = Buffer(body)
        with _decoding("HelloVerifyRequest"):
            version = buf.pull_uint16()
            cookie = buf.pull_vector(1)
        _finish(buf, "HelloVerifyRequest")
        return cls(version, cookie)

    def serialize(self) -> bytes:
        return self.server_version.to_bytes(2, "big") + u8_vector(self.cookie)


@dataclass(frozen=True, slots=True)
class ServerHello:
    server_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int = 0
    extensions: tuple[Extension, ...] | None = None
    msg_type = HandshakeType.SERVER_HELLO

    @classmethod
    def parse(cls, body: bytes) -> ServerHello:
        buf = Buffer(body)
        with _decoding("ServerHello"):
            version = buf.pull_uint16()
            random = buf.pull_bytes(RANDOM_SIZE)
            session_id = buf.pull_vector(1)
            suite = buf.pull_uint16()
            compression = buf.pull_uint8()
            extensions = _pull_extensions(buf)
        _finish(buf, "ServerHello")
        if len(session_id) > 32:
            raise DecodeError("session_id longer than 32 octets")
        return cls(version, random, session_id, suite, compression, extensions)

    def serialize(self) -> bytes:
        buf = Buffer()
        buf.push_uint16(self.server_version)
        buf.push_bytes(self.random)
        buf.push_vector(1, self.session_id)
        buf.push_uint16(self.cipher_suite)
        buf.push_uint8(self.compression_method)
        _push_extensions(buf, self.extensions)
        return buf.data

    def extension(self, ext_type: int) -> bytes | None:
        return find_extension(self.extensions, ext_type)

    @property
    def use_srtp(self) -> UseSrtp | None:
        data = self.extension(ExtensionType.use_srtp)
        return None if data is None else UseSrtp.parse(data)


@dataclass(frozen=True, slots=True)
class Certificate:
    certificates: tuple[bytes, ...]
    msg_type = HandshakeType.CERTIFICATE

    @classmethod
    def parse(cls, body: bytes) -> Certificate:
        buf = Buffer(body)
        certs: list[bytes] = []
        with _decoding("Certificate"):
            chain = Buffer(buf.pull_vector(3))
            while not chain.eof():
                cert = chain.pull_vector(3)
                if not cert:
                    raise DecodeError("empty ASN.1Cert")
                certs.append(cert)
        _finish(buf, "Certificate")
        return cls(tuple(certs))

    def serialize(self) -> bytes:
        inner = Buffer()
        for cert in self.certificates:
            inner.push_vector(3, cert)
        buf = Buffer()
        buf.push_vector(3, inner.data)
        return buf.data


@dataclass(frozen=True, slots=True)
class ServerKeyExchange:
    """ECDHE ServerKeyExchange (RFC 8422 §5.4) with a TLS 1.2 signature."""

    named_group: int
    public_key: bytes
    signature_scheme: int
    signature: bytes
    msg_type = HandshakeType.SERVER_KEY_EXCHANGE

    @classmethod
    def parse(cls, body: bytes) -> ServerKeyExchange:
        buf = Buffer(body)
        with _decoding("ServerKeyExchange"):
            curve_type = buf.pull_uint8()
            if curve_type != ECCurveType.named_curve:
                raise IllegalParameter(f"ECCurveType {curve_type} (only named_curve is allowed)")
            group = buf.pull_uint16()
            point = buf.pull_vector(1)
            scheme = buf.pull_uint16()
            signature = buf.pull_vector(2)
        _finish(buf, "ServerKeyExchange")
        if not point:
            raise DecodeError("empty ECPoint")
        return cls(group, point, scheme, signature)

    def params(self) -> bytes:
        """ServerECDHParams: the part covered by the signature (with both randoms)."""
        return bytes((ECCurveType.named_curve,)) + self.named_group.to_bytes(2, "big") + u8_vector(self.public_key)

    def serialize(self) -> bytes:
        buf = Buffer()
        buf.push_bytes(self.params())
        buf.push_uint16(self.signature_scheme)
        buf.push_vector(2, self.signature)
        return buf.data


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    certificate_types: bytes
    signature_algorithms: tuple[int, ...]
    certificate_authorities: tuple[bytes, ...] = ()
    msg_type = HandshakeType.CERTIFICATE_REQUEST

    @classmethod
    def parse(cls, body: bytes) -> CertificateRequest:
        buf = Buffer(body)
        cas: list[bytes] = []
        with _decoding("CertificateRequest"):
            types = buf.pull_vector(1)
            algs = _u16_list(buf.pull_vector(2), "supported_signature_algorithms", min_items=1)
            names = Buffer(buf.pull_vector(2))
            while not names.eof():
                cas.append(names.pull_vector(2))
        _finish(buf, "CertificateRequest")
        if not types:
            raise DecodeError("empty certificate_types")
        return cls(types, algs, tuple(cas))

    def serialize(self) -> bytes:
        buf = Buffer()
        buf.push_vector(1, self.certificate_types)
        buf.push_vector(2, _push_u16_list(self.signature_algorithms))
        inner = Buffer()
        for dn in self.certificate_authorities:
            inner.push_vector(2, dn)
        buf.push_vector(2, inner.data)
        return buf.data


@dataclass(frozen=True, slots=True)
class ServerHelloDone:
    msg_type = HandshakeType.SERVER_HELLO_DONE

    @classmethod
    def parse(cls, body: bytes) -> ServerHelloDone:
        if body:
            raise DecodeError("ServerHelloDone with a body")
        return cls()

    def serialize(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class HelloRequest:
    msg_type = HandshakeType.HELLO_REQUEST

    @classmethod
    def parse(cls, body: bytes) -> HelloRequest:
        if body:
            raise DecodeError("HelloRequest with a body")
        return cls()

    def serialize(self) -> bytes:
        return b""


@dataclass(frozen=True, slots=True)
class ClientKeyExchange:
    """ECDHE ClientKeyExchange: the client's ephemeral public point (RFC 8422 §5.7)."""

    public_key: bytes
    msg_type = HandshakeType.CLIENT_KEY_EXCHANGE

    @classmethod
    def parse(cls, body: bytes) -> ClientKeyExchange:
        buf = Buffer(body)
        with _decoding("ClientKeyExchange"):
            point = buf.pull_vector(1)
        _finish(buf, "ClientKeyExchange")
        if not point:
            raise DecodeError("empty ECPoint")
        return cls(point)

    def serialize(self) -> bytes:
        return u8_vector(self.public_key)


@dataclass(frozen=True, slots=True)
class CertificateVerify:
    signature_scheme: int
    signature: bytes
    msg_type = HandshakeType.CERTIFICATE_VERIFY

    @classmethod
    def parse(cls, body: bytes) -> CertificateVerify:
        buf = Buffer(body)
        with _decoding("CertificateVerify"):
            scheme = buf.pull_uint16()
            signature = buf.pull_vector(2)
        _finish(buf, "CertificateVerify")
        return cls(scheme, signature)

    def serialize(self) -> bytes:
        buf = Buffer()
        buf.push_uint16(self.signature_scheme)
        buf.push_vector(2, self.signature)
        return buf.data


@dataclass(frozen=True, slots=True)
class Finished:
    verify_data: bytes = field(repr=False)
    msg_type = HandshakeType.FINISHED

    @classmethod
    def parse(cls, body: bytes) -> Finished:
        return cls(body)

    def serialize(self) -> bytes:
        return self.verify_data


@dataclass(frozen=True, slots=True)
class NewSessionTicket:
    """RFC 5077 §3.3. We never offer session_ticket; a peer that sends one anyway is ignored."""

    lifetime_hint: int
    ticket: bytes = field(repr=False)
    msg_type = HandshakeType.NEW_SESSION_TICKET

    @classmethod
    def parse(cls, body: bytes) -> NewSessionTicket:
        buf = Buffer(body)
        with _decoding("NewSessionTicket"):
            hint = buf.pull_uint32()
            ticket = buf.pull_vector(2)
        _finish(buf, "NewSessionTicket")
        return cls(hint, ticket)

    def serialize(self) -> bytes:
        buf = Buffer()
        buf.push_uint32(self.lifetime_hint)
        buf.push_vector(2, self.ticket)
        return buf.data


HandshakeMessage = (
    ClientHello | HelloVerifyRequest | ServerHello | Certificate | ServerKeyExchange | CertificateRequest
    | ServerHelloDone | HelloRequest | ClientKeyExchange | CertificateVerify | Finished | NewSessionTicket
)

_PARSERS: dict[int, Callable[[bytes], HandshakeMessage]] = {
    HandshakeType.HELLO_REQUEST: HelloRequest.parse,
    HandshakeType.CLIENT_HELLO: ClientHello.parse,
    HandshakeType.SERVER_HELLO: ServerHello.parse,
    HandshakeType.HELLO_VERIFY_REQUEST: HelloVerifyRequest.parse,
    HandshakeType.NEW_SESSION_TICKET: NewSessionTicket.parse,
    HandshakeType.CERTIFICATE: Certificate.parse,
    HandshakeType.SERVER_KEY_EXCHANGE: ServerKeyExchange.parse,
    HandshakeType.CERTIFICATE_REQUEST: CertificateRequest.parse,
    HandshakeType.SERVER_HELLO_DONE: ServerHelloDone.parse,
    HandshakeType.CERTIFICATE_VERIFY: CertificateVerify.parse,
    HandshakeType.CLIENT_KEY_EXCHANGE: ClientKeyExchange.parse,
    HandshakeType.FINISHED: Finished.parse,
}


def parse_handshake_body(msg_type: int, body: bytes) -> HandshakeMessage:
    """Decode a reassembled handshake body by its type; unknown types are ``unexpected_message``."""
    parser = _PARSERS.get(msg_type)
    if parser is None:
        raise UnexpectedMessage(f"unknown handshake message type {msg_type}")
    return parser(body)
