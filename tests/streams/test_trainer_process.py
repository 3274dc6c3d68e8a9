"""The trainer child process: it learns what the worker submits, reports what it could not learn
from, and publishes snapshots."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from model.candidate_features import N_CANDIDATE_FEATURES
from model.config import ModelConfig, initial_weights
from model.examples import Example, pack_examples
from model.features import UserContext
from model.snapshot import Snapshot
from streams.learning.trainer_process import TrainerProcess, TrainerReport

CONFIG = ModelConfig(item_buckets=64, category_buckets=16, text_buckets=64)


def _clicks(feature: float) -> bytes:
    return pack_examples(
        [
            Example(UserContext.empty(), f"i{n}", "c", (feature,) * N_CANDIDATE_FEATURES, engaged=float(n % 2))
            for n in range(8)
        ]
    )


def _collect(
    trainer: TrainerProcess,
    seen: list[TrainerReport],
    enough: Callable[[list[TrainerReport]], bool],
    timeout_s: float = 120.0,
) -> None:
    deadline = time.monotonic() + timeout_s  # the child imports TensorFlow first
    while not enough(seen):
        assert time.monotonic() < deadline, f"the trainer reported {seen}"
        seen += trainer.reports()
        time.sleep(0.05)


def test_a_step_that_is_not_finite_is_reported_as_skipped_and_snapshots_follow() -> None:
    resume = Snapshot(version=1, config=CONFIG, weights=initial_weights(CONFIG, 0)).to_bytes()
    trainer = TrainerProcess(resume, snapshot_interval_s=0.5)
    seen: list[TrainerReport] = []

    def steps(n: int) -> Callable[[list[TrainerReport]], bool]:
        return lambda reports: sum(r.examples > 0 for r in reports) >= n

    try:
        trainer.submit([_clicks(float("inf"))], 1.0, 1)
        _collect(trainer, seen, steps(1))
        trainer.submit([_clicks(0.5)], 2.0, 1)
        _collect(trainer, seen, steps(2))
        _collect(trainer, seen, lambda reports: any(r.snapshot is not None for r in reports))
    finally:
        trainer.stop()
    bad, good = [r for r in seen if r.examples > 0]
    assert (bad.examples, bad.skipped) == (8, 1)
    assert (good.examples, good.skipped) == (8, 0)
    report = next(r for r in seen if r.snapshot is not None)
    assert Snapshot.from_bytes(report.snapshot).version == report.version > 1


ORPHAN_PARENT = """
import sys, time
from model.config import ModelConfig, initial_weights
from model.snapshot import Snapshot
from streams.learning.trainer_process import TrainerProcess
sys.path.insert(0, sys.argv[1])
from test_trainer_process import _clicks
config = ModelConfig()
trainer = TrainerProcess(Snapshot(version=1, config=config, weights=initial_weights(config, 0)).to_bytes(),
                         snapshot_interval_s=0.2)
print(trainer._proc.pid, flush=True)
deadline = time.monotonic() + 120
while not trainer.reports():  # TensorFlow is loaded and learning
    trainer.submit([_clicks(0.5)], time.time(), 1)
    assert time.monotonic() < deadline
    time.sleep(0.2)
for _ in range(10):  # snapshots of megabytes that nobody reads: the pipe fills up
    trainer.submit([_clicks(0.5)], time.time(), 1)
    time.sleep(0.2)
print("filled", flush=True)
time.sleep(600)
"""


def test_a_trainer_whose_worker_was_killed_exits_even_with_reports_nobody_read() -> None:
    # Seen here: a trainer outlived its SIGKILLed worker for 40 minutes. Its loop noticed the
    # orphaning, but exiting waited for its report queue to flush into a pipe nobody reads.
    with subprocess.Popen(
        [sys.executable, "-c", ORPHAN_PARENT, str(Path(__file__).parent)], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            child = psutil.Process(int(parent.stdout.readline()))
            assert parent.stdout.readline().strip() == "filled"
        finally:
            parent.kill()
    try:
        child.wait(timeout=20)  # the loop checks its parent at least once a second
    except psutil.TimeoutExpired:
        child.kill()
        raise AssertionError("the orphaned trainer did not exit") from None
