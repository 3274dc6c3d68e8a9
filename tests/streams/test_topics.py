"""Topics holding personal data get their retention at creation; the forget topic is keyed by user."""

from streams.settings import Settings
from streams.topics import Topics


def test_dead_letter_training_and_forget_topics_have_retention():
    topics = Topics(Settings().with_(deadletter_retention_h=2.0, training_retention_h=0.5))
    specs = {spec.name: spec for spec in topics.specs()}
    assert specs[topics.deadletter].config == {"retention.ms": "7200000"}
    assert specs[topics.training].config == {"retention.ms": "1800000"}
    assert specs[topics.forget].config == {"retention.ms": "1800000"}
    assert specs[topics.forget].keyed_by == "user" and specs[topics.forget].partitions == topics._partitions
    defaults = {spec.name: spec.config for spec in Topics(Settings()).specs()}
    assert defaults[Topics(Settings()).deadletter]["retention.ms"] == str(7 * 24 * 3_600_000)
