"""Configuration of a Device and of calls (frozen dataclasses, one docstring per field)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_RECONNECT_SCHEDULE", "CallOptions", "DeviceOptions", "IceServer", "SipCredentials"]

DEFAULT_RECONNECT_SCHEDULE = (1.0, 2.0, 5.0, 10.0, 30.0)


@dataclass(frozen=True, slots=True)
class IceServer:
    urls: tuple[str, ...]
    """``stun:host:port`` / ``turn:host:port?transport=udp`` URLs."""
    username: str | None = None
    credential: str | None = None


@dataclass(frozen=True, slots=True)
class SipCredentials:
    """Direct SIP credentials for any standard server (no token service)."""

    uri: str
    """Address of record, ``sip:alice@example.com``."""
    password: str
    username: str | None = None
    """Digest username when it differs from the URI's user part."""
    ws_url: str | None = None
    """``ws://`` or ``wss://`` URL of a SIP-over-WebSocket server (RFC 7118)."""
    proxy: str | None = None
    """Outbound proxy as ``udp:host:port`` / ``tcp:host:port`` / ``tls:host:port``; default: the URI's host."""
    realm: str | None = None
    """Expected digest realm (None accepts the server's)."""


@dataclass(frozen=True, slots=True)
class DeviceOptions:
    log_level: str = "WARNING"
    """Level of the ``voice_sdk`` logger."""
    allow_incoming_while_busy: bool = False
    """False: a second incoming call while one is active is answered 486 Busy Here."""
    ice_servers: tuple[IceServer, ...] = ()
    """Extra STUN/TURN servers (the credentials service adds its own)."""
    input_device: int | str | None = None
    """Sound input (sounddevice index or name); None = null input unless ``audio=True``."""
    output_device: int | str | None = None
    sample_rate: int = 48000
    """Sample rate of the sound devices."""
    audio: bool = False
    """Use the sound card (needs PortAudio); default is headless null audio."""
    ringtone: str | None = None
    """WAV played on incoming calls when a sound device is in use."""
    token_expiry_lead: float = 60.0
    """Seconds before token expiry when ``token_will_expire`` fires and a provider is asked."""
    default_extra_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers added to every outgoing INVITE."""
    custom_header_prefix: str = "X-PH"
    """``connect(params=...)`` become ``<prefix>-<Key>`` headers."""
    credentials_url: str | None = None
    """Where a token is exchanged for SIP credentials (``GET`` with ``Authorization: Bearer``)."""
    sip_credentials: SipCredentials | None = None
    """Direct credentials instead of a token."""
    transport: str = "ws"
    """Preferred SIP transport when the service offers several: ws, wss, udp, tcp."""
    reconnect_schedule: tuple[float, ...] = DEFAULT_RECONNECT_SCHEDULE
    """Back-off delays (seconds, +-20 % jitter) between reconnect attempts; the last repeats."""
    register_expires: int = 600
    """Requested registration lifetime."""
    codecs: tuple[str, ...] = ("opus", "PCMU", "PCMA")
    """Codec preference; opus is skipped without libopus."""
    media_security: str = "dtls"
    """dtls (DTLS-SRTP + ICE, WebRTC style), sdes (RFC 4568) or none (plain RTP)."""
    ice_gathering_timeout: float = 2.0
    """Upper bound on candidate gathering before an offer is sent (later ones trickle)."""
    local_address: str | None = None
    """Address used for media and SIP (default: the one facing the server)."""


@dataclass(frozen=True, slots=True)
class CallOptions:
    record_path: str | None = None
    """Write received audio to this WAV file."""
    play_path: str | None = None
    """Send this WAV file instead of the input device."""
