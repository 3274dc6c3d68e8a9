from pathlib import Path

import pytest

from streams.errors import SettingsError
from streams.settings import Settings, describe


def test_defaults_and_environment():
    s = Settings.from_env({})
    assert (s.broker, s.partitions, s.web_bind, s.data_dir) == ("127.0.0.1:9092", 4, "127.0.0.1", Path("./var"))
    s = Settings.from_env(
        {
            "SHOPGUIDE_PARTITIONS": "8",
            "SHOPGUIDE_CREATE_TOPICS": "no",
            "SHOPGUIDE_BROKER": "a:1, b:2",
            "SHOPGUIDE_DATA_DIR": "/tmp/x",
        }
    )
    assert (s.partitions, s.create_topics, s.data_dir) == (8, False, Path("/tmp/x"))
    assert s.bootstrap_servers == ["a:1", "b:2"]


def test_unprefixed_faust_variables_are_ignored():
    assert Settings.from_env({"WEB_PORT": "1234", "BROKER_URL": "kafka://x:1"}).web_port == 6066


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHOPGUIDE_PARTITIONS": "four"}, "not a valid int"),
        ({"SHOPGUIDE_PARTITIONS": "0"}, "at least 1"),
        ({"SHOPGUIDE_WEB_PORT": "70000"}, "TCP port"),
        ({"SHOPGUIDE_CREATE_TOPICS": "maybe"}, "not a valid bool"),
        ({"SHOPGUIDE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "SECURITY_PROTOCOL"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_round_trip_through_environment_and_docs():
    s = Settings().with_(partitions=2, create_topics=False, web_port=7000)
    assert Settings.from_env(s.to_env()) == s
    names = [row[0] for row in describe()]
    assert len(names) == len(set(names)) and all(n.startswith("SHOPGUIDE_") for n in names)


def test_sasl_options_pass_through():
    s = Settings.from_env(
        {
            "SHOPGUIDE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "SHOPGUIDE_KAFKA_SASL_USERNAME": "u",
            "SHOPGUIDE_KAFKA_SASL_PASSWORD": "p",
        }
    )
    opts = s.kafka_client_options()
    assert opts["sasl_plain_username"] == "u" and opts["security_protocol"] == "SASL_PLAINTEXT"
    assert "ssl_context" not in opts
