"""Kafka plumbing the engine depends on: the patched Faust transport, acknowledged batches, topic
followers, the training topic's reader and the broker probe."""
