"""The streaming side of shopguide: event contracts, configuration and topics at this level; the
processors, the engine, Kafka plumbing, the learning loop, tools, test helpers and benchmarks below."""
