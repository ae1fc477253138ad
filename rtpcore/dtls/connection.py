"""Sans-IO DTLS 1.2 endpoint for DTLS-SRTP (RFC 6347, RFC 5246, RFC 5764, RFC 7627, RFC 8422).

Feed datagrams with :meth:`DtlsConnection.receive`, send what
:meth:`~DtlsConnection.datagrams_to_send` returns, call
:meth:`~DtlsConnection.handle_timeout` at :meth:`~DtlsConnection.next_deadline`, and drain
:meth:`~DtlsConnection.events`. No clock, socket or global randomness is touched.

Flights (RFC 6347 §4.2.4) of a full handshake with cookie exchange and mutual authentication::

    client                                               server
    1  ClientHello                      ────▶
                                        ◀────  HelloVerifyRequest     2 (stateless, no timer)
    3  ClientHello (cookie)             ────▶
                                        ◀────  ServerHello, Certificate,
                                               ServerKeyExchange,
                                               CertificateRequest,
                                               ServerHelloDone        4
    5  Certificate, ClientKeyExchange,
       CertificateVerify, [CCS], Finished ────▶
                                        ◀────  [CCS], Finished        6 (resent when flight 5 repeats)

States (one enum for both roles)::

    client: START ─▶ WAIT_SERVER_HELLO ─▶ WAIT_CERTIFICATE ─▶ WAIT_SERVER_KEY_EXCHANGE
            ─▶ WAIT_SERVER_HELLO_DONE ─▶ WAIT_FINISHED ─▶ CONNECTED ─▶ CLOSED
    server: WAIT_CLIENT_HELLO ─▶ WAIT_CLIENT_CERTIFICATE ─▶ WAIT_CLIENT_KEY_EXCHANGE
            ─▶ WAIT_CERTIFICATE_VERIFY ─▶ WAIT_FINISHED ─▶ CONNECTED ─▶ CLOSED
    any state ─(fatal alert sent or received, timeout, fingerprint mismatch)─▶ FAILED

Retransmission: a flight that expects an answer arms a timer (``DtlsTimers.initial``, 1 s),
doubled on each expiry up to ``DtlsTimers.maximum`` (60 s); after ``max_retransmissions``
the handshake fails with :class:`DtlsHandshakeTimeout` naming the flight. Each
retransmission uses fresh record sequence numbers. The server answers a repeated final
client flight by resending flight 6 (RFC 6347 §4.2.4, the FINISHED state).

Errors: a fatal problem raises the typed :class:`~rtpcore.dtls.alerts.DtlsAlert` subclass
from ``receive``/``set_remote_fingerprint`` after queueing the alert for the peer (so drain
``datagrams_to_send`` afterwards). Records that fail framing or authentication are dropped
and counted (RFC 6347 §4.1.2.7), never fatal.
"""

from __future__ import annotations

import enum
import hmac
import logging
import os
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..errors import DtlsError, LocalProtocolError
from .alerts import (
    BadCertificate,
    CloseNotify,
    DecryptError,
    DtlsAlert,
    DtlsHandshakeTimeout,
    HandshakeFailure,
    IllegalParameter,
    ProtocolVersionAlert,
    UnexpectedMessage,
    UnsupportedCertificate,
    UnsupportedExtension,
)
from .certificate import (
    PrivateKey,
    certificate_der,
    certificate_public_key,
    choose_signature_scheme,
    fingerprint,
    is_rsa_key,
    load_der_certificate,
    parse_fingerprint,
    sign,
    verify_fingerprint,
    verify_signature,
)
from .constants import (
    DEFAULT_CIPHER_SUITES,
    DEFAULT_SRTP_PROFILES,
    MAX_COOKIE,
    MAX_PLAINTEXT,
    RANDOM_SIZE,
    SUITE_PARAMS,
    SUPPORTED_GROUPS,
    SUPPORTED_SIGNATURE_SCHEMES,
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ClientCertificateType,
    ContentType,
    DtlsTimers,
    DtlsVersion,
    ECPointFormat,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    SrtpProfile,
)
from .events import AlertReceived, ApplicationDataReceived, ConnectionClosed, DtlsEvent, HandshakeCompleted
from .flight import Flight, FlightItem, pack_flight
from .fragment import ReassembledMessage, Reassembler, handshake_header, parse_fragments
from .keyexchange import KeyShare
from .keylog import client_random_line
from .messages import (
    Certificate,
    CertificateRequest,
    CertificateVerify,
    ClientHello,
    ClientKeyExchange,
    Extension,
    Finished,
    HelloVerifyRequest,
    ServerHello,
    ServerHelloDone,
    ServerKeyExchange,
    UseSrtp,
    parse_handshake_body,
    u8_vector,
    u16_vector,
)
from .prf import (
    export_keying_material,
    extended_master_secret,
    finished_verify_data,
    key_expansion,
    master_secret,
    srtp_keying_material,
    transcript_hash,
)
from .record import AeadCipher, EpochReader, EpochWriter, Record, parse_records

Role = Literal["client", "server"]
_LOG = logging.getLogger("rtpcore.dtls")
_LOG.addHandler(logging.NullHandler())  # the application decides where records go
_MIN_MTU = 128


class _PrefixAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every line with the connection's short id (``dtls-c1a2b``)."""

    def process(self, msg: object, kwargs: MutableMapping[str, Any]) -> tuple[object, MutableMapping[str, Any]]:
        return f"[{self.extra['dtls'] if self.extra else '?'}] {msg}", kwargs


