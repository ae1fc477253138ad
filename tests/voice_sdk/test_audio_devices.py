"""Sound devices without PortAudio: a clear DEVICE_UNAVAILABLE error, everything else keeps working."""

from __future__ import annotations

import importlib.abc
import sys

import pytest

from voice_sdk.audio import open_input, open_output
from voice_sdk.device import Device
from voice_sdk.errors import ErrorCode, VoiceSDKError


class _NoPortAudio(importlib.abc.MetaPathFinder):
    """What importing sounddevice does when libportaudio2 is missing: OSError at import time."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


@pytest.mark.parametrize("how", ["module missing", "library missing"])
def test_enumerate_devices_without_portaudio_is_device_unavailable(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "module missing":
        monkeypatch.setitem(sys.modules, "sounddevice", None)
    else:
        monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
        monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    device = Device()
    with pytest.raises(VoiceSDKError) as info:
        device.enumerate_devices()
    assert info.value.code is ErrorCode.DEVICE_UNAVAILABLE
    assert "libportaudio2" in info.value.message and info.value.cause is not None
    for opener in (open_input, open_output):
        with pytest.raises(VoiceSDKError) as info:
            opener(None, sample_rate=48000)
        assert info.value.code is ErrorCode.DEVICE_UNAVAILABLE
    device.set_input_device(3)  # only recorded in the options: nothing is opened until a call uses it
    assert device.options.input_device == 3
