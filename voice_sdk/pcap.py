"""Write captured datagrams as a classic pcap file that tshark and Wireshark open.

The stack sees payloads (SIP, STUN, DTLS, RTP) and the addresses they travelled between,
not link-layer frames; this writer synthesises IPv4/IPv6 + UDP (or TCP-less "raw" SIP over
TCP/WS shown as UDP on the same ports) headers around each payload with the
``LINKTYPE_RAW`` (101) link type, so dissectors key on the ports as usual
(``tshark -r call.pcap -d udp.port==5060,sip``).

The UDP checksum is left zero (allowed for IPv4, RFC 768); the IPv4 header checksum is
computed. Records are written as they come; :meth:`PcapWriter.close` flushes.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = ["LINKTYPE_RAW", "PcapWriter"]

LINKTYPE_RAW = 101
_MAGIC = 0xA1B2C3D4
_UDP = 17


def _checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """Append-only pcap writer; usable as a context manager."""

    def __init__(self, path: str | Path, *, snaplen: int = 65535) -> None:
        self.path = Path(path)
        self._fh: BinaryIO = open(self.path, "wb")
        self._fh.write(struct.pack("<IHHiIII", _MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_RAW))
        self._ip_id = 0
        self.count = 0

    def write_udp(self, ts: float, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> None:
        """Record one datagram sent from ``src`` to ``dst`` at wall-clock time ``ts``."""
        s_ip = ipaddress.ip_address(src[0])
        d_ip = ipaddress.ip_address(dst[0])
        udp_len = 8 + len(payload)
        udp = struct.pack("!HHHH", src[1] & 0xFFFF, dst[1] & 0xFFFF, udp_len & 0xFFFF, 0)
        if s_ip.version == 4 and d_ip.version == 4:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            hdr = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, self._ip_id, 0x4000, 64, _UDP, 0, s_ip.packed, d_ip.packed
            )
            hdr = hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:]
        else:
            s6 = s_ip if s_ip.version == 6 else ipaddress.IPv6Address(f"::ffff:{s_ip}")
            d6 = d_ip if d_ip.version == 6 else ipaddress.IPv6Address(f"::ffff:{d_ip}")
            hdr = struct.pack("!IHBB16s16s", 6 << 28, udp_len, _UDP, 64, s6.packed, d6.packed)
        frame = hdr + udp + payload
        sec = int(ts)
        usec = round((ts - sec) * 1_000_000)
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self._fh.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
        self._fh.write(frame)
        self.count += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
