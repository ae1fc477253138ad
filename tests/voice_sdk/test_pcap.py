from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

from conftest import CI
from voice_sdk.pcap import LINKTYPE_RAW, PcapWriter

INVITE = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"


def test_pcap_layout(tmp_path: Path) -> None:
    p = tmp_path / "x.pcap"
    with PcapWriter(p) as w:
        w.write_udp(1700000000.25, ("127.0.0.1", 5060), ("127.0.0.1", 5070), INVITE)
        w.write_udp(1700000000.5, ("::1", 5060), ("::1", 5070), b"x")
    data = p.read_bytes()
    magic, major, minor, _, _, snap, link = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, link) == (0xA1B2C3D4, 2, 4, LINKTYPE_RAW)
    sec, usec, incl, orig = struct.unpack_from("<IIII", data, 24)
    assert (sec, usec) == (1700000000, 250000) and incl == orig == 20 + 8 + len(INVITE)
    ip = data[40:60]
    assert ip[0] == 0x45 and ip[9] == 17
    # IPv4 header checksum verifies to zero
    total = sum(struct.unpack("!10H", ip))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF
    assert struct.unpack_from("!HH", data, 60) == (5060, 5070)


def test_tshark_decodes_it(tmp_path: Path) -> None:
    if shutil.which("tshark") is None:
        if CI:
            raise AssertionError("tshark missing under CI")
        return
    p = tmp_path / "x.pcap"
    with PcapWriter(p) as w:
        w.write_udp(1.0, ("127.0.0.1", 5060), ("127.0.0.1", 5070), INVITE)
    out = subprocess.run(["tshark", "-r", str(p), "-T", "fields", "-e", "sip.Method", "-e", "udp.dstport"],
                         capture_output=True, text=True, timeout=60).stdout
    assert out.split() == ["OPTIONS", "5070"]
