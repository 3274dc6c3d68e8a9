"""Helpers for tests and benchmarks: a real broker and workers driven with deadlines (harness),
and Hypothesis strategies for hostile input (fuzzing)."""
