"""Faust's Prometheus sensor without its per-event label lookups.

Faust's sensor runs on every message, stream event and table get or set, and each time looks up
the labelled series it counts in (``labels()``) and, for a stream event, rebuilds the stream's
label from its text: a visible share of a draining worker's CPU (docs/benchmarks.md).
:class:`LabelCachingMonitor` keeps the same series with the same values, looking
each labelled series up once; the ones Faust removes when partitions move (topic and partition
series, on every rebalance) are looked up afresh after that.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors.prometheus import PrometheusMonitor, setup_prometheus_sensors
from faust.types import TP
from faust.types.tuples import Message
from prometheus_client import CollectorRegistry


class LabelCachingMonitor(PrometheusMonitor):
    """:class:`PrometheusMonitor` with its labelled series looked up once per label value."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._by_topic: dict[str, Any] = {}
        self._by_tp: dict[TP, Any] = {}
        self._end_by_tp: dict[TP, Any] = {}
        self._by_stream: dict[Any, Any] = {}
        self._by_table_op: dict[tuple[str, str], Any] = {}

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        super(PrometheusMonitor, self).on_message_in(tp, offset, message)
        m = self._metrics
        m.messages_received.inc()
        m.active_messages.inc()
        topic = self._by_topic.get(tp.topic)
        if topic is None:
            topic = self._by_topic[tp.topic] = m.messages_received_per_topics.labels(topic=tp.topic)
        topic.inc()
        at = self._by_tp.get(tp)
        if at is None:
            at = self._by_tp[tp] = m.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition
            )
        at.set(offset)

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> dict[str, Any] | None:
        state: dict[str, Any] | None = super(PrometheusMonitor, self).on_stream_event_in(tp, offset, stream, event)
        m = self._metrics
        m.total_events.inc()
        m.total_active_events.inc()
        events = self._by_stream.get(stream)
        if events is None:
            label = f"stream.{self._stream_label(stream)}.events"
            events = self._by_stream[stream] = m.total_events_per_stream.labels(stream=label)
        events.inc()
        return state

    def on_table_get(self, table: Any, key: Any) -> None:
        super(PrometheusMonitor, self).on_table_get(table, key)
        self._table_op(table.name, self.KEYS_RETRIEVED).inc()

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        super(PrometheusMonitor, self).on_table_set(table, key, value)
        self._table_op(table.name, self.KEYS_UPDATED).inc()

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        super(PrometheusMonitor, self).track_tp_end_offset(tp, offset)
        end = self._end_by_tp.get(tp)
        if end is None:
            end = self._end_by_tp[tp] = self._metrics.topic_partition_end_offset.labels(
                topic=tp.topic, partition=tp.partition
            )
        end.set(offset)

    def _table_op(self, table: str, operation: str) -> Any:
        series = self._by_table_op.get((table, operation))
        if series is None:
            series = self._by_table_op[(table, operation)] = self._metrics.table_operations.labels(
                table=f"table.{table}", operation=operation
            )
        return series

    def _clear_partition_related_metrics(self) -> None:
        super()._clear_partition_related_metrics()
        self._by_topic.clear()
        self._by_tp.clear()
        self._end_by_tp.clear()


def setup_sensor(app: faust.App, registry: CollectorRegistry, name_prefix: str) -> None:
    """Faust's Prometheus sensor and its ``/metrics`` page, with :class:`LabelCachingMonitor`."""
    setup_prometheus_sensors(app, registry=registry, name_prefix=name_prefix)
    faust_sensor = app.monitor
    assert isinstance(faust_sensor, PrometheusMonitor)
    app.monitor = LabelCachingMonitor(metrics=faust_sensor._metrics)
