"""What a benchmark reads off a run: latency percentiles, output rates, a worker's CPU and memory,
its metrics, and the bytes its state takes.

Outputs are read from their topics after a phase, not while it runs, so that reading them costs
the worker nothing; only the 1 Hz metrics poll and the process probes run during a phase.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import Outcome
from streams.settings import Settings
from streams.tools.tail import messages


def percentiles(values_ms: Iterable[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/max/mean and the count; None figures when there are no values."""
    arr = np.fromiter(values_ms, dtype=np.float64)
    if not len(arr):
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "n": len(arr),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }


def read_outputs(
    settings: Settings, topic: str, keep: Callable[[dict[str, Any]], bool], idle_s: float = 1.0
) -> list[dict[str, Any]]:
    """Every JSON message of ``topic`` that ``keep`` accepts, from its beginning until no message
    arrives for ``idle_s``."""
    out = []
    for _, _, _, value in messages(settings, topic, True, idle_s):
        with contextlib.suppress(ValueError, TypeError):
            m = json.loads(value or b"")
            if isinstance(m, dict) and keep(m):
                out.append(m)
    return out


def per_second(timestamps: Iterable[float], start: float, end: float) -> list[int]:
    """Counts in each whole second from ``start`` (a throughput-over-time series)."""
    bins = max(1, int(np.ceil(end - start)))
    counts, _ = np.histogram(np.fromiter(timestamps, dtype=np.float64), bins=bins, range=(start, start + bins))
    return [int(c) for c in counts]


class Metrics:
    """A worker's ``/metrics``, parsed: ``value(name, **labels)`` sums the matching samples."""

    def __init__(self, text: str) -> None:
        self._samples = [s for family in text_string_to_metric_families(text) for s in family.samples]

    @classmethod
    def scrape(cls, base_url: str, timeout_s: float = 5.0) -> Metrics:
        with urllib.request.urlopen(base_url + "/metrics", timeout=timeout_s) as resp:  # noqa: S310 - local
            return cls(resp.read().decode())

    def value(self, name: str, **labels: str) -> float:
        return sum(
            s.value for s in self._samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def processed(self, *topics: str) -> float:
        return sum(self.value("shopguide_events_total", topic=t, outcome=Outcome.PROCESSED) for t in topics)


@dataclass(frozen=True, slots=True)
class ProcessSample:
    cpu_s: float  # user + system seconds since the process started
    rss_mb: float


def sample_process(pid: int) -> ProcessSample:
    proc = psutil.Process(pid)
    with proc.oneshot():
        cpu = proc.cpu_times()
        return ProcessSample(cpu.user + cpu.system, proc.memory_info().rss / 2**20)


@dataclass(frozen=True, slots=True)
class TableSize:
    keys: int  # keys of the table (Faust's own offset records excluded)
    logical_bytes: int  # sum of key and value lengths: what the state itself takes
    disk_bytes: int  # RocksDB files (SST, write-ahead log, manifest) on disk


def table_size(data_dir: Path, table: str) -> TableSize:
    """The size of a stopped worker's RocksDB table ``table`` (all its partitions)."""
    from rocksdict import AccessType, Rdict

    keys = logical = disk = 0
    for db in sorted(data_dir.glob(f"**/tables/{table}-*.db")):
        disk += sum(f.stat().st_size for f in db.rglob("*") if f.is_file())
        store = Rdict(str(db), access_type=AccessType.read_only())
        try:
            for key, value in store.items():
                if isinstance(key, bytes) and key.startswith(b"__faust"):
                    continue
                keys += 1
                logical += len(key) + len(value)  # type: ignore[arg-type]  # raw tables: bytes
        finally:
            store.close()
    return TableSize(keys, logical, disk)


def reference_cpu_ms(rounds: int = 2500) -> float:
    """CPU milliseconds of a fixed piece of work like a worker's own (JSON, dicts, sorting, small
    matrix products), run in this process: the machine's speed at that moment."""
    rng = np.random.default_rng(0)
    features = rng.random((150, 19), dtype=np.float32)
    kernel = rng.random((19, 32), dtype=np.float32)
    start = time.thread_time()  # this thread's alone: the process's other threads go on
    table: dict[str, float] = {}
    for i in range(rounds):
        body = json.loads(json.dumps({"user_id": f"u{i % 977}", "item_id": f"i{i % 313}", "ts": i * 0.5}))
        key = body["item_id"]
        table[key] = table.get(key, 0.0) + body["ts"]
        if i % 10 == 0:
            sorted(table.items(), key=lambda kv: kv[1], reverse=True)[:30]
            np.maximum(features @ kernel, 0.0).sum(axis=1).argsort()
    return 1000 * (time.thread_time() - start)


class SpeedProbe:
    """:func:`reference_cpu_ms` every ``interval_s`` in a thread, while a measurement runs.

    On this shared machine the same fixed work takes 19 to 42 ms of CPU from one second to the
    next, and a point of the growth section moved by up to 24% between two runs. A worker's CPU per
    event divided by the mean reference over the same seconds compares points measured minutes
    apart (the probe takes about a tenth of one core, the same at every point)."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []  # (wall time at the end, CPU ms)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speed-probe", daemon=True)

    def __enter__(self) -> SpeedProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            ms = reference_cpu_ms()
            self.samples.append((time.time(), ms))

    def mean_ms(self, start: float, end: float) -> float | None:
        """The mean reference of the samples that ended between ``start`` and ``end``."""
        window = [ms for t, ms in self.samples if start <= t <= end]
        return sum(window) / len(window) if window else None
