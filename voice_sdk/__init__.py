"""voice_sdk: a browser-SDK-style Device/Call API over sipcore and rtpcore, plus an embedded platform.

    from voice_sdk import Device, DeviceOptions
    device = Device(token, options=DeviceOptions(credentials_url=...))
    await device.register()
    call = await device.connect("echo")

Scripts without asyncio use :class:`SyncDevice` (the SDK's loop runs in a background thread).
"""

from .call import Call, CallStatus, QualitySample
from .device import Device
from .errors import ErrorCode, VoiceSDKError
from .options import CallOptions, DeviceOptions, IceServer, SipCredentials
from .sync import SyncCall, SyncDevice

__all__ = [
    "Call",
    "CallOptions",
    "CallStatus",
    "Device",
    "DeviceOptions",
    "ErrorCode",
    "IceServer",
    "QualitySample",
    "SipCredentials",
    "SyncCall",
    "SyncDevice",
    "VoiceSDKError",
]
