"""Shoppers' session tokens: ``user_id.expiry.signature``, signed with HMAC-SHA256, expiring.

The shop's backend mints one per shopper (``shopguide token USER_ID``) and opens the page with it;
every stream and action of the page is scoped to the token's shopper. The key comes from
``SHOPGUIDE_GUIDE_SECRET``; without one, a random key is kept in the data directory so that tokens
survive a restart of the guide on the same machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from streams.settings import Settings


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    def __init__(self, key: bytes, ttl_s: float) -> None:
        if len(key) < 16:
            raise ValueError("a session key needs at least 16 bytes")
        self._key = key
        self.ttl_s = ttl_s

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).digest())

    def mint(self, user_id: str, now: float) -> str:
        body = f"{_b64(user_id.encode('utf-8'))}.{int(now + self.ttl_s)}"
        return f"{body}.{self._sign(body)}"

    def verify(self, token: str, now: float) -> str | None:
        """The shopper's id, or None for a malformed, tampered or expired token."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 1024:
            return None
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(body), parts[2]):
            return None
        try:
            expiry = int(parts[1])
            user_id = _unb64(parts[0]).decode("utf-8")
        except ValueError:
            return None
        return user_id if now < expiry else None


def session_key(settings: Settings) -> bytes:
    """``SHOPGUIDE_GUIDE_SECRET``, else the random key kept in the data directory (made once, 0600)."""
    if settings.guide_secret:
        return settings.guide_secret.encode("utf-8")
    path = Path(settings.data_dir) / "guide-session.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip().encode("ascii")
