"""asyncio transports for SIP: UDP, TCP, TLS and WebSocket (RFC 3261 §18, RFC 7118).

The only part of :mod:`sipcore` that touches sockets. A :class:`TransportManager` listens
on any mix of transports and hands every received message to one callback as
``(data, flow)``; :meth:`TransportManager.send` takes bytes and a :class:`Flow` (reply on
the connection a request came in on, RFC 3261 §18.2.2) or a destination (opening and then
reusing a connection for stream transports, RFC 5626 flows).

Stream transports frame with :class:`sipcore.framing.StreamFramer` and answer CRLFCRLF
keepalive pings with CRLF; WebSocket carries one SIP message per frame with the ``sip``
subprotocol.
"""

from .base import Flow, TransportError
from .manager import TransportManager

__all__ = ["Flow", "TransportError", "TransportManager"]
