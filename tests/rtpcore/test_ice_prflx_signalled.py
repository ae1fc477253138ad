"""A remote candidate first learned as peer-reflexive takes its signalled type once the SDP arrives."""

from __future__ import annotations

import random

from netsim import LinkProfile, Simulation
from rtpcore.ice.agent import IceAgent, IceConnectionState


def _rng(seed: int):  # type: ignore[no-untyped-def]
    r = random.Random(seed)
    return lambda n: r.randbytes(n)


def test_prflx_becomes_host_when_signalled() -> None:
    sim = Simulation(seed=3, profile=LinkProfile(delay=0.01))
    a, b = IceAgent(True, rng=_rng(1)), IceAgent(False, rng=_rng(2))
    addrs = {id(a): ("10.0.0.1", 4000), id(b): ("10.0.0.2", 4000)}
    for agent in (a, b):
        addr = addrs[id(agent)]
        sim.add_endpoint(addr, on_receive=lambda d, s, now, ag=agent, ad=addr: ag.receive(d, s, ad, now),
                         outgoing=agent.datagrams_to_send, next_deadline=agent.next_deadline,
                         on_timeout=agent.handle_timeout)
        agent.gather(sim.clock.now, [addr])
    now = sim.clock.now
    # the answerer knows the offer (a's candidates) and starts checking; a learns b's candidates late
    b.set_remote_credentials(a.local_ufrag, a.local_pwd, now=now)
    for c in a.local_candidates:
        b.add_remote_candidate(c, now)
    a.set_remote_credentials(b.local_ufrag, b.local_pwd, now=now)
    sim.run_for(0.2)
    assert any(c.type.value == "prflx" for c in a.remote_candidates)
    for c in b.local_candidates:
        a.add_remote_candidate(c, sim.clock.now)
    a.end_of_remote_candidates(sim.clock.now)
    done = (IceConnectionState.CONNECTED, IceConnectionState.COMPLETED)
    assert sim.run_for(5, lambda: a.state in done and a.selected_pair() is not None)
    pair = a.selected_pair()
    assert pair is not None and pair[1].type.value == "host"