class State(enum.Enum):
    START = "START"
    WAIT_SERVER_HELLO = "WAIT_SERVER_HELLO"
    WAIT_CERTIFICATE = "WAIT_CERTIFICATE"
    WAIT_SERVER_KEY_EXCHANGE = "WAIT_SERVER_KEY_EXCHANGE"
    WAIT_SERVER_HELLO_DONE = "WAIT_SERVER_HELLO_DONE"
    WAIT_CLIENT_HELLO = "WAIT_CLIENT_HELLO"
    WAIT_CLIENT_CERTIFICATE = "WAIT_CLIENT_CERTIFICATE"
    WAIT_CLIENT_KEY_EXCHANGE = "WAIT_CLIENT_KEY_EXCHANGE"
    WAIT_CERTIFICATE_VERIFY = "WAIT_CERTIFICATE_VERIFY"
    WAIT_FINISHED = "WAIT_FINISHED"
    CONNECTED = "CONNECTED"
    CLOSED = "CLOSED"
    FAILED = "FAILED"


class DtlsConnection:
    """One DTLS 1.2 association with one peer; ``role`` follows SDP ``a=setup`` (RFC 5763 §5)."""

    def __init__(
        self,
        role: Role,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        srtp_profiles: Sequence[SrtpProfile | int] = DEFAULT_SRTP_PROFILES,
        remote_fingerprint: str | Sequence[str] | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        mtu: int = 1200,
        *,
        timers: DtlsTimers | None = None,
        cipher_suites: Sequence[CipherSuite] = DEFAULT_CIPHER_SUITES,
        require_client_certificate: bool = True,
        cookie_exchange: bool = True,
        keylog: Callable[[str], None] | None = None,
    ) -> None:
        if role not in ("client", "server"):
            raise LocalProtocolError(f"role must be 'client' or 'server', not {role!r}")
        if mtu < _MIN_MTU:
            raise LocalProtocolError(f"mtu {mtu} is below the minimum of {_MIN_MTU}")
        own_pub = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_pub = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if own_pub != key_pub:
            raise LocalProtocolError("private_key does not belong to certificate")
        try:
            self._srtp_profiles = tuple(SrtpProfile(p) for p in srtp_profiles)
        except ValueError as exc:
            raise LocalProtocolError(f"unsupported SRTP profile: {exc}") from None
        unknown = [s for s in cipher_suites if s not in SUITE_PARAMS]
        if unknown or not cipher_suites:
            raise LocalProtocolError(f"unsupported cipher suites {unknown}")
        self.role: Role = role
        self.is_client = role == "client"
        self.mtu = mtu
        self._certificate_der = certificate_der(certificate)
        self._key = private_key
        self._rng = rng
        self._timers = timers or DtlsTimers()
        self._suites = tuple(cipher_suites)
        self._require_client_cert = require_client_certificate
        self._cookie_exchange = cookie_exchange
        self._keylog = keylog
        self._log = _PrefixAdapter(_LOG, {"dtls": f"dtls-{role[0]}{id(self) & 0xFFFF:04x}"})
        self._remote_fingerprints: list[str] | None = None
        if remote_fingerprint is not None:
            self._remote_fingerprints = self._check_fingerprints(remote_fingerprint)

        self.state = State.START if self.is_client else State.WAIT_CLIENT_HELLO
        self.dropped_records = 0
        self._out: list[bytes] = []
        self._events: list[DtlsEvent] = []
        # record layer
        self._writers: dict[int, EpochWriter] = {0: EpochWriter(0, None)}
        self._write_epoch = 0
        self._readers: dict[int, EpochReader] = {0: EpochReader(0, None)}
        self._pending_reader: EpochReader | None = None
        self._ccs_received = False
        self._early_records: list[Record] = []
        self._record_version = DtlsVersion.DTLS_1_0 if self.is_client else DtlsVersion.DTLS_1_2
        # handshake layer
        self._reasm = Reassembler(
            max_message=self._timers.max_handshake_message, max_ahead=self._timers.max_messages_ahead
        )
        self._send_seq = 0
        self._transcript = bytearray()
        self._cookie_secret = rng(32)
        self._client_random = b""
        self._server_random = b""
        self._cookie = b""
        self._suite: CipherSuite | None = None
        self._srtp_profile: SrtpProfile | None = None
        self._srtp_mki = b""
        self._ems = False
        self._key_share: KeyShare | None = None
        self._ske_scheme = SUPPORTED_SIGNATURE_SCHEMES[0]
        self._secure_reneg = False
        self._pre_master = b""
        self._master = b""
        self._peer_cert_der: bytes | None = None
        self._peer_public_key: object = None
        self._cert_request: CertificateRequest | None = None
        self._client_cert_sent = False
        self._completed: HandshakeCompleted | None = None
        self._fingerprint_verified = False
        self._held_app_data: list[bytes] = []
        # retransmission
        self._flight: Flight | None = None
        self._final_flight: Flight | None = None
        self._deadline: float | None = None
        self._timeout = self._timers.initial
        self._retransmissions = 0
        self._flight_started = 0.0
        self._peer_retransmitted = False
        self._last_resend = float("-inf")

    # ------------------------------------------------------------------ public API
    def start(self, now: float) -> None:
        """Client: send the first ClientHello. Server: nothing to do (it waits for one)."""
        if not self.is_client:
            return
        if self.state is not State.START:
            raise LocalProtocolError(f"start() in state {self.state.name}")
        self._client_random = self._rng(RANDOM_SIZE)
        self._send_client_hello(now)

    def receive(self, data: bytes, now: float) -> None:
        """Process one UDP payload (one or more DTLS records)."""
        if self.state in (State.CLOSED, State.FAILED, State.START):
            return
        try:
            records = parse_records(data)
        except DtlsError:
            self.dropped_records += 1
            return
        self._peer_retransmitted = False
        try:
            for record in records:
                self._handle_record(record, now)
                if self.state in (State.CLOSED, State.FAILED):
                    return
        except DtlsAlert as exc:
            self._fail(exc)
            raise
        if self._peer_retransmitted:
            self._answer_peer_retransmission(now)

    def _answer_peer_retransmission(self, now: float) -> None:
        """RFC 6347 §4.2.4: the peer repeating its previous flight means ours was lost; resend it
        at once (rate-limited to one resend per half initial timeout, so duplicates cannot storm)."""
        if self.state is State.CONNECTED and self._final_flight is not None:
            flight = self._final_flight
        elif self._flight is not None and self.state is not State.CONNECTED:
            flight = self._flight
        else:
            return
        if now - self._last_resend < self._timers.initial / 2:
            return
        self._last_resend = now
        self._log.debug("peer repeated its flight: resending flight %d", flight.number)
        self._out.extend(self._encode_flight(flight))

    def datagrams_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def events(self) -> list[DtlsEvent]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        return self._deadline

    def handle_timeout(self, now: float) -> None:
        """Retransmit the current flight when its timer expired (RFC 6347 §4.2.4.1)."""
        if self._deadline is None or now < self._deadline or self._flight is None:
            return
        if self._retransmissions >= self._timers.max_retransmissions:
            flight = self._flight
            err = DtlsHandshakeTimeout(
                flight=flight.number, flight_name=flight.name, retransmissions=self._retransmissions,
                elapsed=now - self._flight_started,
            )
            self._set_state(State.FAILED)
            self._stop_timer()
            self._events.append(ConnectionClosed(reason=str(err), by_peer=False))
            raise err
        self._retransmissions += 1
        self._timeout = min(self._timeout * 2, self._timers.maximum)
        self._log.debug("timer expired: retransmission %d of flight %d", self._retransmissions, self._flight.number)
        self._out.extend(self._encode_flight(self._flight))
        self._last_resend = now
        self._deadline = now + self._timeout

    def set_remote_fingerprint(self, value: str | Sequence[str]) -> None:
        """Give the SDP fingerprint(s) now (e.g. the answer came after the handshake).

        Verifies at once if the peer certificate is known; a mismatch sends
        ``bad_certificate`` and raises :class:`~rtpcore.dtls.alerts.FingerprintMismatch`.
        """
        self._remote_fingerprints = self._check_fingerprints(value)
        if self._peer_cert_der is None or self.state is State.FAILED:
            return
        try:
            self._verify_peer_fingerprint()
        except DtlsAlert as exc:
            self._fail(exc)
            raise
        if self.state is State.CONNECTED:
            self._emit_completed()

    def send(self, data: bytes) -> None:
        """Send application data (epoch 1) once the handshake completed and was verified."""
        if self.state is not State.CONNECTED or self._completed is None:
            raise LocalProtocolError(f"cannot send application data in state {self.state.name}")
        if len(data) > MAX_PLAINTEXT:
            raise LocalProtocolError(f"application data of {len(data)} octets exceeds {MAX_PLAINTEXT}")
        self._out.append(self._writers[self._write_epoch].encode(ContentType.APPLICATION_DATA, DtlsVersion.DTLS_1_2, data))

    def close(self) -> None:
        """Send close_notify and stop (RFC 5246 §7.2.1)."""
        if self.state in (State.CLOSED, State.FAILED):
            return
        if self.state is not State.START:
            self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
        self._set_state(State.CLOSED)
        self._stop_timer()
        self._events.append(ConnectionClosed(reason="closed locally", by_peer=False, alert=AlertDescription.close_notify))

    def export_keying_material(self, label: bytes, length: int, context: bytes | None = None) -> bytes:
        """RFC 5705 exporter on the established session."""
        if not self._master or self._suite is None or self.state is not State.CONNECTED:
            raise LocalProtocolError("keying material is only available once connected")
        return export_keying_material(
            self._master, label, self._client_random, self._server_random, length,
            context=context, hash_type=SUITE_PARAMS[self._suite].prf_hash,
        )

    @property
    def handshake_result(self) -> HandshakeCompleted | None:
        """The :class:`HandshakeCompleted` event once emitted (for callers that missed it)."""
        return self._completed

    @property
    def local_fingerprint(self) -> str:
        return fingerprint(self._certificate_der)

    @property
    def peer_certificate(self) -> bytes | None:
        return self._peer_cert_der

    # ------------------------------------------------------------------ record layer
    def _handle_record(self, record: Record, now: float) -> None:
        reader = self._readers.get(record.epoch)
        if reader is None:
            if record.epoch == max(self._readers) + 1 and len(self._early_records) < self._timers.max_buffered_records:
                self._early_records.append(record)  # next epoch before its CCS (reordering)
            else:
                self.dropped_records += 1
            return
        try:
            plaintext = reader.open(record)
        except DtlsError:
            self.dropped_records += 1
            return
        if plaintext is None or len(plaintext) > MAX_PLAINTEXT:
            self.dropped_records += 1
            return
        ctype = record.content_type
        if ctype == ContentType.HANDSHAKE:
            self._handle_handshake_record(record, plaintext, now)
        elif ctype == ContentType.CHANGE_CIPHER_SPEC:
            if plaintext != b"\x01" or record.epoch != 0:
                self.dropped_records += 1
                return
            self._ccs_received = True
            self._maybe_activate_read_epoch(now)
        elif ctype == ContentType.ALERT:
            self._handle_alert(record, plaintext)
        elif ctype == ContentType.APPLICATION_DATA and record.epoch > 0:
            self._handle_application_data(plaintext)
        else:
            self.dropped_records += 1

    def _maybe_activate_read_epoch(self, now: float) -> None:
        if not self._ccs_received or self._pending_reader is None:
            return
        reader, self._pending_reader = self._pending_reader, None
        self._ccs_received = False
        self._readers[reader.epoch] = reader
        early, self._early_records = self._early_records, []
        for record in early:
            self._handle_record(record, now)

    def _handle_alert(self, record: Record, plaintext: bytes) -> None:
        if len(plaintext) != 2:
            self.dropped_records += 1
            return
        if record.epoch == 0 and self.state is State.CONNECTED:
            self.dropped_records += 1  # unauthenticated alert after the handshake: ignore
            return
        level, desc_code = plaintext[0], plaintext[1]
        try:
            desc: AlertDescription | int = AlertDescription(desc_code)
        except ValueError:
            desc = desc_code
        try:
            lvl: AlertLevel | int = AlertLevel(level)
        except ValueError:
            lvl = level
        self._events.append(AlertReceived(level=lvl, description=desc))
        name = desc.name if isinstance(desc, AlertDescription) else str(desc)
        if desc == AlertDescription.close_notify:
            self._log.info("peer sent close_notify")
            if self.state is State.CONNECTED:
                self._send_alert(AlertLevel.WARNING, AlertDescription.close_notify)
            self._set_state(State.CLOSED)
        elif level == AlertLevel.FATAL:
            self._log.warning("peer sent fatal alert %s", name)
            self._set_state(State.FAILED)
        else:
            return
        self._stop_timer()
        self._events.append(ConnectionClosed(reason=f"peer sent {name}", by_peer=True, alert=desc))

    def _handle_application_data(self, data: bytes) -> None:
        if self.state is not State.CONNECTED:
            self.dropped_records += 1
        elif self._completed is not None:
            self._events.append(ApplicationDataReceived(data=data))
        elif len(self._held_app_data) < self._timers.max_buffered_records:
            self._held_app_data.append(data)  # until the fingerprint is verified
        else:
            self.dropped_records += 1

    def _handle_handshake_record(self, record: Record, plaintext: bytes, now: float) -> None:
        try:
            fragments = parse_fragments(plaintext)
        except DtlsError:
            self.dropped_records += 1
            return
        for frag in fragments:
            if self.state is State.WAIT_CLIENT_HELLO:
                if frag.msg_type != HandshakeType.CLIENT_HELLO or record.epoch != 0:
                    continue
                if frag.message_seq != self._reasm.next_seq:
                    self._reasm.reset(frag.message_seq)  # stateless until the cookie checks out
            if not self._reasm.add(frag, record.epoch):
                self._peer_retransmitted = True
        while self.state not in (State.CONNECTED, State.CLOSED, State.FAILED):
            msg = self._reasm.pop()
            if msg is None:
                break
            self._handle_message(msg, record, now)

    # ------------------------------------------------------------------ handshake dispatch
    def _handle_message(self, msg: ReassembledMessage, record: Record, now: float) -> None:
        parsed = parse_handshake_body(msg.msg_type, msg.body)
        st = self.state
        if msg.msg_type == HandshakeType.HELLO_REQUEST:
            return  # renegotiation is not supported; HelloRequest is not hashed (RFC 5246 §7.4.1.1)
        if isinstance(parsed, Finished):
            if st is not State.WAIT_FINISHED or msg.epoch == 0:
                raise UnexpectedMessage(f"Finished in state {st.name} (epoch {msg.epoch})")
            self._on_finished(parsed, msg, now)
            return
        if self.is_client:
            if st is State.WAIT_SERVER_HELLO and isinstance(parsed, HelloVerifyRequest):
                self._on_hello_verify_request(parsed, now)
            elif st is State.WAIT_SERVER_HELLO and isinstance(parsed, ServerHello):
                self._on_server_hello(parsed, msg)
            elif st is State.WAIT_CERTIFICATE and isinstance(parsed, Certificate):
                self._on_peer_certificate(parsed, msg)
                self._set_state(State.WAIT_SERVER_KEY_EXCHANGE)
            elif st is State.WAIT_SERVER_KEY_EXCHANGE and isinstance(parsed, ServerKeyExchange):
                self._on_server_key_exchange(parsed, msg)
            elif st is State.WAIT_SERVER_HELLO_DONE and isinstance(parsed, CertificateRequest):
                self._on_certificate_request(parsed, msg)
            elif st is State.WAIT_SERVER_HELLO_DONE and isinstance(parsed, ServerHelloDone):
                self._add_transcript(msg)
                self._send_client_finished_flight(now)
            elif st is State.WAIT_FINISHED and msg.msg_type == HandshakeType.NEW_SESSION_TICKET:
                self._add_transcript(msg)  # parsed and ignored, but hashed (RFC 5077 §3.3)
            else:
                raise UnexpectedMessage(f"{HandshakeType(msg.msg_type).name} in state {st.name}")
        else:
            if st is State.WAIT_CLIENT_HELLO and isinstance(parsed, ClientHello):
                self._on_client_hello(parsed, msg, record, now)
            elif st is State.WAIT_CLIENT_CERTIFICATE and isinstance(parsed, Certificate):
                if not parsed.certificates:
                    raise HandshakeFailure("client sent no certificate; DTLS-SRTP needs one (RFC 5763 §5)")
                self._on_peer_certificate(parsed, msg)
                self._set_state(State.WAIT_CLIENT_KEY_EXCHANGE)
            elif st is State.WAIT_CLIENT_KEY_EXCHANGE and isinstance(parsed, ClientKeyExchange):
                self._on_client_key_exchange(parsed, msg, now)
            elif st is State.WAIT_CERTIFICATE_VERIFY and isinstance(parsed, CertificateVerify):
                self._on_certificate_verify(parsed, msg)
            else:
                raise UnexpectedMessage(f"{HandshakeType(msg.msg_type).name} in state {st.name}")

    # ------------------------------------------------------------------ client side
    def _client_extensions(self) -> tuple[Extension, ...]:
        exts = [
            Extension(ExtensionType.supported_groups, u16_vector([int(g) for g in SUPPORTED_GROUPS])),
            Extension(ExtensionType.ec_point_formats, u8_vector(bytes((ECPointFormat.uncompressed,)))),
            Extension(ExtensionType.signature_algorithms, u16_vector([int(s) for s in SUPPORTED_SIGNATURE_SCHEMES])),
            Extension(ExtensionType.extended_master_secret, b""),
            Extension(ExtensionType.renegotiation_info, b"\x00"),
        ]
        if self._srtp_profiles:
            exts.append(Extension(ExtensionType.use_srtp, UseSrtp(tuple(int(p) for p in self._srtp_profiles)).serialize()))
        return tuple(exts)

    def _send_client_hello(self, now: float) -> None:
        hello = ClientHello(
            DtlsVersion.DTLS_1_2, self._client_random, b"", self._cookie,
            tuple(int(s) for s in self._suites), b"\x00", self._client_extensions(),
        )
        self._transcript.clear()  # RFC 6347 §4.2.6: the cookie-less hello is not hashed
        item = self._handshake_item(hello.msg_type, hello.serialize(), 0, "ClientHello" + (" with cookie" if self._cookie else ""))
        self._set_state(State.WAIT_SERVER_HELLO)
        self._send_flight(Flight(3 if self._cookie else 1, [item], timer=True), now)

    def _on_hello_verify_request(self, hvr: HelloVerifyRequest, now: float) -> None:
        if not hvr.cookie or len(hvr.cookie) > MAX_COOKIE:
            raise IllegalParameter(f"HelloVerifyRequest cookie of {len(hvr.cookie)} octets")
        if self._cookie:
            raise UnexpectedMessage("second HelloVerifyRequest")
        self._cookie = hvr.cookie
        self._send_client_hello(now)

    def _on_server_hello(self, sh: ServerHello, msg: ReassembledMessage) -> None:
        if sh.server_version != DtlsVersion.DTLS_1_2:
            raise ProtocolVersionAlert(f"server chose version 0x{sh.server_version:04x}")
        if sh.cipher_suite not in self._suites:
            raise IllegalParameter(f"server chose cipher suite 0x{sh.cipher_suite:04x} that we did not offer")
        if sh.compression_method != 0:
            raise IllegalParameter("server chose compression")
        offered = {e.type for e in self._client_extensions()}
        for ext in sh.extensions or ():
            if ext.type not in offered:
                raise UnsupportedExtension(f"server sent extension {ext.type} that we did not offer")
        reneg = sh.extension(ExtensionType.renegotiation_info)
        if reneg is not None and reneg != b"\x00":
            raise HandshakeFailure("non-empty renegotiation_info in an initial handshake (RFC 5746 §3.4)")
        self._srtp_profile = None
        if self._srtp_profiles:
            use_srtp = sh.use_srtp
            if use_srtp is None:
                raise HandshakeFailure("server did not negotiate use_srtp (RFC 5764 §4.1.1)")
            if len(use_srtp.profiles) != 1 or use_srtp.profiles[0] not in self._srtp_profiles:
                raise IllegalParameter(f"server chose SRTP profiles {use_srtp.profiles} that we did not offer")
            if use_srtp.mki:
                raise IllegalParameter("server sent an MKI we did not offer (RFC 5764 §4.1.1)")
            self._srtp_profile = SrtpProfile(use_srtp.profiles[0])
        self._suite = CipherSuite(sh.cipher_suite)
        self._ems = sh.extension(ExtensionType.extended_master_secret) is not None
        self._server_random = sh.random
        self._record_version = DtlsVersion.DTLS_1_2
        self._add_transcript(msg)
        self._set_state(State.WAIT_CERTIFICATE)

    def _on_server_key_exchange(self, ske: ServerKeyExchange, msg: ReassembledMessage) -> None:
        if ske.named_group not in SUPPORTED_GROUPS:
            raise IllegalParameter(f"server chose group {ske.named_group} that we did not offer")
        if ske.signature_scheme not in SUPPORTED_SIGNATURE_SCHEMES:
            raise IllegalParameter(f"server signed with 0x{ske.signature_scheme:04x} that we did not offer")
        signed = self._client_random + self._server_random + ske.params()
        verify_signature(self._peer_public_key, ske.signature_scheme, signed, ske.signature)
        self._key_share = KeyShare(ske.named_group)
        self._pre_master = self._key_share.exchange(ske.public_key)
        self._add_transcript(msg)
        self._set_state(State.WAIT_SERVER_HELLO_DONE)

    def _on_certificate_request(self, req: CertificateRequest, msg: ReassembledMessage) -> None:
        if self._cert_request is not None:
            raise UnexpectedMessage("second CertificateRequest")
        wanted = ClientCertificateType.rsa_sign if is_rsa_key(self._key) else ClientCertificateType.ecdsa_sign
        if wanted not in req.certificate_types:
            raise HandshakeFailure(f"server accepts certificate types {list(req.certificate_types)}, ours is {wanted.name}")
        choose_signature_scheme(self._key, req.signature_algorithms)  # fail early if impossible
        self._cert_request = req
        self._add_transcript(msg)

    def _send_client_finished_flight(self, now: float) -> None:
        if self._key_share is None or self._suite is None:
            raise LocalProtocolError("internal state: _key_share, _suite not set (set by the messages before)")
        items: list[FlightItem] = []
        if self._cert_request is not None:
            cert = Certificate((self._certificate_der,))
            items.append(self._handshake_item(cert.msg_type, cert.serialize(), 0, "Certificate"))
            self._client_cert_sent = True
        cke = ClientKeyExchange(self._key_share.public_bytes)
        items.append(self._handshake_item(cke.msg_type, cke.serialize(), 0, "ClientKeyExchange"))
        self._derive_keys()
        if self._cert_request is not None:
            scheme = choose_signature_scheme(self._key, self._cert_request.signature_algorithms)
            cv = CertificateVerify(scheme, sign(self._key, scheme, bytes(self._transcript)))
            items.append(self._handshake_item(cv.msg_type, cv.serialize(), 0, "CertificateVerify"))
        items.append(FlightItem(ContentType.CHANGE_CIPHER_SPEC, 0, name="ChangeCipherSpec"))
        items.append(self._finished_item(client=True))
        self._set_state(State.WAIT_FINISHED)
        self._send_flight(Flight(5, items, timer=True), now)

    # ------------------------------------------------------------------ server side
    def _cookie_for(self, hello: ClientHello) -> bytes:
        material = (
            hello.client_version.to_bytes(2, "big") + hello.random + u8_vector(hello.session_id)
            + u16_vector(list(hello.cipher_suites)) + u8_vector(hello.compression_methods)
        )
        return hmac.digest(self._cookie_secret, material, "sha256")

    def _on_client_hello(self, hello: ClientHello, msg: ReassembledMessage, record: Record, now: float) -> None:
        if hello.client_version > DtlsVersion.DTLS_1_2:  # DTLS versions count downwards
            raise ProtocolVersionAlert(f"client offers only 0x{hello.client_version:04x}")
        if self._cookie_exchange:
            expected = self._cookie_for(hello)
            if not hmac.compare_digest(hello.cookie, expected):
                self._send_hello_verify_request(expected, msg.message_seq, record.sequence_number)
                self._reasm.reset(msg.message_seq + 1)
                return
        self._negotiate(hello)
        self._transcript.clear()
        self._add_transcript(msg)
        self._client_random = hello.random
        self._server_random = self._rng(RANDOM_SIZE)
        self._send_seq = msg.message_seq  # RFC 6347 §4.2.2: the server's first message follows the hello's seq
        self._send_server_flight(hello, now)

    def _send_hello_verify_request(self, cookie: bytes, message_seq: int, record_seq: int) -> None:
        hvr = HelloVerifyRequest(DtlsVersion.DTLS_1_0, cookie).serialize()
        fragment = handshake_header(HandshakeType.HELLO_VERIFY_REQUEST, len(hvr), message_seq, 0, len(hvr)) + hvr
        writer = self._writers[0]
        # RFC 6347 §4.2.1: the HelloVerifyRequest reuses the ClientHello's record sequence number
        saved = max(writer.next_seq, record_seq + 1)
        writer.next_seq = record_seq
        self._out.append(writer.encode(ContentType.HANDSHAKE, DtlsVersion.DTLS_1_0, fragment))
        writer.next_seq = saved
        self._log.debug("sent HelloVerifyRequest (stateless)")

    def _negotiate(self, hello: ClientHello) -> None:
        rsa = is_rsa_key(self._key)
        suite = next((s for s in self._suites if SUITE_PARAMS[s].signed_by_rsa == rsa and s in hello.cipher_suites), None)
        if suite is None:
            raise HandshakeFailure("no cipher suite in common")
        groups = hello.supported_groups
        if groups is None:
            groups = (NamedGroup.secp256r1,)  # RFC 8422 §4: no extension -> any curve; P-256 is universal
        group = next((g for g in SUPPORTED_GROUPS if g in groups), None)
        if group is None:
            raise HandshakeFailure("no elliptic curve group in common")
        formats = hello.ec_point_formats
        if formats is not None and ECPointFormat.uncompressed not in formats:
            raise IllegalParameter("client does not accept uncompressed points (RFC 8422 §5.1.2)")
        self._srtp_profile = None
        if self._srtp_profiles:
            use_srtp = hello.use_srtp
            if use_srtp is None:
                raise HandshakeFailure("client did not offer use_srtp (RFC 5764 §4.1.1)")
            profile = next((p for p in self._srtp_profiles if p in use_srtp.profiles), None)
            if profile is None:
                raise HandshakeFailure(f"no SRTP profile in common (client offered {list(use_srtp.profiles)})")
            self._srtp_profile = profile
            self._srtp_mki = use_srtp.mki
        self._suite = suite
        self._ems = hello.extension(ExtensionType.extended_master_secret) is not None
        self._key_share = KeyShare(group)
        self._ske_scheme = choose_signature_scheme(self._key, hello.signature_algorithms)
        reneg = hello.extension(ExtensionType.renegotiation_info)
        if reneg is not None and reneg != b"\x00":
            raise HandshakeFailure("non-empty renegotiation_info in an initial handshake (RFC 5746 §3.6)")
        self._secure_reneg = reneg is not None or CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites

    def _send_server_flight(self, hello: ClientHello, now: float) -> None:
        if self._suite is None or self._key_share is None:
            raise LocalProtocolError("internal state: _suite, _key_share not set (set by _negotiate)")
        exts: list[Extension] = []
        if self._secure_reneg:
            exts.append(Extension(ExtensionType.renegotiation_info, b"\x00"))
        if self._ems:
            exts.append(Extension(ExtensionType.extended_master_secret, b""))
        if hello.ec_point_formats is not None:
            exts.append(Extension(ExtensionType.ec_point_formats, u8_vector(bytes((ECPointFormat.uncompressed,)))))
        if self._srtp_profile is not None:
            exts.append(Extension(ExtensionType.use_srtp, UseSrtp((int(self._srtp_profile),), self._srtp_mki).serialize()))
        sh = ServerHello(DtlsVersion.DTLS_1_2, self._server_random, b"", int(self._suite), 0, tuple(exts))
        ske = ServerKeyExchange(self._key_share.group, self._key_share.public_bytes, int(self._ske_scheme), b"")
        signed = self._client_random + self._server_random + ske.params()
        ske = ServerKeyExchange(ske.named_group, ske.public_key, ske.signature_scheme, sign(self._key, self._ske_scheme, signed))
        items = [
            self._handshake_item(sh.msg_type, sh.serialize(), 0, "ServerHello"),
            self._handshake_item(HandshakeType.CERTIFICATE, Certificate((self._certificate_der,)).serialize(), 0, "Certificate"),
            self._handshake_item(ske.msg_type, ske.serialize(), 0, "ServerKeyExchange"),
        ]
        if self._require_client_cert:  # RFC 5763 §5: DTLS-SRTP authenticates both ends
            cert_types = bytes((ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign))
            creq = CertificateRequest(cert_types, tuple(int(s) for s in SUPPORTED_SIGNATURE_SCHEMES))
            items.append(self._handshake_item(creq.msg_type, creq.serialize(), 0, "CertificateRequest"))
        items.append(self._handshake_item(HandshakeType.SERVER_HELLO_DONE, b"", 0, "ServerHelloDone"))
        self._set_state(State.WAIT_CLIENT_CERTIFICATE if self._require_client_cert else State.WAIT_CLIENT_KEY_EXCHANGE)
        self._send_flight(Flight(4, items, timer=True), now)

    def _on_client_key_exchange(self, cke: ClientKeyExchange, msg: ReassembledMessage, now: float) -> None:
        if self._key_share is None:
            raise LocalProtocolError("internal state: _key_share not set (set by _negotiate)")
        self._pre_master = self._key_share.exchange(cke.public_key)
        self._add_transcript(msg)
        self._derive_keys()
        self._set_state(State.WAIT_CERTIFICATE_VERIFY if self._peer_cert_der is not None else State.WAIT_FINISHED)
        self._maybe_activate_read_epoch(now)

    def _on_certificate_verify(self, cv: CertificateVerify, msg: ReassembledMessage) -> None:
        if cv.signature_scheme not in SUPPORTED_SIGNATURE_SCHEMES:
            raise IllegalParameter(f"client signed with 0x{cv.signature_scheme:04x} that we did not request")
        verify_signature(self._peer_public_key, cv.signature_scheme, bytes(self._transcript), cv.signature)
        self._add_transcript(msg)
        self._set_state(State.WAIT_FINISHED)

    # ------------------------------------------------------------------ both sides
    def _on_peer_certificate(self, cert: Certificate, msg: ReassembledMessage) -> None:
        if not cert.certificates:
            raise BadCertificate("empty certificate list")
        leaf = load_der_certificate(cert.certificates[0])
        key = certificate_public_key(leaf)
        if self.is_client and self._suite is not None and SUITE_PARAMS[self._suite].signed_by_rsa != is_rsa_key(key):
            raise UnsupportedCertificate(f"{type(key).__name__} certificate does not fit {self._suite.name}")
        self._peer_cert_der = cert.certificates[0]
        self._peer_public_key = key
        if self._remote_fingerprints is not None:
            self._verify_peer_fingerprint()
        self._add_transcript(msg)

    def _verify_peer_fingerprint(self) -> None:
        if self._peer_cert_der is None or self._remote_fingerprints is None:
            raise LocalProtocolError("internal state: _peer_cert_der, _remote_fingerprints not set")
        verify_fingerprint(self._peer_cert_der, self._remote_fingerprints)
        self._fingerprint_verified = True

    def _derive_keys(self) -> None:
        """Master secret (RFC 7627 when negotiated), key block, and the epoch-1 cipher states."""
        if self._suite is None:
            raise LocalProtocolError("internal state: _suite not set")
        params = SUITE_PARAMS[self._suite]
        if self._ems:
            session_hash = transcript_hash(params.prf_hash, bytes(self._transcript))
            self._master = extended_master_secret(self._pre_master, session_hash, params.prf_hash)
        else:
            self._master = master_secret(self._pre_master, self._client_random, self._server_random, params.prf_hash)
        self._pre_master = b""
        if self._keylog is not None:
            self._keylog(client_random_line(self._client_random, self._master))
        kb = key_expansion(
            self._master, self._client_random, self._server_random,
            key_length=params.key_length, iv_length=params.fixed_iv_length, hash_type=params.prf_hash,
        )
        mine, theirs = (
            (AeadCipher(kb.client_write_key, kb.client_write_iv), AeadCipher(kb.server_write_key, kb.server_write_iv))
            if self.is_client
            else (AeadCipher(kb.server_write_key, kb.server_write_iv), AeadCipher(kb.client_write_key, kb.client_write_iv))
        )
        self._writers[1] = EpochWriter(1, mine)
        self._pending_reader = EpochReader(1, theirs)

    def _finished_item(self, *, client: bool) -> FlightItem:
        if self._suite is None:
            raise LocalProtocolError("internal state: _suite not set")
        hash_type = SUITE_PARAMS[self._suite].prf_hash
        verify = finished_verify_data(
            self._master, client=client, handshake_hash=transcript_hash(hash_type, bytes(self._transcript)),
            hash_type=hash_type,
        )
        return self._handshake_item(HandshakeType.FINISHED, verify, 1, "Finished")

    def _on_finished(self, fin: Finished, msg: ReassembledMessage, now: float) -> None:
        if self._suite is None:
            raise LocalProtocolError("internal state: _suite not set")
        hash_type = SUITE_PARAMS[self._suite].prf_hash
        expected = finished_verify_data(
            self._master, client=not self.is_client,
            handshake_hash=transcript_hash(hash_type, bytes(self._transcript)), hash_type=hash_type,
        )
        if not hmac.compare_digest(fin.verify_data, expected):
            raise DecryptError("Finished verify_data does not match the handshake (RFC 5246 §7.4.9)")
        self._add_transcript(msg)
        if self.is_client:
            self._stop_timer()
        else:
            final = Flight(6, [FlightItem(ContentType.CHANGE_CIPHER_SPEC, 0, name="ChangeCipherSpec"),
                                self._finished_item(client=False)], timer=False)
            self._send_flight(final, now)
            self._final_flight = final
        self._set_state(State.CONNECTED)
        if self._fingerprint_verified or self._peer_cert_der is None:
            self._emit_completed()
        else:
            self._log.info("handshake done; waiting for the remote fingerprint before reporting it")

    def _emit_completed(self) -> None:
        if self._completed is not None or (self._peer_cert_der is not None and not self._fingerprint_verified):
            return
        if self._suite is None:
            raise LocalProtocolError("internal state: _suite not set")
        params = SUITE_PARAMS[self._suite]
        keys: tuple[bytes, bytes, bytes, bytes] = (b"", b"", b"", b"")
        if self._srtp_profile is not None:
            km = srtp_keying_material(self._master, self._client_random, self._server_random,
                                      self._srtp_profile, params.prf_hash)
            keys = km.local_remote(is_client=self.is_client)
        self._completed = HandshakeCompleted(
            cipher_suite=self._suite, srtp_profile=self._srtp_profile,
            local_key=keys[0], local_salt=keys[1], remote_key=keys[2], remote_salt=keys[3],
            extended_master_secret=self._ems,
            peer_fingerprint=fingerprint(self._peer_cert_der) if self._peer_cert_der is not None else "",
            peer_certificate=self._peer_cert_der or b"", srtp_mki=self._srtp_mki,
        )
        self._log.info("handshake completed: %s, %s", self._suite.name,
                       self._srtp_profile.name if self._srtp_profile else "no SRTP")
        self._events.append(self._completed)
        held, self._held_app_data = self._held_app_data, []
        self._events.extend(ApplicationDataReceived(data=d) for d in held)

    # ------------------------------------------------------------------ output
    def _handshake_item(self, msg_type: int, body: bytes, epoch: int, name: str) -> FlightItem:
        seq = self._send_seq
        self._send_seq += 1
        self._transcript += handshake_header(msg_type, len(body), seq, 0, len(body)) + body
        return FlightItem(ContentType.HANDSHAKE, epoch, msg_type, seq, body, name)

    def _add_transcript(self, msg: ReassembledMessage) -> None:
        self._transcript += msg.transcript_bytes()

    def _send_flight(self, flight: Flight, now: float) -> None:
        self._out.extend(self._encode_flight(flight))
        if any(i.epoch == 1 for i in flight.items):
            self._write_epoch = 1
        self._flight = flight if flight.timer else None
        self._retransmissions = 0
        self._timeout = self._timers.initial
        self._flight_started = now
        self._last_resend = now
        self._deadline = now + self._timeout if flight.timer else None
        self._log.debug("sent flight %d: %s", flight.number, flight.name)

    def _encode_flight(self, flight: Flight) -> list[bytes]:
        return pack_flight(flight, self._writers, self._record_version, self.mtu)

    def _send_alert(self, level: AlertLevel, description: AlertDescription) -> None:
        writer = self._writers[self._write_epoch]
        self._out.append(writer.encode(ContentType.ALERT, self._record_version, bytes((level, description))))

    def _fail(self, exc: DtlsAlert) -> None:
        if self.state is State.FAILED:
            return
        self._log.warning("handshake failed in %s: %s", self.state.name, exc)
        if not isinstance(exc, CloseNotify):
            self._send_alert(AlertLevel.FATAL, exc.description)
        self._set_state(State.FAILED)
        self._stop_timer()
        self._events.append(ConnectionClosed(reason=str(exc), by_peer=False, alert=exc.description))

    def _stop_timer(self) -> None:
        self._deadline = None
        self._flight = None

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self._log.debug("%s -> %s", self.state.name, state.name)
            self.state = state

    @staticmethod
    def _check_fingerprints(value: str | Sequence[str]) -> list[str]:
        values = [value] if isinstance(value, str) else list(value)
        for v in values:
            parse_fingerprint(v)
        if not values:
            raise LocalProtocolError("empty fingerprint list")
        return values

