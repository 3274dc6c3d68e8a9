"""Command-line tools around the engine: the ``shopguide`` command (cli), the embedded broker,
worker processes on this machine and child processes that die with their parent, the producer,
replay, tail, the demo and its sample shop."""
