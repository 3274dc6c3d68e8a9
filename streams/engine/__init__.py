"""The engine: wiring of agents to processors (app), its HTTP API (web), gauges (monitor) and the
worker process (worker). Composition only: the rules live in ``streams.processors`` and ``state``."""
