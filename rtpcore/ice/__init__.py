"""ICE, STUN and TURN as sans-IO state machines (RFC 8445, RFC 8838, RFC 7675, RFC 8489, RFC 8656).

* :mod:`.stun` message codec, integrity, fingerprint
* :mod:`.stun_transaction` client transaction with RFC 8489 §6.2.1 retransmissions
* :mod:`.candidate` candidates, priorities, foundations, ``a=candidate`` lines
* :mod:`.checklist` candidate pairs and the checklist state machine
* :mod:`.consent` RFC 7675 consent freshness timers
* :mod:`.turn` TURN client allocation, permissions, channels
* :mod:`.agent` the ICE agent tying them together
"""

from __future__ import annotations
