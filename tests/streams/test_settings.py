import os
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
        ({"SHOPGUIDE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SASL_MECHANISM must be one of"),
        ({"SHOPGUIDE_SNAPSHOT_KEY": "short"}, "at least 16 bytes"),
        ({"SHOPGUIDE_SNAPSHOT_KEY": "k" * 20, "SHOPGUIDE_SNAPSHOT_KEY_FILE": "/x"}, "not both"),
        ({"SHOPGUIDE_API_TOKENS_FILE": "/nonexistent/tokens"}, "SHOPGUIDE_API_TOKENS_FILE: cannot read"),
        ({"SHOPGUIDE_API_RATE": "0"}, "SHOPGUIDE_API_RATE"),
        ({"SHOPGUIDE_BROKER_WAIT_S": "0"}, "SHOPGUIDE_BROKER_WAIT_S must be above 0"),
        ({"SHOPGUIDE_NEW_SHARE": "1.5"}, "SHOPGUIDE_NEW_SHARE must be between 0 and 1"),
        ({"SHOPGUIDE_EXPLORE_SLOTS": "11"}, "SHOPGUIDE_EXPLORE_SLOTS must be between 0 and SHOPGUIDE_TOP_K"),
        ({"SHOPGUIDE_EXPLORE_BELOW": "-1"}, "SHOPGUIDE_EXPLORE_BELOW >= 0"),
        ({"SHOPGUIDE_DEMOTE_FACTOR": "0"}, "SHOPGUIDE_DEMOTE_FACTOR.*factor must be > 0"),
        ({"SHOPGUIDE_IMPRESSION_LIMIT": "-1"}, "SHOPGUIDE_IMPRESSION_LIMIT.*must be >= 0"),
        ({"SHOPGUIDE_ACTION_WEIGHTS": "view=1,like=2"}, "SHOPGUIDE_ACTION_WEIGHTS: expected action=weight"),
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


def test_every_secret_also_comes_from_a_file(tmp_path):
    for name, value in (("KAFKA_SASL_PASSWORD", "pw"), ("SNAPSHOT_KEY", "k" * 32), ("API_TOKENS", "a, b")):
        path = tmp_path / name
        path.write_text(value + "\n")  # as a mounted secret or an editor leaves it
        s = Settings.from_env({f"SHOPGUIDE_{name}_FILE": str(path)})
        assert getattr(s, name.lower().removeprefix("kafka_")) == value
    assert Settings.from_env({"SHOPGUIDE_API_TOKENS_FILE": str(tmp_path / "API_TOKENS")}).api_token_list == ("a", "b")


def test_secrets_are_not_in_the_repr_and_are_listed_for_redaction():
    s = Settings().with_(sasl_password="hunter2-password", snapshot_key="k" * 32, api_tokens="tok-1,tok-2")
    assert not any(secret in repr(s) for secret in ("hunter2", "kkkk", "tok-"))
    assert set(s.secret_values()) >= {"hunter2-password", "k" * 32, "tok-1", "tok-2"}


def test_a_worker_needs_a_snapshot_key_and_tokens_or_an_explicitly_open_api():
    with pytest.raises(SettingsError, match="SHOPGUIDE_SNAPSHOT_KEY"):
        Settings().check_worker()
    with pytest.raises(SettingsError, match="SHOPGUIDE_API_OPEN"):
        Settings().with_(snapshot_key="k" * 32).check_worker()
    Settings().with_(snapshot_key="k" * 32, api_open=True).check_worker()
    generated = Settings().with_generated_secrets()
    generated.check_worker()
    assert generated.snapshot_key != Settings().with_generated_secrets().snapshot_key  # random per run


def test_shopguide_config_redacts_secrets(monkeypatch, capsys, tmp_path):
    from streams.tools.cli import main

    key_file = tmp_path / "key"
    key_file.write_text("k" * 32)
    monkeypatch.setenv("SHOPGUIDE_KAFKA_SASL_PASSWORD", "hunter2-password")
    monkeypatch.setenv("SHOPGUIDE_API_TOKENS", "tok-secret")
    monkeypatch.setenv("SHOPGUIDE_SNAPSHOT_KEY_FILE", str(key_file))
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "tok-secret" not in out and "kkkk" not in out
    assert "SHOPGUIDE_KAFKA_SASL_PASSWORD=***" in out and f"SHOPGUIDE_SNAPSHOT_KEY=*** (from {key_file})" in out


def test_a_worker_without_its_secrets_refuses_to_start_with_a_clear_message(monkeypatch, capsys):
    from streams.tools.cli import main

    for name in [n for n in os.environ if n.startswith("SHOPGUIDE_")]:
        monkeypatch.delenv(name)
    assert main(["worker"]) == 2
    assert "SHOPGUIDE_SNAPSHOT_KEY" in capsys.readouterr().err
    monkeypatch.setenv("SHOPGUIDE_SNAPSHOT_KEY", "k" * 32)
    assert main(["worker"]) == 2
    assert "SHOPGUIDE_API_TOKENS" in capsys.readouterr().err
