"""Shoppers' session tokens: signed, expiring, bound to one shopper."""

import time
from pathlib import Path

from streams.service.sessions import SessionSigner, session_key
from streams.settings import Settings

KEY = b"k" * 32


def test_a_token_names_its_shopper_until_it_expires():
    signer = SessionSigner(KEY, ttl_s=60)
    token = signer.mint("user-7", now=1000.0)
    assert signer.verify(token, now=1059.0) == "user-7"
    assert signer.verify(token, now=1061.0) is None


def test_tampered_or_foreign_tokens_are_refused():
    signer = SessionSigner(KEY, ttl_s=60)
    token = signer.mint("user-7", now=1000.0)
    other = signer.mint("user-8", now=1000.0)
    forged = other.split(".")[0] + "." + ".".join(token.split(".")[1:])  # user-8's id, user-7's signature
    assert signer.verify(forged, now=1001.0) is None
    longer = token.split(".")
    longer[1] = str(int(longer[1]) + 10_000)  # a later expiry, same signature
    assert signer.verify(".".join(longer), now=1001.0) is None
    assert SessionSigner(b"x" * 32, ttl_s=60).verify(token, now=1001.0) is None
    for junk in ("", "a.b", "a.b.c.d", "...", "x" * 2000):
        assert signer.verify(junk, now=1001.0) is None


def test_without_a_secret_the_key_is_made_once_and_kept(tmp_path: Path):
    settings = Settings.from_env({}).with_(data_dir=tmp_path)
    first = session_key(settings)
    assert first == session_key(settings) and len(first) >= 32
    assert (tmp_path / "guide-session.key").stat().st_mode & 0o777 == 0o600
    assert session_key(settings.with_(guide_secret="s" * 20)) == b"s" * 20


def test_the_token_command_mints_what_the_guide_accepts(monkeypatch, capsys):
    from streams.tools.cli import main

    monkeypatch.setenv("SHOPGUIDE_GUIDE_SECRET", "s" * 32)
    assert main(["token", "shopper-42"]) == 0
    token = capsys.readouterr().out.strip()
    assert SessionSigner(b"s" * 32, ttl_s=60).verify(token, now=time.time()) == "shopper-42"
