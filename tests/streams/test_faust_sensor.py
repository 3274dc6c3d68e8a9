"""The label-caching Faust sensor exposes exactly what Faust's own sensor does, also after a
rebalance removed the topic and partition series."""

from __future__ import annotations

from types import SimpleNamespace

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from streams.engine.faust_sensor import LabelCachingMonitor


class _Agent:
    pass


class _Stream:
    shortlabel = "Stream: shop.clicks"
    task_owner = _Agent()


def _exposition(monitor_type: type[PrometheusMonitor], rebalance_at: int) -> list[bytes]:
    """The registry's samples after the same calls (creation times left out)."""
    registry = CollectorRegistry()
    monitor = monitor_type(metrics=FaustMetrics.create(registry, "shop_faust"))
    stream = _Stream()
    table = SimpleNamespace(name="users")
    for n in range(6):
        if n == rebalance_at:
            monitor._clear_partition_related_metrics()
        for tp in (TP("shop.clicks", n % 2), TP("shop.reviews", 0)):
            monitor.on_message_in(tp, 10 + n, SimpleNamespace())  # type: ignore[arg-type]
            monitor.on_stream_event_in(tp, 10 + n, stream, None)  # type: ignore[arg-type]
            monitor.track_tp_end_offset(tp, 100 + n)
        monitor.on_table_get(table, "u1")  # type: ignore[arg-type]
        monitor.on_table_set(table, "u1", b"state")  # type: ignore[arg-type]
    return [line for line in generate_latest(registry).splitlines() if b"_created" not in line]


def test_same_series_and_values_as_faust_sensor_across_a_rebalance():
    ours = _exposition(LabelCachingMonitor, rebalance_at=3)
    assert ours == _exposition(PrometheusMonitor, rebalance_at=3)
    assert b'shop_faust_messages_received_per_topics_partition{partition="1",topic="shop.clicks"} 15.0' in ours
    assert b'shop_faust_table_operations_total{operation="keys_updated",table="table.users"} 6.0' in ours
    assert ours != _exposition(LabelCachingMonitor, rebalance_at=-1)  # the rebalance did remove series
