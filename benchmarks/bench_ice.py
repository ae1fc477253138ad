"""ICE connectivity: time from "both sides know each other's candidates" to connected.

Two agents on 127.0.0.1 UDP sockets in one event loop, host candidates only: ours
(``rtpcore.ice.IceAgent`` with a 15-line asyncio driver) and ``aioice.Connection`` side by
side in the same run; plus the simulated-LAN figure (tests/netsim.py, 1 ms links), which is
what the Ta/RTO schedule alone gives without scheduler noise.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rtpcore.ice.agent import IceAgent, IceConnectionState

ROUNDS = 15


class _Sock(asyncio.DatagramProtocol):
    def __init__(self, agent: IceAgent) -> None:
        self.agent = agent
        self.transport: Any = None
        self.local: tuple[str, int] = ("127.0.0.1", 0)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.local = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        loop = asyncio.get_running_loop()
        self.agent.receive(data, (addr[0], addr[1]), self.local, loop.time())
        self.flush()

    def flush(self) -> None:
        now = asyncio.get_running_loop().time()
        for d, dst, _src in self.agent.datagrams_to_send(now):
            self.transport.sendto(d, dst)


async def _ours_once(states: tuple[IceConnectionState, ...]) -> float:
    loop = asyncio.get_running_loop()
    a, b = IceAgent(True), IceAgent(False)
    socks = []
    for agent in (a, b):
        _, s = await loop.create_datagram_endpoint(lambda ag=agent: _Sock(ag), local_addr=("127.0.0.1", 0))
        socks.append(s)
    for agent, s in zip((a, b), socks, strict=True):
        agent.gather(loop.time(), [s.local])
    t0 = loop.time()
    a.set_remote_credentials(b.local_ufrag, b.local_pwd, now=t0)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd, now=t0)
    for x, y in ((a, b), (b, a)):
        for c in y.local_candidates:
            x.add_remote_candidate(c, t0)
        x.end_of_remote_candidates(t0)
    while not (a.state in states and b.state in states):
        for agent, s in zip((a, b), socks, strict=True):
            d = agent.next_deadline()
            if d is not None and d <= loop.time():
                agent.handle_timeout(loop.time())
            s.flush()
        await asyncio.sleep(0.001)
        if loop.time() - t0 > 10:
            raise RuntimeError("our agents did not connect")
    elapsed = loop.time() - t0
    for s in socks:
        s.transport.close()
    return elapsed


async def _aioice_once() -> float:
    import aioice
    import aioice.ice

    # aioice skips loopback when gathering; this benchmark stays on 127.0.0.1
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    a = aioice.Connection(ice_controlling=True, use_ipv6=False)
    b = aioice.Connection(ice_controlling=False, use_ipv6=False)
    await a.gather_candidates()
    await b.gather_candidates()
    t0 = time.perf_counter()
    for x, y in ((a, b), (b, a)):
        for c in y.local_candidates:
            await x.add_remote_candidate(c)
        await x.add_remote_candidate(None)
        x.remote_username, x.remote_password = y.local_username, y.local_password
    await asyncio.gather(a.connect(), b.connect())
    elapsed = time.perf_counter() - t0
    await a.close()
    await b.close()
    return elapsed


def _simulated() -> float:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from netsim import LinkProfile, Simulation

    sim = Simulation(seed=1, profile=LinkProfile(delay=0.001))
    a, b = IceAgent(True), IceAgent(False)
    for agent, addr in ((a, ("10.0.0.1", 4000)), (b, ("10.0.0.2", 4000))):
        sim.add_endpoint(addr, on_receive=lambda d, s, now, ag=agent, ad=addr: ag.receive(d, s, ad, now),
                         outgoing=agent.datagrams_to_send, next_deadline=agent.next_deadline,
                         on_timeout=agent.handle_timeout)
        agent.gather(sim.clock.now, [addr])
    t0 = sim.clock.now
    a.set_remote_credentials(b.local_ufrag, b.local_pwd, now=t0)
    b.set_remote_credentials(a.local_ufrag, a.local_pwd, now=t0)
    for x, y in ((a, b), (b, a)):
        for c in y.local_candidates:
            x.add_remote_candidate(c, t0)
        x.end_of_remote_candidates(t0)
    done = (IceConnectionState.CONNECTED, IceConnectionState.COMPLETED)
    sim.run_for(10, lambda: a.state in done and b.state in done)
    return sim.clock.now - t0


def main() -> None:
    connected = (IceConnectionState.CONNECTED, IceConnectionState.COMPLETED)
    ours = [asyncio.run(_ours_once(connected)) for _ in range(ROUNDS)]
    nominated = [asyncio.run(_ours_once((IceConnectionState.COMPLETED,))) for _ in range(ROUNDS)]
    try:
        ref: list[float] | None = [asyncio.run(_aioice_once()) for _ in range(ROUNDS)]
    except ImportError:
        ref = None
    print(f"time to connected, host candidates on 127.0.0.1 (median of {ROUNDS}, ms)")
    m = statistics.median(ours) * 1000
    n = statistics.median(nominated) * 1000
    r = statistics.median(ref) * 1000 if ref else None
    print(f"  rtpcore.ice first valid pair (media can flow)      {m:7.1f}")
    print(f"  rtpcore.ice nominated (regular nomination)        {n:7.1f}")
    if r is not None:
        print(f"  aioice connect() returned                          {r:7.1f}   ratio aioice/ours(valid) {r / m:.1f}x")
    else:
        print("  aioice not installed")
    print(f"  simulated 1 ms LAN (Ta/RTO schedule only): {_simulated() * 1000:.1f} ms")


if __name__ == "__main__":
    main()
