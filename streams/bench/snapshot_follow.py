"""``bench --only snapshots``: what following the trainer's snapshots costs a worker, in process.

A trainer resumed from the shipped warm start (as a new shop's is) learns from a synthetic Zipf
click stream (20,000 shoppers, 100,000 items) and exports a snapshot
after each ``examples`` examples (about a second of its learning on this machine). Each export is
published twice: as a full snapshot every time (the reference: ``SHOPGUIDE_SNAPSHOT_FULL_EVERY=1``)
and as the settings publish it (full snapshots with deltas between them). Each publication's
signed records are taken by its own assembler and model keeper exactly as a worker takes them
(verify and assemble, decode or apply to the base, check and swap in, store full snapshots),
the two in turn, alternating which goes first. Figures: bytes on the topic per snapshot, and the
CPU of this process (every thread) per snapshot to take it and to encode it at the trainer. Not
included: the Kafka client's fetching and parsing, which grow with the bytes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from model.scoring import load_warm_start
from model.snapshot import Snapshot
from model.snapshot_delta import SnapshotEncoder
from state.catalog import Catalog
from streams.learning.model_keeper import ModelKeeper, RollbackRule, decode
from streams.learning.snapshot_topic import SnapshotAssembler, snapshot_records
from streams.settings import Settings

KEY = b"bench-snapshot-key-32-bytes-long"
DTYPE = "float16"  # what the trainer publishes


class _Follower:
    """One worker's snapshot intake: what ``Engine._apply_snapshot_record`` does with each record."""

    def __init__(self, start: Snapshot, catalog: Catalog, directory: Path) -> None:
        self.assembler = SnapshotAssembler(KEY)
        self.keeper = ModelKeeper(catalog, 3600.0, directory, keep=3, rule=RollbackRule(), start=start)
        self.outcomes: dict[str, int] = {}

    def take(self, records: list[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            published = self.assembler.add(key, value)
            for problem in self.assembler.rejected:
                self._count(self.keeper.refuse(problem.reason, str(problem)))
            self.assembler.rejected.clear()
            if published is None:
                continue
            base = None
            if published.base is not None:
                base = self.keeper.base_for(published.base, published.version)
                if base is None:
                    self._count("not_applied")
                    continue
            delta = None if base is None else (base.version, published.data)
            self._count(self.keeper.consider(decode(published.data, base), published.version, delta))
        self.keeper.flush()

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def measure(settings: Settings, snapshots: int, examples: int, seed: int = 0) -> dict[str, Any]:
    """Bytes and CPU per snapshot, full snapshots only and with deltas, over ``snapshots`` exports."""
    import tensorflow as tf

    from model.offline.speed import synthetic_stream
    from model.training import Trainer

    try:  # as the trainer process runs
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran in this process (a test run): it keeps its threads
        pass
    rng = np.random.default_rng(seed)
    # About 7 examples per click learnt from: enough clicks for every export's examples.
    stream, catalog, _, _, _ = synthetic_stream(rng, 20_000, 100_000, 1 + snapshots * examples // 7, every=1)
    start = load_warm_start()
    trainer = Trainer(start.config, seed=seed, resume=start)
    trainer.learn_many(stream[:512])  # compile
    modes = {
        "full": SnapshotEncoder(DTYPE, 1, settings.snapshot_full_interval_s),
        "deltas": SnapshotEncoder(DTYPE, settings.snapshot_full_every, settings.snapshot_full_interval_s),
    }
    sizes: dict[str, list[int]] = {m: [] for m in modes}
    take_ms: dict[str, list[float]] = {m: [] for m in modes}
    encode_ms: dict[str, list[float]] = {m: [] for m in modes}
    kinds: list[bool] = []
    with tempfile.TemporaryDirectory(prefix="shopguide-bench-snapshots-") as tmp:
        followers = {m: _Follower(start, catalog, Path(tmp) / m) for m in modes}
        for i in range(snapshots):
            trainer.learn_many(stream[512 + i * examples : 512 + (i + 1) * examples])
            snap = trainer.export(extra={"trained_until": float(i)})
            for mode in list(modes)[:: 1 if i % 2 else -1]:
                began = time.process_time()
                data, base = modes[mode].encode(snap)
                encode_ms[mode].append(1000 * (time.process_time() - began))
                records = snapshot_records(data, snap.version, KEY, base)
                sizes[mode].append(sum(len(v or b"") + len(k) for k, v in records))
                if mode == "deltas":
                    kinds.append(base is None)
                began = time.process_time()
                followers[mode].take(records)
                take_ms[mode].append(1000 * (time.process_time() - began))
        final = {m: f.keeper.snapshot for m, f in followers.items()}
        same = all(
            final["full"].weights[n].tobytes() == final["deltas"].weights[n].tobytes()
            for n in final["full"].serving_weights()
        )
        outcomes = {m: f.outcomes for m, f in followers.items()}
    return {
        "snapshots": snapshots,
        "examples_per_snapshot": examples,
        "full_every": settings.snapshot_full_every,
        "full_interval_s": settings.snapshot_full_interval_s,
        "full_snapshots_among_deltas": sum(kinds),
        "served_weights_equal": same and final["full"].version == final["deltas"].version,
        "outcomes": outcomes,
        **{
            f"{mode}_{name}": value
            for mode in modes
            for name, value in (
                ("bytes_mean", float(np.mean(sizes[mode]))),
                ("bytes_max", int(max(sizes[mode]))),
                ("take_cpu_ms_mean", float(np.mean(take_ms[mode]))),
                ("take_cpu_ms_p50", float(np.median(take_ms[mode]))),
                ("encode_cpu_ms_mean", float(np.mean(encode_ms[mode]))),
            )
        },
        "delta_bytes": [s for s, full in zip(sizes["deltas"], kinds, strict=True) if not full],
    }
