"""SASL/OAUTHBEARER: the token comes from a file, read anew at each connection, in the form each of
the engine's Kafka clients (kafka-python, aiokafka, Faust) checks for."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.conn import AIOKafkaConnection
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka.net.sasl.oauth import SaslMechanismOAuth

from streams.engine.app import _credentials
from streams.errors import SettingsError
from streams.kafka.oauth import TokenFileError
from streams.settings import Settings


def oauth_settings(path) -> Settings:
    return Settings.from_env(
        {
            "SHOPGUIDE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SHOPGUIDE_KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "SHOPGUIDE_KAFKA_SASL_OAUTH_TOKEN_FILE": str(path),
        }
    )


def test_oauthbearer_needs_a_token_file():
    with pytest.raises(SettingsError, match="SHOPGUIDE_KAFKA_SASL_OAUTH_TOKEN_FILE"):
        Settings.from_env({"SHOPGUIDE_KAFKA_SASL_MECHANISM": "OAUTHBEARER"})


def test_kafka_python_gets_a_provider_reading_the_current_token(tmp_path):
    path = tmp_path / "token"
    path.write_text("first-token\n")
    mechanism = SaslMechanismOAuth(**oauth_settings(path).kafka_client_options())  # checks the provider's type
    assert b"auth=Bearer first-token\x01" in mechanism.auth_bytes()
    path.write_text("renewed-token")
    assert (
        b"auth=Bearer renewed-token\x01"
        in SaslMechanismOAuth(**oauth_settings(path).kafka_client_options()).auth_bytes()
    )


def test_aiokafka_and_faust_get_an_async_provider(tmp_path):
    path = tmp_path / "token"
    path.write_text("async-token")
    settings = oauth_settings(path)
    options = settings.kafka_client_options(asyncio=True)

    async def connect_options() -> str:
        AIOKafkaConnection("127.0.0.1", 9, **options)  # checks the provider's type, does not connect
        return await options["sasl_oauth_token_provider"].token()

    assert asyncio.run(connect_options()) == "async-token"
    faust_auth = credentials_to_aiokafka_auth(_credentials(settings))
    assert faust_auth["sasl_mechanism"] == "OAUTHBEARER"
    assert asyncio.run(faust_auth["sasl_oauth_token_provider"].token()) == "async-token"


def test_a_missing_or_empty_token_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    for path in (empty, tmp_path / "missing"):
        with pytest.raises(TokenFileError, match="token file"):
            oauth_settings(path).kafka_client_options()["sasl_oauth_token_provider"].token()
