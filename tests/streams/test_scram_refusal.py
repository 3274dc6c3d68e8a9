"""A SCRAM login the broker refuses is named as such by both Kafka libraries' SCRAM clients, and a
login it accepts still completes (the server's signature is still checked)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import aiokafka.conn
import kafka.net.sasl.scram
import pytest

from streams.errors import ScramLoginRefused
from streams.kafka.scram import install, refusal

SALT, ITERATIONS, PASSWORD = b"salt-of-the-test", 4096, "pw"


def server_signature(client_first_bare: bytes, server_first: bytes, client_final_bare: bytes) -> bytes:
    """What a SCRAM-SHA-256 server that knows PASSWORD signs (RFC 5802, section 3)."""
    salted = hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), SALT, ITERATIONS)
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    auth_message = client_first_bare + b"," + server_first + b"," + client_final_bare
    return hmac.new(server_key, auth_message, hashlib.sha256).digest()


def server_first_for(client_first: bytes) -> bytes:
    nonce = client_first.split(b"r=", 1)[1]
    return b"r=" + nonce + b"server,s=" + base64.b64encode(SALT) + b",i=" + str(ITERATIONS).encode()


def aiokafka_login(server_final: bytes | None) -> None:
    """One aiokafka SCRAM exchange; ``None`` answers with the correct signature."""
    auth = aiokafka.conn.ScramAuthenticator(
        loop=None, sasl_plain_password=PASSWORD, sasl_plain_username="shop", sasl_mechanism="SCRAM-SHA-256"
    )
    steps = auth.authenticator_scram()
    client_first, _ = next(steps)
    server_first = server_first_for(client_first)
    client_final, _ = steps.send(server_first)
    if server_final is None:
        signature = server_signature(client_first[3:], server_first, client_final.rsplit(b",p=", 1)[0])
        server_final = b"v=" + base64.b64encode(signature)
    with pytest.raises(StopIteration):
        steps.send(server_final)


def kafka_python_login(server_final: bytes | None) -> None:
    """One kafka-python SCRAM exchange; ``None`` answers with the correct signature."""
    client = kafka.net.sasl.scram.ScramClient("shop", PASSWORD, "SCRAM-SHA-256")
    client_first = client.first_message()
    server_first = server_first_for(client_first)
    client.process_server_first_message(server_first)
    client_final = client.final_message()
    if server_final is None:
        signature = server_signature(client_first[3:], server_first, client_final.rsplit(b",p=", 1)[0])
        server_final = b"v=" + base64.b64encode(signature)
    client.process_server_final_message(server_final)


@pytest.fixture(autouse=True)
def installed() -> None:
    install()
    install()  # twice: still one wrapper


@pytest.mark.parametrize("login", [aiokafka_login, kafka_python_login])
def test_a_refused_login_names_the_brokers_reason(login):
    with pytest.raises(ScramLoginRefused, match="refused the SCRAM login: unknown-user"):
        login(b"e=unknown-user")


@pytest.mark.parametrize("login", [aiokafka_login, kafka_python_login])
def test_an_accepted_login_completes_and_a_forged_signature_is_still_refused(login):
    login(None)
    with pytest.raises(ValueError, match="wrong signature"):
        login(b"v=" + base64.b64encode(b"x" * 32))


def test_refusal_reads_only_error_answers():
    assert refusal(b"e=invalid-proof") == "invalid-proof"
    assert refusal("e=other-error") == "other-error"
    assert refusal(b"v=c2lnbmF0dXJl") is None
