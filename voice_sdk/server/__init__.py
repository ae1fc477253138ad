"""The embedded voice platform (token API, registrar, test numbers); see :mod:`.platform`."""

from .credentials import TokenIssuer, ephemeral_credentials, verify_ephemeral
from .platform import Platform, PlatformConfig

__all__ = ["Platform", "PlatformConfig", "TokenIssuer", "ephemeral_credentials", "verify_ephemeral"]
