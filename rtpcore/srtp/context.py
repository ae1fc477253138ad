"""SRTP and SRTCP packet protection with per-SSRC state (RFC 3711, RFC 6188, RFC 7714).

:class:`SrtpSession` holds one master key and salt, derives the session keys once (again every
``kdr`` packets when a key derivation rate is set) and keeps, per SSRC and per direction, the
packet index state that the transforms need:

* **SRTP index** (RFC 3711 §3.3.1, Appendix A): the 48-bit index ``i = 2^16 * ROC + SEQ``. The
  rollover counter is never sent; the receiver guesses it from the highest index seen (``ROC``
  and ``s_l``) and the 16-bit sequence number, trying ROC-1, ROC and ROC+1.
* **SRTCP index** (§3.4): a 31-bit counter the sender puts in the packet with the E flag.
* **Replay list** (§3.3.2): a sliding window of ``replay_window`` indexes (64 by default, the
  RFC minimum; video receivers use more). Indexes already seen or older than the window raise
  :class:`~rtpcore.errors.ReplayError`.

Per-SSRC receiver stream::

                  first packet that authenticates
    (no state) ───────────────────────────────────▶ TRACKING (highest index, window bits)
                                                         │
        each packet: guess index (App. A) ─▶ window check ─▶ verify tag ─▶ decrypt
                          │                      │               │
                 index < 0 or ≥ 2^48      ReplayError      SrtpAuthError
                    (ReplayError)      (state unchanged)  (state unchanged)
                                                         │ success
                                                         ▼
                                   highest = max(highest, index); mark index in window

State changes only after the tag verifies (§3.3 step 5), so forged packets cannot move the ROC
or the window. The sender side keeps the same structure so that protecting the same index twice
(two-time pad) is refused unless ``allow_repeat_tx`` is set, as libsrtp does.

Transforms:

* AES-CM + HMAC-SHA1 (RFC 3711 §4.1.1, §4.2.1; RFC 6188 for 192/256-bit keys). Keystream IV
  ``(k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16)``; the authenticated portion is the header and
  the encrypted payload, followed by the ROC for SRTP and by ``E || SRTCP index`` for SRTCP.
  The keystream is produced by running one long-lived AES-ECB encryptor over the counter blocks
  ``IV, IV+1, ...``, which is AES counter mode by definition (§4.1.1) and avoids building a
  cipher context per packet. HMAC-SHA1 uses precomputed inner and outer SHA-1 states (RFC 2104),
  so a packet costs two ``copy()`` calls instead of a key schedule.
* AES-GCM (RFC 7714 §8, §9). IV ``(0x0000 || SSRC || ROC || SEQ) XOR salt`` for SRTP and
  ``(0x0000 || SSRC || 0x0000 || 0 || SRTCP index) XOR salt`` for SRTCP; the AAD is the RTP
  header with CSRCs and extension, or the first 8 RTCP octets and ``E || index``. The tag is
  part of the AEAD output, so for SRTCP it precedes the E/index word.

Wire layouts (MKI only when configured)::

    SRTP  AES-CM:  header | payload* | MKI | tag            (* encrypted)
    SRTP  GCM:     header | payload* | tag | MKI
    SRTCP AES-CM:  header(8) | rest* | E|index | MKI | tag
    SRTCP GCM:     header(8) | rest* | tag | E|index | MKI

The first SRTCP index sent on an SSRC is 1, as libsrtp (and so baresip, Chromium and the
reference vectors) does; RFC 3711 §3.4 starts at 0. A receiver cannot tell the difference, and
it keeps re-protection bit-exact with those peers.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import LocalProtocolError, ReplayError, SrtpAuthError, SrtpError
from .kdf import (
    SessionKeys,
    check_key_derivation_rate,
    check_master_key,
    derive_srtcp_keys,
    derive_srtp_keys,
)
from .profiles import SrtpProfile

__all__ = [
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_REPLAY_WINDOW",
    "MAX_REPLAY_WINDOW",
    "MAX_SRTCP_INDEX",
    "MAX_SRTP_INDEX",
    "ReplayWindow",
    "SrtpSession",
]

_log = logging.getLogger(__name__)

DEFAULT_REPLAY_WINDOW = 64
"""Replay window size W; RFC 3711 §3.3.2 requires at least 64."""
MAX_REPLAY_WINDOW = 1 << 15
"""Largest window: index guessing (Appendix A) cannot place packets further apart anyway."""
DEFAULT_MAX_STREAMS = 1024
"""Per-direction cap on tracked SSRCs; the oldest stream state is dropped beyond it."""
MAX_SRTP_INDEX = (1 << 48) - 1
"""Last usable SRTP packet index (RFC 3711 §3.3.1: 2^48 packets per master key)."""
MAX_SRTCP_INDEX = (1 << 31) - 1
"""Last usable SRTCP index (RFC 3711 §3.4: 31 bits)."""

_MAX_PACKET = 0xFFFF
_RTP_HEADER = 12
_RTCP_HEADER = 8
_E_FLAG = 0x80000000
_GCM_TAG = 16
_SEEN = 1
_TOO_OLD = 2

# Counter-block suffixes for the keystream: the low 16 bits of an SRTP IV are the block counter
# (the IV itself is x * 2^16). ``prefix.join(_CTR_SUFFIXES[: n + 1])`` yields n blocks
# ``prefix || 0000, prefix || 0001, ...``; 4096 blocks cover a 65535-octet datagram.
_CTR_SUFFIXES: list[bytes] = [b""] + [i.to_bytes(2, "big") for i in range(4096)]
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class ReplayWindow:
    """RFC 3711 §3.3.2 replay list: the highest index and a bitmap of the ``size`` before it.

    Bit ``k`` of the bitmap is set when index ``highest - k`` has been accepted.
    """

    __slots__ = ("size", "highest", "_bits", "_mask")

    def __init__(self, size: int) -> None:
        self.size = size
        self.highest = -1
        self._bits = 0
        self._mask = (1 << size) - 1

    def status(self, index: int) -> int:
        """0 if ``index`` is acceptable, else why not (seen before or too old)."""
        delta = self.highest - index
        if delta < 0 or self.highest < 0:
            return 0
        if delta >= self.size:
            return _TOO_OLD
        return _SEEN if (self._bits >> delta) & 1 else 0

    def add(self, index: int) -> None:
        """Record an accepted index (call only after :meth:`status` returned 0)."""
        delta = index - self.highest
        if self.highest < 0 or delta >= self.size:
            self._bits = 1
            self.highest = index
        elif delta > 0:
            self._bits = ((self._bits << delta) | 1) & self._mask
            self.highest = index
        else:
            self._bits |= 1 << -delta


class _Stream:
    """State for one SSRC in one direction."""

    __slots__ = ("window", "next_srtcp_index")

    def __init__(self, window: int) -> None:
        self.window = ReplayWindow(window)
        self.next_srtcp_index = 1


def _guess_index(highest: int, seq: int) -> int:
    """RFC 3711 Appendix A: the packet index closest to the highest one seen; -1 before ROC 0."""
    if highest < 0:
        return seq
    roc = highest >> 16
    s_l = highest & 0xFFFF
    if s_l < 0x8000:
        v = roc - 1 if seq - s_l > 0x8000 else roc
    else:
        v = roc + 1 if s_l - 0x8000 > seq else roc
    return -1 if v < 0 else (v << 16) | seq


def _rtp_header_len(packet: bytes) -> int:
    """Octets of RTP header incl. CSRCs and extension (RFC 3550 §5.1, §5.3.1)."""
    n = len(packet)
    if n < _RTP_HEADER:
        raise SrtpError(f"RTP packet of {n} octets is shorter than its 12-octet header")
    if n > _MAX_PACKET:
        raise SrtpError(f"packet of {n} octets does not fit a datagram")
    b0 = packet[0]
    if b0 & 0xC0 != 0x80:
        raise SrtpError("not an RTP version 2 packet")
    hl = _RTP_HEADER + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if n < hl + 4:
            raise SrtpError("RTP header extension is truncated")
        hl += 4 + (((packet[hl + 2] << 8) | packet[hl + 3]) << 2)
    if hl > n:
        raise SrtpError("RTP header is longer than the packet")
    return hl


def _check_rtcp(packet: bytes, overhead: int) -> None:
    n = len(packet)
    if n < _RTCP_HEADER + overhead:
        raise SrtpError(f"SRTCP packet of {n} octets is too short")
    if n > _MAX_PACKET:
        raise SrtpError(f"packet of {n} octets does not fit a datagram")
    if packet[0] & 0xC0 != 0x80:
        raise SrtpError("not an RTCP version 2 packet")


class _CmKeys:
    """AES-CM + HMAC-SHA1 transform for one direction (RTP or RTCP) and one key epoch."""

    __slots__ = ("salt", "_ecb", "_inner", "_outer")

    def __init__(self, keys: SessionKeys) -> None:
        self.salt = int.from_bytes(keys.cipher_salt, "big")
        self._ecb = Cipher(algorithms.AES(keys.cipher_key), modes.ECB()).encryptor()
        block = keys.auth_key.ljust(64, b"\x00")
        self._inner = hashlib.sha1(block.translate(_IPAD))
        self._outer = hashlib.sha1(block.translate(_OPAD))

    def xor(self, iv_prefix: int, data: bytes) -> bytes:
        """data XOR AES-CM keystream whose IV is ``iv_prefix * 2^16`` (RFC 3711 §4.1.1)."""
        n = len(data)
        if not n:
            return b""
        blocks = self._ecb.update(iv_prefix.to_bytes(14, "big").join(_CTR_SUFFIXES[: ((n + 15) >> 4) + 1]))
        return (int.from_bytes(data, "big") ^ int.from_bytes(blocks[:n], "big")).to_bytes(n, "big")

    def mac(self, data: bytes, trailer: bytes) -> bytes:
        """HMAC-SHA1(k_a, data || trailer), 20 octets (RFC 3711 §4.2.1, RFC 2104)."""
        inner = self._inner.copy()
        inner.update(data)
        inner.update(trailer)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def seal_rtp(
        self, packet: bytes, hl: int, ssrc: int, index: int, encrypt: bool, mki: bytes, tag_len: int
    ) -> bytes:
        if encrypt:
            packet = packet[:hl] + self.xor(self.salt ^ (ssrc << 48) ^ index, packet[hl:])
        return packet + mki + self.mac(packet, (index >> 16).to_bytes(4, "big"))[:tag_len]

    def open_rtp(
        self, packet: bytes, hl: int, ssrc: int, index: int, encrypt: bool, mki: bytes, tag_len: int
    ) -> bytes:
        end = len(packet) - tag_len - len(mki)
        if mki and packet[end : end + len(mki)] != mki:
            raise SrtpError("SRTP packet carries an unknown MKI")
        expected = self.mac(packet[:end], (index >> 16).to_bytes(4, "big"))[:tag_len]
        if not hmac.compare_digest(expected, packet[len(packet) - tag_len :]):
            raise SrtpAuthError("SRTP authentication tag mismatch")
        if encrypt:
            return packet[:hl] + self.xor(self.salt ^ (ssrc << 48) ^ index, packet[hl:end])
        return packet[:end]

    def seal_rtcp(
        self, packet: bytes, ssrc: int, trailer: bytes, index: int, mki: bytes, tag_len: int
    ) -> bytes:
        if trailer[0] & 0x80:
            packet = packet[:_RTCP_HEADER] + self.xor(self.salt ^ (ssrc << 48) ^ index, packet[_RTCP_HEADER:])
        packet += trailer
        return packet + mki + self.mac(packet, b"")[:tag_len]

    def open_rtcp(self, packet: bytes, ssrc: int, word_at: int, index: int, tag_len: int) -> bytes:
        expected = self.mac(packet[: word_at + 4], b"")[:tag_len]
        if not hmac.compare_digest(expected, packet[len(packet) - tag_len :]):
            raise SrtpAuthError("SRTCP authentication tag mismatch")
        body = packet[_RTCP_HEADER:word_at]
        if packet[word_at] & 0x80:
            body = self.xor(self.salt ^ (ssrc << 48) ^ index, body)
        return packet[:_RTCP_HEADER] + body


class _GcmKeys:
    """AES-GCM transform for one direction and one key epoch (RFC 7714 §8, §9)."""

    __slots__ = ("salt", "_aead")

    def __init__(self, keys: SessionKeys) -> None:
        self.salt = int.from_bytes(keys.cipher_salt, "big")
        self._aead = AESGCM(keys.cipher_key)

    def seal_rtp(
        self, packet: bytes, hl: int, ssrc: int, index: int, encrypt: bool, mki: bytes, tag_len: int
    ) -> bytes:
        iv = (self.salt ^ (ssrc << 48) ^ index).to_bytes(12, "big")
        if encrypt:
            header = packet[:hl]
            return header + self._aead.encrypt(iv, packet[hl:], header) + mki
        return packet + self._aead.encrypt(iv, b"", packet) + mki  # RFC 7714 §16.1.3: tag only

    def open_rtp(
        self, packet: bytes, hl: int, ssrc: int, index: int, encrypt: bool, mki: bytes, tag_len: int
    ) -> bytes:
        stop = len(packet) - len(mki)
        if mki and packet[stop:] != mki:
            raise SrtpError("SRTP packet carries an unknown MKI")
        iv = (self.salt ^ (ssrc << 48) ^ index).to_bytes(12, "big")
        try:
            if encrypt:
                header = packet[:hl]
                return header + self._aead.decrypt(iv, packet[hl:stop], header)
            result = packet[: stop - _GCM_TAG]
            self._aead.decrypt(iv, packet[stop - _GCM_TAG : stop], result)
            return result
        except InvalidTag:
            raise SrtpAuthError("SRTP AES-GCM tag mismatch") from None

    def seal_rtcp(
        self, packet: bytes, ssrc: int, trailer: bytes, index: int, mki: bytes, tag_len: int
    ) -> bytes:
        iv = (self.salt ^ (ssrc << 48) ^ index).to_bytes(12, "big")
        if trailer[0] & 0x80:
            header = packet[:_RTCP_HEADER]
            return header + self._aead.encrypt(iv, packet[_RTCP_HEADER:], header + trailer) + trailer + mki
        return packet + self._aead.encrypt(iv, b"", packet + trailer) + trailer + mki

    def open_rtcp(self, packet: bytes, ssrc: int, word_at: int, index: int, tag_len: int) -> bytes:
        iv = (self.salt ^ (ssrc << 48) ^ index).to_bytes(12, "big")
        trailer = packet[word_at : word_at + 4]
        try:
            if trailer[0] & 0x80:
                header = packet[:_RTCP_HEADER]
                return header + self._aead.decrypt(iv, packet[_RTCP_HEADER:word_at], header + trailer)
            result = packet[: word_at - _GCM_TAG]
            self._aead.decrypt(iv, packet[word_at - _GCM_TAG : word_at], result + trailer)
            return result
        except InvalidTag:
            raise SrtpAuthError("SRTCP AES-GCM tag mismatch") from None


_Keys = _CmKeys | _GcmKeys


class SrtpSession:
    """SRTP/SRTCP crypto context for one master key (one direction of a DTLS-SRTP association).

    A sender protects with its own key, a receiver unprotects with the peer's. One object can
    do both for different SSRCs (or as a loopback in tests): sender and receiver stream state are
    kept apart.
    """

    profile: SrtpProfile
    _master: tuple[bytes, bytes] | None
    _rtp_keys: _Keys
    _rtcp_keys: _Keys

    def __init__(
        self,
        profile: SrtpProfile,
        master_key: bytes,
        master_salt: bytes,
        *,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
        kdr: int = 0,
        mki: bytes = b"",
        encrypt_rtp: bool = True,
        encrypt_rtcp: bool = True,
        allow_repeat_tx: bool = False,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> None:
        """
        :param replay_window: replay list size W (64..32768), for SRTP and SRTCP.
        :param kdr: key derivation rate, 0 or a power of 2 up to 2^24 (RFC 3711 §4.3.1).
        :param mki: master key identifier carried in every packet ("|value:length" in SDES).
        :param encrypt_rtp: False for RFC 4568 UNENCRYPTED_SRTP (authentication only).
        :param encrypt_rtcp: False for UNENCRYPTED_SRTCP (sent with E=0). Received SRTCP follows
            the E flag of each packet either way; the packet is authenticated in both cases.
        :param allow_repeat_tx: let :meth:`protect_rtp` protect an index of the sender's window
            again (retransmission of the same bytes); otherwise that raises
            :class:`LocalProtocolError`, as does an index older than the window.
        :param max_streams: SSRCs tracked per direction before the oldest state is dropped.
        """
        check_master_key(profile, master_key, master_salt)
        self._kdr_shift = check_key_derivation_rate(kdr)
        self._kdr = kdr
        self._master = (bytes(master_key), bytes(master_salt))
        self._configure(profile, replay_window, mki, encrypt_rtp, encrypt_rtcp, allow_repeat_tx, max_streams)
        self._rtp_keys = self._make_keys(derive_srtp_keys(profile, master_key, master_salt, kdr=kdr))
        self._rtcp_keys = self._make_keys(derive_srtcp_keys(profile, master_key, master_salt, kdr=kdr))

    @classmethod
    def from_session_keys(
        cls,
        profile: SrtpProfile,
        srtp_keys: SessionKeys,
        srtcp_keys: SessionKeys,
        *,
        replay_window: int = DEFAULT_REPLAY_WINDOW,
        mki: bytes = b"",
        encrypt_rtp: bool = True,
        encrypt_rtcp: bool = True,
        allow_repeat_tx: bool = False,
        max_streams: int = DEFAULT_MAX_STREAMS,
    ) -> SrtpSession:
        """A session from already derived session keys (RFC 7714 §16/§17 vectors, key export).

        There is no master key, so the key derivation rate is 0.
        """
        for keys in (srtp_keys, srtcp_keys):
            if (
                len(keys.cipher_key) != profile.master_key_len
                or len(keys.cipher_salt) != profile.master_salt_len
            ):
                raise LocalProtocolError(f"session key or salt length does not match {profile.name}")
            if len(keys.auth_key) != profile.auth_key_len:
                raise LocalProtocolError(f"{profile.name} needs a {profile.auth_key_len}-octet auth key")
        self = cls.__new__(cls)
        self._kdr_shift = 0
        self._kdr = 0
        self._master = None
        self._configure(profile, replay_window, mki, encrypt_rtp, encrypt_rtcp, allow_repeat_tx, max_streams)
        self._rtp_keys = self._make_keys(srtp_keys)
        self._rtcp_keys = self._make_keys(srtcp_keys)
        return self

    def _configure(
        self,
        profile: SrtpProfile,
        replay_window: int,
        mki: bytes,
        encrypt_rtp: bool,
        encrypt_rtcp: bool,
        allow_repeat_tx: bool,
        max_streams: int,
    ) -> None:
        if not DEFAULT_REPLAY_WINDOW <= replay_window <= MAX_REPLAY_WINDOW:
            raise LocalProtocolError(f"replay window must be 64..{MAX_REPLAY_WINDOW}, got {replay_window}")
        if len(mki) > 128:
            raise LocalProtocolError("MKI is at most 128 octets (RFC 4568 §9.2)")
        if max_streams < 1:
            raise LocalProtocolError("max_streams must be at least 1")
        self.profile = profile
        self._aead = profile.is_aead
        self._rtp_tag_len = profile.srtp_auth_tag_len
        self._rtcp_tag_len = profile.srtcp_auth_tag_len
        self._rtp_overhead = profile.srtp_auth_tag_len + len(mki)
        self._rtcp_overhead = profile.srtcp_auth_tag_len + 4 + len(mki)
        self._window = replay_window
        self._mki = bytes(mki)
        self._encrypt_rtp = encrypt_rtp
        self._encrypt_rtcp = encrypt_rtcp
        self._allow_repeat_tx = allow_repeat_tx
        self._max_streams = max_streams
        self._tx_rtp: dict[int, _Stream] = {}
        self._rx_rtp: dict[int, _Stream] = {}
        self._tx_rtcp: dict[int, _Stream] = {}
        self._rx_rtcp: dict[int, _Stream] = {}
        self._epoch_cache: dict[tuple[bool, int], _Keys] = {}
        self._logger = logging.LoggerAdapter(_log, {"id": f"srtp-{id(self) & 0xFFFF:04x}"})

    def __repr__(self) -> str:
        return f"<SrtpSession {self.profile.name} rtp_streams={len(self._rx_rtp)}/{len(self._tx_rtp)}>"

    # -- keys ----------------------------------------------------------------------------
    def _make_keys(self, keys: SessionKeys) -> _Keys:
        return _GcmKeys(keys) if self._aead else _CmKeys(keys)

    def _keys_at(self, rtcp: bool, index: int) -> _Keys:
        """Session keys for ``index`` when a key derivation rate is set (RFC 3711 §4.3.1)."""
        r = index >> self._kdr_shift
        keys = self._epoch_cache.get((rtcp, r))
        if keys is None:
            if self._master is None:
                raise LocalProtocolError("a key derivation rate needs the master key")
            key, salt = self._master
            derive = derive_srtcp_keys if rtcp else derive_srtp_keys
            keys = self._make_keys(derive(self.profile, key, salt, index=index, kdr=self._kdr))
            if len(self._epoch_cache) >= 8:
                del self._epoch_cache[next(iter(self._epoch_cache))]
            self._epoch_cache[(rtcp, r)] = keys
        return keys

    def _stream(self, table: dict[int, _Stream], ssrc: int, what: str) -> _Stream:
        stream = table.get(ssrc)
        if stream is None:
            if len(table) >= self._max_streams:
                old = next(iter(table))
                del table[old]
                self._logger.info("%s stream 0x%08x dropped (over %d streams)", what, old, self._max_streams)
            stream = table[ssrc] = _Stream(self._window)
            self._logger.debug("%s stream 0x%08x created", what, ssrc)
        return stream

    # -- SRTP ----------------------------------------------------------------------------
    def protect_rtp(self, packet: bytes) -> bytes:
        """RTP packet to SRTP packet (RFC 3711 §3.3, RFC 7714 §8)."""
        hl = _rtp_header_len(packet)
        ssrc = int.from_bytes(packet[8:12], "big")
        stream = self._tx_rtp.get(ssrc) or self._stream(self._tx_rtp, ssrc, "SRTP tx")
        window = stream.window
        index = _guess_index(window.highest, (packet[2] << 8) | packet[3])
        if index < 0 or index > MAX_SRTP_INDEX:
            raise LocalProtocolError("SRTP packet index outside 0..2^48-1: rekey the session")
        seen = window.status(index)
        if not seen:
            window.add(index)
        elif seen == _TOO_OLD:
            raise LocalProtocolError(f"SRTP index {index} is older than the sender's window")
        elif not self._allow_repeat_tx:
            raise LocalProtocolError(f"SRTP index {index} already protected (keystream reuse)")
        keys = self._rtp_keys if not self._kdr else self._keys_at(False, index)
        return keys.seal_rtp(packet, hl, ssrc, index, self._encrypt_rtp, self._mki, self._rtp_tag_len)

    def unprotect_rtp(self, packet: bytes) -> bytes:
        """SRTP packet to RTP packet: index guess, replay check, verify, decrypt (RFC 3711 §3.3)."""
        hl = _rtp_header_len(packet)
        if len(packet) - self._rtp_overhead < hl:
            raise SrtpError("SRTP packet too short for its tag")
        ssrc = int.from_bytes(packet[8:12], "big")
        stream = self._rx_rtp.get(ssrc)
        highest = stream.window.highest if stream is not None else -1
        index = _guess_index(highest, (packet[2] << 8) | packet[3])
        if index < 0:
            raise ReplayError("SRTP packet is older than the first one of its stream")
        if index > MAX_SRTP_INDEX:
            raise SrtpError("SRTP packet index beyond 2^48-1: the sender should have rekeyed")
        if stream is not None:
            bad = stream.window.status(index)
            if bad:
                raise ReplayError(
                    f"SRTP index {index} {'replayed' if bad == _SEEN else 'older than the window'}"
                )
        keys = self._rtp_keys if not self._kdr else self._keys_at(False, index)
        result = keys.open_rtp(packet, hl, ssrc, index, self._encrypt_rtp, self._mki, self._rtp_tag_len)
        if stream is None:
            stream = self._stream(self._rx_rtp, ssrc, "SRTP rx")
        elif index >> 16 > highest >> 16:
            self._logger.debug("SRTP rx stream 0x%08x ROC %d -> %d", ssrc, highest >> 16, index >> 16)
        stream.window.add(index)
        return result

    # -- SRTCP ---------------------------------------------------------------------------
    def protect_rtcp(self, packet: bytes) -> bytes:
        """RTCP (compound) packet to SRTCP packet with E flag and index (RFC 3711 §3.4, RFC 7714 §9)."""
        _check_rtcp(packet, 0)
        ssrc = int.from_bytes(packet[4:8], "big")
        stream = self._tx_rtcp.get(ssrc) or self._stream(self._tx_rtcp, ssrc, "SRTCP tx")
        index = stream.next_srtcp_index
        if index > MAX_SRTCP_INDEX:
            raise LocalProtocolError("SRTCP index exhausted (2^31 packets): rekey the session")
        stream.next_srtcp_index = index + 1
        trailer = ((_E_FLAG if self._encrypt_rtcp else 0) | index).to_bytes(4, "big")
        keys = self._rtcp_keys if not self._kdr else self._keys_at(True, index)
        return keys.seal_rtcp(packet, ssrc, trailer, index, self._mki, self._rtcp_tag_len)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """SRTCP packet to RTCP packet: replay check on the index, verify, decrypt if E=1."""
        mki = self._mki
        _check_rtcp(packet, self._rtcp_overhead)
        if self._aead:  # header | ciphertext | tag | E+index | MKI
            word_at = len(packet) - len(mki) - 4
            if mki and packet[word_at + 4 :] != mki:
                raise SrtpError("SRTCP packet carries an unknown MKI")
        else:  # header | ciphertext | E+index | MKI | tag
            word_at = len(packet) - self._rtcp_tag_len - len(mki) - 4
            if mki and packet[word_at + 4 : word_at + 4 + len(mki)] != mki:
                raise SrtpError("SRTCP packet carries an unknown MKI")
        index = int.from_bytes(packet[word_at : word_at + 4], "big") & MAX_SRTCP_INDEX
        ssrc = int.from_bytes(packet[4:8], "big")
        stream = self._rx_rtcp.get(ssrc)
        if stream is not None:
            bad = stream.window.status(index)
            if bad:
                raise ReplayError(
                    f"SRTCP index {index} {'replayed' if bad == _SEEN else 'older than the window'}"
                )
        keys = self._rtcp_keys if not self._kdr else self._keys_at(True, index)
        result = keys.open_rtcp(packet, ssrc, word_at, index, self._rtcp_tag_len)
        if stream is None:
            stream = self._stream(self._rx_rtcp, ssrc, "SRTCP rx")
        stream.window.add(index)
        return result

    # -- introspection -------------------------------------------------------------------
    def rtp_roc(self, ssrc: int, *, outbound: bool = False) -> int | None:
        """Current rollover counter of an SSRC's stream, ``None`` if the SSRC is unknown."""
        stream = (self._tx_rtp if outbound else self._rx_rtp).get(ssrc)
        return None if stream is None or stream.window.highest < 0 else stream.window.highest >> 16

    def srtcp_index(self, ssrc: int) -> int | None:
        """The SRTCP index the next :meth:`protect_rtcp` for ``ssrc`` will use."""
        stream = self._tx_rtcp.get(ssrc)
        return None if stream is None else stream.next_srtcp_index
