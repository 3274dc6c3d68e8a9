"""Kafka plumbing the engine depends on: the patched Faust transport, acknowledged batches, the
delivery of outputs (retries, dead letters for records refused for good), topic followers, the
training topic's reader, the broker probe, and what differs against the embedded broker."""
