"""voice_sdk: a browser-SDK-style Device/Call API over sipcore and rtpcore."""

from __future__ import annotations
