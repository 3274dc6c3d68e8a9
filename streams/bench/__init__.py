"""The benchmark harness, ``shopguide bench``: how fast, how fresh and how big the engine is on
this machine, each figure beside a ceiling or reference measured in the same run.

One concept per module: :mod:`~streams.bench.shop` (the simulated shop and its skew),
:mod:`~streams.bench.loadgen` (the load generator process), :mod:`~streams.bench.ceilings` (aiokafka
and bare Faust ceilings), :mod:`~streams.bench.measure` (what is read off a run),
:mod:`~streams.bench.report` (JSON, markdown, plots) and :mod:`~streams.bench.runner` (the run).
"""

from streams.bench.command import register

__all__ = ["register"]
