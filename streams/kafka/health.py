"""Is the broker there? A worker probes it every second, independently of Faust's own clients.

Faust's consumer and producer retry quietly through an outage, so without a probe a worker whose
broker is gone looks healthy. The probe asks for cluster metadata with a short timeout: while it
fails, ``/readyz`` answers 503 and ``shopguide_broker_up`` is 0. When the embedded broker comes
back without the engine's topics (it keeps everything in memory), the probe creates them again so
that the worker carries on without anyone's help. A production Kafka that lost the engine's topics
lost data: the probe reports it and leaves the topics to an operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.settings import Settings
from streams.topics import Topics, create_topics

log = logging.getLogger(__name__)

PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 2.0


class BrokerWatch:
    def __init__(
        self,
        settings: Settings,
        *,
        on_change: Callable[[bool], None] = lambda up: None,
        on_recreated: Callable[[set[str]], Awaitable[None]],
        recreate_lost: bool,
    ) -> None:
        self._settings = settings
        self._names = {spec.name for spec in Topics(settings).specs()}
        self._on_change = on_change
        self._on_recreated = on_recreated
        self._recreate_lost = recreate_lost
        self.missing: set[str] = set()  # the engine's topics the broker lacks (left to an operator)
        self.up = True
        self.down_since: float | None = None

    async def run(self) -> None:
        client: AIOKafkaClient | None = None
        try:
            while True:
                client = await self._probe(client)
                await asyncio.sleep(PROBE_INTERVAL_S)
        finally:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()

    async def _probe(self, client: AIOKafkaClient | None) -> AIOKafkaClient | None:
        """One probe; the client to probe with next time (None: connect afresh)."""
        try:
            if client is None:
                client = AIOKafkaClient(
                    bootstrap_servers=self._settings.bootstrap_servers,
                    request_timeout_ms=int(PROBE_TIMEOUT_S * 1000),
                    **self._settings.kafka_client_options(asyncio=True),
                )
                await asyncio.wait_for(client.bootstrap(), PROBE_TIMEOUT_S)
            metadata = await asyncio.wait_for(client.fetch_all_metadata(), PROBE_TIMEOUT_S)
            missing = self._names - set(metadata.topics())
            if missing and self._recreate_lost:
                await self._recreate(missing)
                missing = set()
            elif missing != self.missing and missing:
                log.error("the broker lacks %d of the engine's topics: %s", len(missing), sorted(missing))
            self.missing = missing
            self._set(up=True)
            return client
        except (KafkaError, OSError, TimeoutError) as exc:
            self._set(up=False, reason=repr(exc))
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.close()
            return None

    async def _recreate(self, missing: set[str]) -> None:
        log.error(
            "the broker has lost %d of the engine's topics (%s...): creating them again; "
            "their data is gone, this worker carries on with its local state",
            len(missing),
            sorted(missing)[0],
        )
        await asyncio.to_thread(create_topics, self._settings)
        await self._on_recreated(missing)

    def _set(self, up: bool, reason: str = "") -> None:
        if up == self.up:
            return
        self.up = up
        if up:
            log.warning("broker reachable again after %.1f s", time.time() - (self.down_since or time.time()))
            self.down_since = None
        else:
            self.down_since = time.time()
            log.error("broker unreachable: %s", reason)
        self._on_change(up)
