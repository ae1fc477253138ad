"""rtpcore: real-time media as sans-IO state machines.

SDP offer/answer, ICE/STUN/TURN, DTLS-SRTP, RTP/RTCP, G.711/Opus, jitter buffer, DTMF.
"""

from __future__ import annotations
