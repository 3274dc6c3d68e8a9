"""SASL/OAUTHBEARER tokens for the engine's Kafka clients, read from a file.

Whatever issues the tokens (a sidecar, the platform's workload identity, a cron job) keeps the file
``SHOPGUIDE_KAFKA_SASL_OAUTH_TOKEN_FILE`` current; every new broker connection reads it, so a
renewed token is used without a restart. aiokafka (and Faust through it) awaits its provider's
``token()``, kafka-python calls it: one provider class for each.
"""

from __future__ import annotations

from pathlib import Path

from aiokafka.abc import AbstractTokenProvider as AsyncProviderBase
from kafka.net.sasl.oauth import AbstractTokenProvider as ProviderBase


class TokenFileError(RuntimeError):
    """The token file cannot be read or is empty."""


def read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"OAUTHBEARER token file {path}: {exc}") from None
    if not token:
        raise TokenFileError(f"OAUTHBEARER token file {path} is empty")
    return token


class FileTokenProvider(ProviderBase):
    """For kafka-python clients."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def token(self) -> str:
        return read_token(self.path)


class AsyncFileTokenProvider(AsyncProviderBase):
    """For aiokafka clients and Faust."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def token(self) -> str:
        return read_token(self.path)
