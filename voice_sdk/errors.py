"""Typed SDK errors: every failure a user can see carries a stable code, a message and a cause."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ErrorCode", "VoiceSDKError"]


class ErrorCode(StrEnum):
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    AUTH_ERROR = "AUTH_ERROR"
    REGISTRATION_FAILED = "REGISTRATION_FAILED"
    TRANSPORT_ERROR = "TRANSPORT_ERROR"
    MEDIA_FAILED = "MEDIA_FAILED"
    ICE_FAILED = "ICE_FAILED"
    DTLS_FAILED = "DTLS_FAILED"
    CALL_REJECTED = "CALL_REJECTED"
    TIMEOUT = "TIMEOUT"
    INVALID_STATE = "INVALID_STATE"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    DEVICE_UNAVAILABLE = "DEVICE_UNAVAILABLE"
    CODEC_UNAVAILABLE = "CODEC_UNAVAILABLE"


class VoiceSDKError(Exception):
    """``VoiceSDKError(code, message, cause)``; ``status_code`` holds a SIP status when one applies."""

    def __init__(self, code: ErrorCode, message: str, cause: BaseException | None = None, *,
                 status_code: int | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.cause = cause
        self.status_code = status_code
        if cause is not None:
            self.__cause__ = cause

    def __repr__(self) -> str:
        return f"VoiceSDKError({self.code.value}, {self.message!r})"
