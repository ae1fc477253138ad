"""sipcore: SIP (RFC 3261 and friends) as sans-IO state machines with thin asyncio drivers.

Layers, bottom up: messages (parse/serialize) -> transactions -> dialogs ->
registration / INVITE sessions / subscriptions -> :class:`SipStack` -> transports.
"""

from __future__ import annotations
