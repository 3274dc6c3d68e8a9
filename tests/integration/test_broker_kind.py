"""The embedded-broker workarounds apply against the embedded broker only (or when a setting asks):
against a production Kafka a worker neither recreates lost topics nor starts past a short changelog."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from streams.engine.app import Engine
from streams.kafka.embedded import resolve_broker_kind
from streams.kafka.health import BrokerWatch
from streams.testing.harness import fresh_settings
from streams.tools.broker import EmbeddedBroker
from streams.topics import Topics, admin_client

pytestmark = pytest.mark.integration


def test_auto_recognises_the_embedded_broker_by_its_cluster_id(broker, tmp_path):
    settings = fresh_settings(broker, tmp_path)
    assert settings.broker_kind == "auto"
    assert resolve_broker_kind(settings).broker_kind == "embedded"
    assert resolve_broker_kind(settings.with_(broker_kind="kafka")).broker_kind == "kafka"
    with EmbeddedBroker(log_path=tmp_path / "other.log", cluster_id="production-like") as other:
        assert resolve_broker_kind(fresh_settings(other, tmp_path)).broker_kind == "kafka"
        assert resolve_broker_kind(fresh_settings(other, tmp_path, broker_kind="embedded")).broker_kind == "embedded"


@pytest.mark.parametrize("kind", ["embedded", "kafka"])
def test_a_short_changelog_is_tolerated_only_against_the_embedded_broker(broker, tmp_path, kind):
    engine = Engine(fresh_settings(broker, tmp_path, broker_kind=kind))
    assert engine.app.conf.recovery_consistency_check is (kind == "kafka")


@pytest.mark.parametrize("kind", ["embedded", "kafka"])
def test_lost_topics_are_recreated_only_against_the_embedded_broker(broker, tmp_path, kind):
    settings = fresh_settings(broker, tmp_path, broker_kind=kind)  # its topics were never created
    names = {spec.name for spec in Topics(settings).specs()}
    recreated: list[set[str]] = []

    async def on_recreated(topics: set[str]) -> None:
        recreated.append(topics)

    async def watch_for(seconds: float) -> BrokerWatch:
        watch = BrokerWatch(settings, on_recreated=on_recreated, recreate_lost=kind == "embedded")
        task = asyncio.ensure_future(watch.run())
        await asyncio.sleep(seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return watch

    watch = asyncio.run(watch_for(4.0))
    admin = admin_client(settings)
    try:
        existing = names & set(admin.list_topics())
    finally:
        admin.close()
    assert watch.up
    if kind == "embedded":
        assert existing == names and recreated == [names] and watch.missing == set()
    else:
        assert existing == set() and recreated == [] and watch.missing == names
