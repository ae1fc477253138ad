"""Flight packing (RFC 6347 §4.2.3): every datagram fits the MTU and the messages reassemble."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.dtls.constants import ContentType
from rtpcore.dtls.flight import Flight, FlightItem, pack_flight
from rtpcore.dtls.fragment import Reassembler, parse_fragments
from rtpcore.dtls.record import AeadCipher, EpochReader, EpochWriter, parse_records


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=3000), min_size=1, max_size=6), st.integers(128, 1500), st.booleans())
def test_packed_flight_fits_mtu_and_reassembles(bodies: list[bytes], mtu: int, finished: bool) -> None:
    key, iv = b"k" * 16, b"iviv"
    writers = {0: EpochWriter(0, None), 1: EpochWriter(1, AeadCipher(key, iv))}
    items = [FlightItem(ContentType.HANDSHAKE, 0, 11, seq, body, f"m{seq}") for seq, body in enumerate(bodies)]
    if finished:
        items.append(FlightItem(ContentType.CHANGE_CIPHER_SPEC, 0, name="ChangeCipherSpec"))
        items.append(FlightItem(ContentType.HANDSHAKE, 1, 20, len(bodies), b"v" * 12, "Finished"))
    flight = Flight(5, items, timer=True)
    datagrams = pack_flight(flight, writers, 0xFEFD, mtu)
    assert all(len(d) <= mtu for d in datagrams)
    readers = {0: EpochReader(0, None), 1: EpochReader(1, AeadCipher(key, iv))}
    reasm = Reassembler(max_message=4096, max_ahead=16)
    got, ccs = [], 0
    for dg in datagrams:
        for rec in parse_records(dg):
            payload = readers[rec.epoch].open(rec)
            assert payload is not None
            if rec.content_type == ContentType.CHANGE_CIPHER_SPEC:
                ccs += 1
                continue
            for frag in parse_fragments(payload):
                reasm.add(frag, rec.epoch)
            while (m := reasm.pop()) is not None:
                got.append(m.body)
    assert got == bodies + ([b"v" * 12] if finished else [])
    assert ccs == int(finished)
    # a retransmission re-encodes with new record sequence numbers but the same fragments
    again = pack_flight(flight, writers, 0xFEFD, mtu)
    assert len(again) == len(datagrams)
    first = [r.sequence_number for d in datagrams for r in parse_records(d) if r.epoch == 0]
    second = [r.sequence_number for d in again for r in parse_records(d) if r.epoch == 0]
    assert min(second) > max(first)
