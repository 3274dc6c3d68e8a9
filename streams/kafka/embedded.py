"""Whether the engine runs against the embedded development broker, whose habits it works around.

The embedded broker (Tansu in memory, ``shopguide broker``) loses every topic, offset and changelog
when it restarts. Against it a worker carries on with its local state although the changelog is
shorter than what RocksDB applied (Faust's recovery consistency check off), creates lost topics
again and reads them from their beginning, and moves each changelog's end offset past records a
dying producer left behind (:func:`streams.topics.heal_changelogs`). Against a production Kafka
each of these would hide data loss, so they apply only when ``SHOPGUIDE_BROKER_KIND`` says
``embedded``, or says ``auto`` (the default) and the cluster has the embedded broker's id.
"""

from __future__ import annotations

import logging

from kafka.errors import KafkaError

from streams.settings import Settings
from streams.topics import admin_client

log = logging.getLogger(__name__)

#: The cluster id the embedded broker is started with (streams.tools.broker).
EMBEDDED_CLUSTER_ID = "shopguide-embedded"


def resolve_broker_kind(settings: Settings) -> Settings:
    """``settings`` with ``broker_kind`` ``embedded`` or ``kafka``; ``auto`` asks the cluster for its id."""
    if settings.broker_kind != "auto":
        return settings
    admin = admin_client(settings)
    try:
        cluster_id = admin.describe_cluster().get("cluster_id")
    except KafkaError as exc:
        log.warning("could not read the cluster id (%r): assuming a production Kafka", exc)
        cluster_id = None
    finally:
        admin.close()
    kind = "embedded" if cluster_id == EMBEDDED_CLUSTER_ID else "kafka"
    log.info("broker cluster %r: %s mode", cluster_id, kind)
    return settings.with_(broker_kind=kind)
