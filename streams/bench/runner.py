"""The benchmark run: every section in order, each on fresh topics with its own worker, under a
progress display.

Sections (``--only`` picks some):

* ``click``: the click path in this process, without Kafka (``streams.bench.clickpath``): CPU per
  click of new shoppers, of returning shoppers with full histories, and per event of the
  throughput section's mix fed as a drain.
* ``snapshots``: following the trainer's snapshots in this process (``streams.bench.snapshot_follow``):
  bytes and worker CPU per snapshot, full snapshots only and with deltas between them.
* ``ceilings``: the aiokafka pipe and the bare Faust agents (counting; forwarding the engine's
  way) over the throughput backlog.
* ``throughput``: a worker drains a backlog of simulated clicks and reviews that is bigger than it
  can take in ``--duration``; events/s in the steady window, from the outputs' ``published_ts``.
* ``latency``: the load generator offers clicks and reviews at each fixed rate; ``ts`` to
  ``published_ts`` of each recommendation, beside what a plain consumer of the clicks sees in the
  same run (the transport's share) and, before the worker starts, at the same rates with nothing
  else running (the transport alone). Freshness probes, the model snapshot age and the worker's
  memory are taken here too.
* ``returning``: a worker drains backlogs of a shop whose every shopper already has a full
  history (seeded into the users table's changelog): events/s and CPU per event of returning
  shoppers, whose clicks cost the most (their pools are the largest).
* ``growth``: per-event CPU and latency at growing user and item counts. Users are seeded into the
  users table's changelog (the worker recovers them at start, as after a restart), because a
  million users through the real pipeline would take most of an hour.
* ``replay``: the Taobao stream as fast as the engine takes it, with the online hit rate.

Every figure is kept beside a reference measured in the same run, because the machine is shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
from kafka.admin import NewTopic
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from model.config import initial_weights
from model.offline.datasets import default_path
from model.scoring import load_warm_start
from model.snapshot import Snapshot, SnapshotStore
from state.user import RECENT_MAX
from streams.bench import clickpath, snapshot_follow
from streams.bench.measure import (
    Metrics,
    ProcessSample,
    SpeedProbe,
    per_second,
    percentiles,
    read_outputs,
    sample_process,
    table_size,
)
from streams.bench.shop import SimulatedShop
from streams.events import Click
from streams.settings import Settings
from streams.testing.harness import TopicReader
from streams.tools.broker import EmbeddedBroker, free_port
from streams.tools.children import die_with_parent
from streams.tools.cluster import WorkerProcess, child_env, get_json
from streams.tools.producer import EventProducer
from streams.topics import Topics, admin_client, create_topics

SECTIONS = (
    "click",
    "snapshots",
    "ceilings",
    "throughput",
    "latency",
    "returning",
    "growth",
    "replay",
    "page",
    "guide",
)
#: Sections that need no broker.
IN_PROCESS = frozenset({"click", "snapshots"})
#: Events per second of backlog per second of window: above the engine's goal (5,000/s) and the
#: bare Faust agent (about 4,400-5,400/s here), so that the engine cannot drain it within the window.
BACKLOG_EPS = 8000


@dataclass(frozen=True)
class Plan:
    """What a run measures and for how long (``--quick`` shrinks every size)."""

    duration_s: float = 30.0  # the throughput window; each latency rate runs this long too
    rates: tuple[int, ...] = (1000, 3000)
    users: int = 100_000  # shoppers of the throughput and latency sections
    items: int = 10_000
    growth_users: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    growth_items: tuple[int, ...] = (1_000, 10_000, 100_000)
    growth_drain_events: int = 8_000  # each backlog whose drain gives one cost per event
    growth_drains: int = 3  # backlogs per point: the point's cost is their median
    growth_s: float = 20.0  # the light load that gives each point's latency
    returning_users: int = 10_000  # shoppers of the returning section, each seeded with a full history
    ceiling_s: float = 12.0  # longest each bare Faust ceiling runs
    replay_limit: int = 0  # Taobao events (0: all)
    replay_s: float = 600.0  # longest the replay runs
    drain_s: float = 60.0  # longest wait, after a fixed-rate load, for the worker to catch up
    trainer_warmup_s: float = 80.0  # longest light load before the latency phases (see _warm_up)
    forward_ceiling: bool = True  # also measure a Faust agent forwarding each event as the engine sends
    click_clicks: int = 2048  # timed clicks of each kind in the click section
    click_shoppers: int = 256  # returning shoppers of the click section (one click each per batch)
    click_mix: int = 8192  # timed events of the click section's drain mix (after as many untimed)
    snapshot_count: int = 60  # trainer exports of the snapshots section
    snapshot_examples: int = 4096  # examples learnt before each (about a second of training here)
    guide_items: int = 10_000  # the shop indexed by the guide section
    guide_sentences: int = 100_000
    sections: tuple[str, ...] = SECTIONS
    profile: bool = False

    @classmethod
    def quick(cls, duration_s: float | None = None) -> Plan:
        return cls(
            duration_s=duration_s or 4.0,
            users=2_000,
            items=500,
            growth_users=(1_000, 10_000),
            growth_items=(100, 1_000),
            growth_drain_events=1_500,
            growth_drains=1,
            growth_s=4.0,
            returning_users=500,
            ceiling_s=3.0,
            replay_limit=5_000,
            drain_s=5.0,
            trainer_warmup_s=4.0,
            click_clicks=512,
            click_shoppers=32,
            click_mix=512,
            snapshot_count=6,
            snapshot_examples=512,
            guide_items=300,
            guide_sentences=3_000,
        )

    @property
    def warmup_s(self) -> float:
        """Start of every window that is not measured (group join, first RocksDB reads)."""
        return min(2.0, self.duration_s / 4)

    def growth_points(self) -> list[tuple[int, int]]:
        """(users, items): users grow at the middle item count, items at the middle user count."""
        mid_users = self.growth_users[len(self.growth_users) // 2]
        mid_items = self.growth_items[len(self.growth_items) // 2]
        points = [(u, mid_items) for u in self.growth_users]
        return points + [(mid_users, i) for i in self.growth_items if (mid_users, i) not in points]


def machine() -> dict[str, Any]:
    freq = psutil.cpu_freq()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "cpu_mhz": round(freq.current) if freq else None,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and the engine files that differ from it (a shared work tree often
    holds someone's unfinished change, and the workers run whatever is there)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "streams", "state", "model"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "modified": []}
    modified = [line[3:] for line in status.splitlines() if not line[3:].startswith("streams/bench/")]
    return {"commit": commit, "modified": modified}


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


@dataclass
class _Phase:
    """One fixed-rate load of the latency or growth sections."""

    tag: str
    rate: int
    start: float = 0.0
    end: float = 0.0
    load: dict[str, float] = field(default_factory=dict)
    series: list[dict[str, float]] = field(default_factory=list)


class Bench:
    def __init__(self, plan: Plan, base: Settings, console: Console, report_dir: Path) -> None:
        self.plan = plan
        self.base = base
        self.console = console
        self.report_dir = report_dir
        self.work = Path(tempfile.mkdtemp(prefix="shopguide-bench-"))
        self.results: dict[str, Any] = {
            "machine": machine(),
            "code": code_version(),
            "plan": asdict(plan),
            "notes": [],
        }
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<11}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._backlog: tuple[Settings, int] | None = None

    # ------------------------------------------------------------------ orchestration

    def run(self) -> dict[str, Any]:
        with contextlib.ExitStack() as stack:
            stack.callback(shutil.rmtree, self.work, True)
            if not set(self.plan.sections) - IN_PROCESS:
                self.results["broker"] = "none (in-process sections only)"
            elif "SHOPGUIDE_BROKER" in os.environ:
                self.results["broker"] = self.base.broker
            else:
                broker = EmbeddedBroker(log_path=self.work / "broker.log").start()
                stack.callback(broker.stop)  # after every worker: callbacks run last-in first-out
                self.base = self.base.with_(broker=broker.address)
                self.results["broker"] = "embedded (Tansu, in memory)"
            with self.progress:
                for section in self.plan.sections:
                    try:
                        getattr(self, f"_{section}")()
                    except (RuntimeError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
                        # One failed section (a worker that crashed) must not lose the others' figures.
                        self.results.setdefault("errors", {})[section] = str(exc)[-4000:]
                        self.note(f"{section} failed: {str(exc).splitlines()[0][:300]} (see errors in the JSON)")
        self.results["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        return self.results

    def note(self, text: str) -> None:
        self.results["notes"].append(text)
        self.progress.console.print(f"[yellow]note[/]: {text}")

    def _settings(self, name: str) -> Settings:
        """Fresh topics, consumer group and data directory: no phase sees another's events."""
        run = uuid.uuid4().hex[:6]
        settings = self.base.with_generated_secrets().with_(
            topic_prefix=f"bench-{name}-{run}.",
            app_id=f"bench-{name}-{run}",
            data_dir=self.work / f"{name}-{run}",
            web_port=free_port(),
            # One compile of the kernels for every phase's workers and every run.
            kernel_cache_dir=self.base.kernel_cache_dir or str(self.base.data_dir.resolve() / "numba-cache"),
        )
        create_topics(settings)
        return settings

    def _spawn(self, settings: Settings, module: str, *args: str) -> _Child:
        log = self.work / f"{module}-{uuid.uuid4().hex[:6]}.log"
        return _Child([sys.executable, "-m", f"streams.bench.{module}", *args], child_env(settings), log)

    def _loadgen(self, settings: Settings, *args: str, processes: int = 1) -> dict[str, Any]:
        """Run the load generator (``processes`` shards at once for ``users``) to its end."""
        if processes == 1:
            return self._spawn(settings, "loadgen", *args).result()
        procs = [self._spawn(settings, "loadgen", *args, "--shard", f"{k}/{processes}") for k in range(processes)]
        parts = [p.result() for p in procs]
        seconds = max(p["seconds"] for p in parts)
        sent = sum(p["sent"] for p in parts)
        return {"sent": sent, "seconds": seconds, "rate": sent / seconds if seconds else 0.0}

    @contextlib.contextmanager
    def _worker(
        self, settings: Settings, task: Any, ready_timeout_s: float = 300.0, kind: type[WorkerProcess] = WorkerProcess
    ) -> Iterator[WorkerProcess]:
        worker = kind(settings, self.work / f"{settings.app_id}-{kind.__name__}.log").start()
        try:
            self.progress.update(task, status="worker starting")
            worker.wait_ready(ready_timeout_s)
            yield worker
        except OSError as exc:
            raise RuntimeError(f"{exc!r}; the worker's log:\n{worker.log_tail()}") from exc
        finally:
            self.progress.update(task, status="worker stopping")
            worker.stop()

    def _wait_catalog(self, worker: WorkerProcess, items: int, task: Any, stall_s: float = 15.0) -> None:
        """Until the worker's item view holds every item, or stops growing for ``stall_s`` (then
        the run goes on with the items it has, and says so)."""
        last, since = -1, time.monotonic()
        while True:
            _, health = get_json(worker.url + "/readyz")
            loaded = (health or {}).get("catalog_items", 0)
            if loaded >= items:
                return
            if loaded != last:
                last, since = loaded, time.monotonic()
            elif time.monotonic() - since > stall_s:
                self.note(
                    f"{worker.settings.app_id}: the worker's item view stopped at {loaded:,} of the "
                    f"{items:,} catalog records produced (records the engine did not process)"
                )
                return
            self.progress.update(task, status=f"catalog {loaded:,}/{items:,}")
            time.sleep(0.5)

    def _watch(
        self,
        worker: WorkerProcess,
        topics: Topics,
        task: Any,
        until: Callable[[list[dict[str, float]]], bool],
        label: str,
        timeout_s: float = 3600.0,
        model_age: bool = False,
    ) -> list[dict[str, float]]:
        """Poll the worker once a second until ``until(series)`` is true: live status, and the
        series of (time, processed events, CPU seconds, RSS and, with ``model_age``, the served
        snapshot's age when the worker knows it) samples it is given."""
        series: list[dict[str, float]] = []
        assert worker.proc is not None
        deadline = time.monotonic() + timeout_s
        while not until(series):
            if time.monotonic() > deadline or not worker.alive:
                raise TimeoutError(f"{label} the worker made no progress; its log:\n{worker.log_tail()}")
            proc = sample_process(worker.proc.pid)
            with contextlib.suppress(OSError):
                processed = Metrics.scrape(worker.url).processed(topics.clicks, topics.reviews)
                series.append({"t": time.time(), "processed": processed, "cpu_s": proc.cpu_s, "rss_mb": proc.rss_mb})
                if model_age:
                    status, model = get_json(worker.url + "/model")
                    if status == 200 and model.get("snapshot_age_s") is not None:
                        series[-1]["snapshot_age_s"] = float(model["snapshot_age_s"])
            eps = 0.0
            if len(series) >= 2:
                a, b = series[-2], series[-1]
                eps = (b["processed"] - a["processed"]) / max(b["t"] - a["t"], 1e-9)
            self.progress.update(task, status=f"{label} {eps:,.0f} ev/s, worker {proc.rss_mb:,.0f} MB")
            time.sleep(1.0)
        return series

    # ------------------------------------------------------------------ backlog, ceilings, throughput

    def backlog(self, task: Any) -> tuple[Settings, int]:
        """Fresh topics holding clicks and reviews to drain, shared by the ceilings and the
        engine's throughput so that they all take the same messages."""
        if self._backlog is None:
            settings = self._settings("throughput")
            total = int(self.plan.duration_s * BACKLOG_EPS)
            self.progress.update(task, status=f"producing a backlog of {total:,} events")
            procs = [
                self._spawn(
                    settings,
                    "loadgen",
                    "events",
                    "--users",
                    str(self.plan.users),
                    "--items",
                    str(self.plan.items),
                    "--seed",
                    str(k),
                    "--tag",
                    f"tp{k}",
                    "--count",
                    str(total // 2),
                )
                for k in range(2)
            ]
            sent = sum(p.result()["sent"] for p in procs)
            self._backlog = (settings, sent)
        return self._backlog

    def _click(self) -> None:
        task = self.progress.add_task("click", total=None, status="in process, no Kafka")
        plan = self.plan
        shop = SimulatedShop(plan.users, plan.items)
        click = self.results["click"] = clickpath.measure(shop, plan.click_clicks, plan.click_shoppers, plan.click_mix)
        self.progress.update(
            task,
            total=1,
            completed=1,
            status=f"new {click['new_us_per_click']:,.0f} us, returning {click['returning_us_per_click']:,.0f} us "
            "per click",
        )

    def _snapshots(self) -> None:
        task = self.progress.add_task("snapshots", total=None, status="in process, no Kafka")
        plan = self.plan
        s = self.results["snapshots"] = snapshot_follow.measure(self.base, plan.snapshot_count, plan.snapshot_examples)
        self.progress.update(
            task,
            total=1,
            completed=1,
            status=f"{s['full_bytes_mean'] / 1e6:.2f} -> {s['deltas_bytes_mean'] / 1e6:.2f} MB and "
            f"{s['full_take_cpu_ms_mean']:.1f} -> {s['deltas_take_cpu_ms_mean']:.1f} ms CPU per snapshot",
        )

    def _ceilings(self) -> None:
        task = self.progress.add_task("ceilings", total=None, status="")
        settings, n = self.backlog(task)
        topics = Topics(settings)
        sink = f"{settings.topic_prefix}bench-sink"
        admin = admin_client(settings)
        try:
            admin.create_topics([NewTopic(sink, settings.partitions, settings.replication)])
        finally:
            admin.close()
        sources = f"{topics.clicks},{topics.reviews}"
        self.progress.update(task, status="aiokafka consume / produce / pipe")
        pipe = self._spawn(
            settings, "ceilings", "pipe", "--sources", sources, "--sink", sink, "--count", str(min(n, 200_000))
        ).result()
        self.results["aiokafka_pipe_eps"] = pipe["pipe_eps"]
        self.results["aiokafka_consume_eps"] = pipe["consume_eps"]
        self.results["aiokafka_produce_eps"] = pipe["produce_eps"]
        for mode in ("count", "forward") if self.plan.forward_ceiling else ("count",):
            self.progress.update(task, status=f"bare Faust agent ({mode})")
            result = self.work / f"bare-{mode}.json"
            proc = self._spawn(
                settings,
                "ceilings",
                "faust",
                "--mode",
                mode,
                "--sources",
                sources,
                "--sink",
                sink,
                "--count",
                str(n),
                "--seconds",
                str(self.plan.ceiling_s),
                "--result",
                str(result),
            )
            deadline = time.monotonic() + self.plan.ceiling_s + 120
            while not result.exists() and proc.running and time.monotonic() < deadline:
                time.sleep(0.2)
            proc.stop(timeout_s=1.0)  # its figure is written, and it has no state worth a clean stop
            if not result.exists():
                raise RuntimeError(f"the bare Faust agent ({mode}) wrote no result:\n{proc.log_tail()}")
            bare = json.loads(result.read_text())
            key = "faust_bare_eps" if mode == "count" else "faust_forward_eps"
            self.results[key] = bare["eps"]
        self.progress.update(
            task,
            total=1,
            completed=1,
            status=f"pipe {pipe['pipe_eps']:,.0f}, bare Faust {self.results['faust_bare_eps']:,.0f}, "
            f"forward {self.results.get('faust_forward_eps') or 0:,.0f} ev/s",
        )

    def _throughput(self) -> None:
        task = self.progress.add_task("throughput", total=None, status="")
        settings, n = self.backlog(task)
        topics = Topics(settings)
        plan = self.plan
        profile = None
        with self._worker(settings, task) as worker:
            assert worker.proc is not None
            self._watch(
                worker, topics, task, label="joining", timeout_s=120, until=lambda s: bool(s and s[-1]["processed"] > 0)
            )
            start = time.monotonic()
            if plan.profile:
                profile = self._profile(worker.proc.pid, plan.warmup_s, plan.duration_s)
            cpu_before = psutil.cpu_times()
            series = self._watch(
                worker,
                topics,
                task,
                label="draining",
                until=lambda s: (
                    time.monotonic() - start > plan.warmup_s + plan.duration_s + 1
                    or bool(s and s[-1]["processed"] >= n)
                ),
            )
            drained = bool(series and series[-1]["processed"] >= n)
            machine_busy = _busy_share(cpu_before, psutil.cpu_times())
        self.progress.update(task, status="reading the outputs")
        published = [
            m["published_ts"]
            for topic in (topics.recommendations, topics.sentiment)
            for m in read_outputs(settings, topic, lambda m: m.get("label") != "alert" and "published_ts" in m)
        ]
        if not published:
            raise RuntimeError("the engine published nothing from the backlog")
        first, last = min(published), max(published)
        w0, w1 = first + plan.warmup_s, min(first + plan.warmup_s + plan.duration_s, last)
        in_window = sum(1 for t in published if w0 <= t <= w1)
        outputs_eps = in_window / (w1 - w0) if w1 > w0 else 0.0
        # Events, not outputs: a worker behind its input answers a user's clicks of one batch once.
        window = [s for s in series if w0 <= s["t"] <= w1]  # the worker's samples in the window
        eps = outputs_eps
        if len(window) >= 2:
            eps = (window[-1]["processed"] - window[0]["processed"]) / (window[-1]["t"] - window[0]["t"])
        if drained and last < first + plan.warmup_s + plan.duration_s:
            self.note(
                f"the throughput backlog ({n:,} events) drained after {last - first:.1f} s: "
                "the window was shortened to its end"
            )
        self.results["throughput_eps"] = eps
        self.results["throughput"] = {
            "outputs_in_window": in_window,
            "outputs_eps": outputs_eps,
            "window_s": w1 - w0,
            "backlog": n,
            "series_eps": per_second(published, first, last),
            "worker_cpu_share": (window[-1]["cpu_s"] - window[0]["cpu_s"]) / (window[-1]["t"] - window[0]["t"])
            if len(window) >= 2
            else None,
            "machine_busy_share": machine_busy,
            "profile": profile.wait() if profile else None,
        }
        for ref in ("faust_bare_eps", "aiokafka_pipe_eps"):
            if self.results.get(ref):
                self.results.setdefault("ratios", {})[f"throughput/{ref}"] = eps / self.results[ref]
        self.progress.update(task, total=1, completed=1, status=f"{eps:,.0f} ev/s over {w1 - w0:.0f} s")

    def _profile(self, pid: int, delay_s: float, seconds: float, section: str = "throughput") -> _Profiler:
        return _Profiler(pid, delay_s, max(seconds, 2.0), self.report_dir / f"profile-{section}.txt")

    # ------------------------------------------------------------------ latency, freshness, memory

    def _latency(self) -> None:
        plan = self.plan
        task = self.progress.add_task("latency", total=None, status="")
        settings = self._settings("latency")
        topics = Topics(settings)
        self.progress.update(task, status=f"catalog of {plan.items:,} items")
        self._loadgen(settings, "catalog", "--users", str(plan.users), "--items", str(plan.items))
        phases = [_Phase(f"lat{rate}", rate) for rate in plan.rates]
        alone = self._transport_alone(task)
        with self._worker(settings, task) as worker:
            assert worker.proc is not None
            self._wait_catalog(worker, plan.items, task)
            idle = sample_process(worker.proc.pid)
            offered = self._warm_up(settings, worker, topics, task)
            transport = TopicReader(settings, topics.clicks)
            probes: list[Click] = []
            try:
                for n, phase in enumerate(phases):
                    proc = self._spawn(
                        settings,
                        "loadgen",
                        "events",
                        "--users",
                        str(plan.users),
                        "--items",
                        str(plan.items),
                        "--seed",
                        str(100 + n),
                        "--tag",
                        phase.tag,
                        "--rate",
                        str(phase.rate),
                        "--duration",
                        str(plan.duration_s),
                    )
                    phase.start = time.time()
                    prober = _Prober(settings, topics) if n == 0 else None
                    phase.series = self._watch(
                        worker,
                        topics,
                        task,
                        until=lambda _, p=proc: not p.running,
                        label=f"{phase.rate:,} ev/s offered:",
                        model_age=True,
                    )
                    if prober is not None:
                        probes = prober.stop()
                    phase.load = proc.result()
                    phase.end = time.time()
                    offered += phase.load["sent"]
                    self._drain(worker, topics, task, offered, phase)
                status, model = get_json(worker.url + "/model")
                loaded = sample_process(worker.proc.pid)
                hits = Metrics.scrape(worker.url)
            finally:
                transport.close()
        self.progress.update(task, status="reading the outputs")
        recs = read_outputs(settings, topics.recommendations, lambda m: "published_ts" in m)
        latency: dict[str, Any] = {}
        samples: dict[str, list[float]] = {}
        for phase in phases:
            since = phase.start + plan.warmup_s
            mine = [m for m in recs if str(m.get("trigger_event_id", "")).startswith(phase.tag + "-")]
            samples[str(phase.rate)] = [
                (m["published_ts"] - m["event_ts"]) * 1000 for m in mine if m["event_ts"] >= since
            ]
            engine = percentiles(samples[str(phase.rate)])
            seen = percentiles(_transport_ms(transport, phase.tag, since))
            latency[str(phase.rate)] = {
                **engine,
                "offered_eps": phase.rate,
                "achieved_eps": phase.load["rate"],
                "recommendations": len(mine),
                "transport": seen,
                "transport_alone": alone[str(phase.rate)],
                "ratio_p50_to_transport": _ratio(engine["p50"], seen["p50"]),
                "ratio_p99_to_transport": _ratio(engine["p99"], seen["p99"]),
            }
        self.results["latency_ms"] = latency
        self.results["_latency_samples"] = samples  # for the histogram, not the JSON
        self.results["freshness"] = _freshness(probes, recs, latency[str(phases[0].rate)]["transport"])
        # Under load, not after it: once the load stops the trainer catches up and the age is 0.
        first = phases[0]
        ages = [
            x["snapshot_age_s"] for x in first.series if "snapshot_age_s" in x and x["t"] >= first.start + plan.warmup_s
        ]
        self.results["snapshot_age_s"] = max(ages) if ages else None
        self.results["snapshot_age"] = {**percentiles(ages), "offered_eps": first.rate}
        if not ages:
            self.note(
                f"at {first.rate:,} ev/s the worker reported no snapshot age (no trainer progress "
                "or no snapshot from it yet): nothing to report"
            )
        if status == 200 and isinstance(model, dict):
            self.results["model"] = model
        users = table_size(settings.data_dir, "users")
        self._memory("latency", users.keys, loaded, idle, users.logical_bytes, users.disk_bytes)
        self.results["latency_hit_rate"] = _hit_rate(hits)
        summary = ", ".join(f"{r}: p50 {v['p50'] or 0:.1f} p99 {v['p99'] or 0:.1f} ms" for r, v in latency.items())
        self.progress.update(task, total=1, completed=1, status=summary)

    def _transport_alone(self, task: Any) -> dict[str, dict[str, Any]]:
        """Click ``ts`` to a plain consumer's receipt at each offered rate, with no worker running:
        the floor under any worker's latency on this broker and machine (the transport measured
        beside the worker shares the cores with it)."""
        settings = self._settings("transport")
        reader = TopicReader(settings, Topics(settings).clicks)
        seconds = min(self.plan.duration_s, 10.0)
        out: dict[str, dict[str, Any]] = {}
        try:
            for n, rate in enumerate(self.plan.rates):
                self.progress.update(task, status=f"the transport alone at {rate:,} ev/s")
                tag, since = f"alone{rate}", time.time() + self.plan.warmup_s
                self._loadgen(
                    settings,
                    "events",
                    "--users",
                    str(self.plan.users),
                    "--items",
                    str(self.plan.items),
                    "--seed",
                    str(200 + n),
                    "--tag",
                    tag,
                    "--rate",
                    str(rate),
                    "--duration",
                    str(seconds),
                )
                time.sleep(1.0)  # the reader's last fetch
                out[str(rate)] = percentiles(_transport_ms(reader, tag, since))
        finally:
            reader.close()
        return out

    def _warm_up(
        self,
        settings: Settings,
        worker: WorkerProcess,
        topics: Topics,
        task: Any,
        rate: int = 200,
        round_s: float = 10.0,
    ) -> int:
        """A light load until the worker serves a snapshot of its own trainer, then until it has
        caught up; returns the events offered. The latency phases then measure a worker in its
        steady state (the trainer loaded and learning, snapshots flowing), the only state in
        which a snapshot age exists, and not TensorFlow's start-up beside the first phase."""
        _, model = get_json(worker.url + "/model")
        start = model.get("version")
        offered = 0
        warm = _Phase("warm", rate)
        round_s = min(round_s, self.plan.trainer_warmup_s)
        rounds = max(1, round(self.plan.trainer_warmup_s / round_s))
        self.progress.update(task, status="warming up until the trainer's first snapshot is served")
        for n in range(rounds):
            load = self._loadgen(
                settings,
                "events",
                "--users",
                str(self.plan.users),
                "--items",
                str(self.plan.items),
                "--seed",
                str(90 + n),
                "--tag",
                f"warm{n}",
                "--rate",
                str(rate),
                "--duration",
                str(round_s),
            )
            offered += int(load["sent"])
            if get_json(worker.url + "/model")[1].get("version") != start:
                break
        else:
            self.note(f"no snapshot from the trainer after {rounds * round_s:.0f} s of warm-up at {rate} ev/s")
        warm.end = time.time()
        self._drain(worker, topics, task, offered, warm)
        return offered

    def _drain(self, worker: WorkerProcess, topics: Topics, task: Any, offered: int, phase: _Phase) -> None:
        """After a fixed-rate load, until the worker has processed everything offered so far (a
        phase's latency then counts all its events, the queued ones too), or ``drain_s``."""
        limit = self.plan.drain_s
        series = self._watch(
            worker,
            topics,
            task,
            label=f"draining {phase.rate:,} ev/s:",
            timeout_s=limit + 30,
            until=lambda s: bool(s and (s[-1]["processed"] >= offered or s[-1]["t"] - phase.end > limit)),
        )
        done = series[-1]["processed"] if series else 0
        if done < offered:
            self.note(
                f"{phase.rate:,} ev/s: {int(done):,} of the {offered:,} events offered so far were processed "
                f"{limit:.0f} s after the load stopped; the latency figures count only processed events"
            )

    def _memory(
        self, where: str, users: int, loaded: ProcessSample, idle: ProcessSample, logical: int, disk: int
    ) -> None:
        """Keep the worker's memory and state size from the run with the most users."""
        if users <= self.results.get("memory", {}).get("users", -1):
            return
        self.results["memory"] = {
            "measured_in": where,
            "users": users,
            "rss_mb": loaded.rss_mb,
            "rss_mb_before_load": idle.rss_mb,
            "state_bytes_per_user": logical / users if users else None,
            "disk_bytes_per_user": disk / users if users else None,
        }
        self.results["rss_mb"] = loaded.rss_mb
        self.results["state_bytes_per_user"] = logical / users if users else None

    # ------------------------------------------------------------------ growth

    def _returning(self) -> None:
        """Drains of a shop of returning shoppers: every user seeded with ``RECENT_MAX`` clicks,
        then backlogs of the shop's own mix over the same users, drained as the engine drains
        (a user's clicks of one batch that waited in Kafka share one answer, as in the throughput
        section). The median drain's events/s and CPU per event, and the answers per event; then
        as many backlogs drained by the processing-free worker (:mod:`streams.bench.shell_worker`)
        over the same states: the bound under the goal."""
        plan = self.plan
        users, items = plan.returning_users, plan.items
        task = self.progress.add_task("returning", total=plan.growth_drains, status="")
        settings = self._settings("returning")
        topics = Topics(settings)
        population = ("--users", str(users), "--items", str(items))
        self.progress.update(task, status=f"seeding {users:,} shoppers with {RECENT_MAX} clicks each")
        catalog = self._spawn(settings, "loadgen", "catalog", *population)
        self._loadgen(settings, "users", *population, "--clicks", str(RECENT_MAX), processes=2)
        catalog.result()
        with self._worker(settings, task, ready_timeout_s=900) as worker:
            assert worker.proc is not None
            self._wait_catalog(worker, items, task)
            # The first drain's middle: its backlog is produced first (a few seconds).
            profile = self._profile(worker.proc.pid, 5.0, 15.0, "returning") if plan.profile else None
            drains = []
            for k in range(plan.growth_drains):
                label = f"returning: drain {k + 1}/{plan.growth_drains}"
                drains.append(self._drain_cost(worker, settings, topics, population, f"r{k}", 20 + k, task, label))
                self.progress.advance(task)
            time.sleep(1.0)  # the last events' outputs
        tags = tuple(f"r{k}-" for k in range(plan.growth_drains))  # the drains' event ids: r{k}-{n}
        answers = read_outputs(
            settings, topics.recommendations, lambda m: str(m.get("trigger_event_id")).startswith(tags)
        )
        shell = []
        with self._worker(settings, task, ready_timeout_s=900, kind=ShellWorkerProcess) as worker:
            self._wait_catalog(worker, items, task)
            for k in range(plan.growth_drains):
                label = f"returning, processing-free: drain {k + 1}/{plan.growth_drains}"
                shell.append(self._drain_cost(worker, settings, topics, population, f"s{k}", 30 + k, task, label))
        drain = _median_drain(drains)
        self.results["returning"] = {
            "users": users,
            "items": items,
            "history": RECENT_MAX,
            "drains": drains,
            "answers_per_event": len(answers) / sum(d["sent"] for d in drains),
            "profile": profile.wait() if profile else None,
            "shell": {"drains": shell} | _median_drain(shell),
        } | drain
        cpu = drain["cpu_ms_per_event"] or 0.0
        self.progress.update(task, status=f"{drain['eps']:,.0f} ev/s, {cpu:.2f} ms CPU/event")

    def _growth(self) -> None:
        plan = self.plan
        points = plan.growth_points()
        task = self.progress.add_task("growth", total=len(points), status="")
        rows: list[dict[str, Any]] = []
        for users, items in points:
            label = f"{users:,} users, {items:,} items"
            # Every click answered, as at a load the worker keeps up with: the cost of a backlog
            # is otherwise lowered by the clicks that share their user's recommendation.
            settings = self._settings(f"growth-{users}-{items}").with_(coalesce_after_ms=1e12)
            topics = Topics(settings)
            self.progress.update(task, status=f"{label}: seeding")
            seed_start = time.monotonic()
            catalog = self._spawn(settings, "loadgen", "catalog", "--users", str(users), "--items", str(items))
            seeded = self._loadgen(settings, "users", "--users", str(users), "--items", str(items), processes=2)
            catalog.result()
            seed_s = time.monotonic() - seed_start
            tag = f"g{users}x{items}"
            population = ("--users", str(users), "--items", str(items))
            with self._worker(settings, task, ready_timeout_s=900) as worker:
                assert worker.proc is not None
                self._wait_catalog(worker, items, task)
                ready_s = time.monotonic() - seed_start - seed_s
                ready = sample_process(worker.proc.pid)
                drains = [
                    self._drain_cost(
                        worker,
                        settings,
                        topics,
                        population,
                        f"{tag}d{k}",
                        8 + k,
                        task,
                        f"{label}: drain {k + 1}/{plan.growth_drains}",
                    )
                    for k in range(plan.growth_drains)
                ]
                drain = _median_drain(drains)
                # Latency at a load the worker keeps up with: half what the first point drained.
                rate = rows[0]["latency_rate"] if rows else max(10, int(drain["eps"] / 2))
                before = Metrics.scrape(worker.url).processed(topics.clicks, topics.reviews)
                proc = self._spawn(
                    settings,
                    "loadgen",
                    "events",
                    *population,
                    "--seed",
                    "7",
                    "--tag",
                    tag,
                    "--rate",
                    str(rate),
                    "--duration",
                    str(plan.growth_s),
                )
                start = time.time()
                cpu0 = sample_process(worker.proc.pid)
                self._watch(worker, topics, task, until=lambda _, p=proc: not p.running, label=f"{label}:")
                proc.result()
                time.sleep(1.0)  # the last events' outputs
                cpu1 = sample_process(worker.proc.pid)
                processed = Metrics.scrape(worker.url).processed(topics.clicks, topics.reviews) - before
                hits = Metrics.scrape(worker.url)
            self.progress.update(task, status=f"{label}: reading the outputs")
            recs = read_outputs(
                settings,
                topics.recommendations,
                lambda m, t=tag: str(m.get("trigger_event_id", "")).startswith(t + "-"),
            )
            lat = percentiles(
                (m["published_ts"] - m["event_ts"]) * 1000 for m in recs if m["event_ts"] >= start + plan.warmup_s
            )
            table = table_size(settings.data_dir, "users")
            row = {
                "users": users,
                "items": items,
                "seeded_users": seeded["sent"],
                "seed_s": seed_s,
                "ready_s": ready_s,
                "cpu_ms_per_event": drain["cpu_ms_per_event"],
                "drain_eps": drain["eps"],
                "reference_ms": drain["reference_ms"],
                "cpu_per_reference": drain["cpu_per_reference"],
                "drains": drains,
                "latency_rate": rate,
                "events": processed,
                "light_cpu_ms_per_event": 1000 * (cpu1.cpu_s - cpu0.cpu_s) / processed if processed else None,
                "latency_ms": lat,
                "rss_mb": cpu1.rss_mb,
                "table_keys": table.keys,
                "state_bytes_per_user": table.logical_bytes / table.keys if table.keys else None,
                "disk_bytes_per_user": table.disk_bytes / table.keys if table.keys else None,
                "hit_rate": _hit_rate(hits),
            }
            rows.append(row)
            self.results["growth"] = rows
            self.results["growth_spread"] = _spread(rows, plan)
            self._memory(f"growth {label}", table.keys, cpu1, ready, table.logical_bytes, table.disk_bytes)
            self.progress.advance(task)
            self.progress.console.print(
                f"growth {label}: {row['cpu_ms_per_event'] or 0:.3f} ms CPU/event draining "
                f"({drain['eps']:,.0f} ev/s), p50 {lat['p50'] or 0:.1f} ms, p99 {lat['p99'] or 0:.1f} ms "
                f"at {rate} ev/s, RSS {cpu1.rss_mb:,.0f} MB"
            )
        self.progress.update(task, status="done")

    def _drain_cost(
        self,
        worker: WorkerProcess,
        settings: Settings,
        topics: Topics,
        population: tuple[str, ...],
        tag: str,
        seed: int,
        task: Any,
        label: str,
    ) -> dict[str, Any]:
        """The worker's CPU per event while it drains a backlog: its work per event, where at a
        light load the CPU of its timers, followers and polls would dominate the figure. Taken
        over the middle of the drain (from 20% to 90% of the backlog processed)."""
        assert worker.proc is not None
        n = self.plan.growth_drain_events
        base = Metrics.scrape(worker.url).processed(topics.clicks, topics.reviews)
        sent = self._loadgen(settings, "events", *population, "--seed", str(seed), "--tag", tag, "--count", str(n))[
            "sent"
        ]
        with SpeedProbe() as probe:
            series = self._watch(
                worker,
                topics,
                task,
                label=label,
                timeout_s=600,
                until=lambda s: bool(s and s[-1]["processed"] - base >= sent),
            )
        middle = [s for s in series if 0.2 * sent <= s["processed"] - base <= 0.9 * sent]
        if len(middle) < 2:  # a short drain (quick runs): the whole of it
            middle = series
        a, b = middle[0], middle[-1]
        events = b["processed"] - a["processed"]
        cpu = 1000 * (b["cpu_s"] - a["cpu_s"]) / events if events else None
        reference = probe.mean_ms(a["t"], b["t"])
        return {
            "sent": sent,
            "events": events,
            "eps": events / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0,
            "cpu_ms_per_event": cpu,
            "reference_ms": reference,
            "cpu_per_reference": cpu / reference if cpu is not None and reference else None,
        }

    # ------------------------------------------------------------------ replay

    def _page(self) -> None:
        """The shopping guide's answers and the shopper's page (streams/bench/page.py)."""
        from streams.bench.page import run_page_bench

        task = self.progress.add_task("page", total=None, status="worker, guide and browser")
        self.results["page"] = run_page_bench(self._settings("page"), self.work)
        self.progress.update(task, status="done")

    def _guide(self) -> None:
        """``/ask`` through the guide service at shop scale (streams/bench/guide_scale.py)."""
        from streams.bench.guide_scale import run_guide_bench

        task = self.progress.add_task("guide", total=None, status="indexing the shop, then asking")
        self.results["guide"] = run_guide_bench(
            self._settings("guide"), self.work, items=self.plan.guide_items, sentences=self.plan.guide_sentences
        )
        ask = self.results["guide"]["ask_ms"]
        self.progress.update(task, status=f"/ask p50 {ask['p50']:.1f} ms, p99 {ask['p99']:.1f} ms")

    def _replay(self) -> None:
        task = self.progress.add_task("replay", total=None, status="")
        path = default_path("taobao")
        if not path.exists():
            self.note(f"no Taobao data at {path}: replay skipped")
            return
        # Produced before the worker starts, every event of the replay looks late to it: with
        # coalescing, a user's clicks of one batch would be tested against the recommendation from
        # before the first of them, which measures load shedding, not learning while serving.
        settings = self._settings("replay").with_(coalesce_after_ms=1e12)
        topics = Topics(settings)
        self.progress.update(task, status="producing the Taobao stream")
        limit = ["--count", str(self.plan.replay_limit)] if self.plan.replay_limit else []
        args = ["taobao", "--path", str(path), *limit]
        sent = self._loadgen(settings, *args)["sent"]
        # The shipped warm start learned from this very stream: the worker starts from untrained
        # weights instead, as the offline replay's model does, so that the two hit rates compare.
        SnapshotStore(settings.data_dir / "snapshots").save(untrained_snapshot())
        with self._worker(settings, task) as worker:

            def drained(series: list[dict[str, float]]) -> bool:
                # Done when every event is processed, or nothing moved for 15 s (rejected rows).
                if not series:
                    return False
                stalled = [s for s in series if s["processed"] == series[-1]["processed"]]
                return (
                    series[-1]["processed"] >= sent
                    or series[-1]["t"] - stalled[0]["t"] > 15
                    or series[-1]["t"] - series[0]["t"] > self.plan.replay_s
                )

            self._watch(worker, topics, task, until=drained, label="replaying")
            hits = Metrics.scrape(worker.url)
        published = [m["published_ts"] for m in read_outputs(settings, topics.recommendations, lambda m: True)]
        span = max(published) - min(published) if len(published) > 1 else 0.0
        eps = len(published) / span if span else 0.0
        replay = {"events": sent, "recommendations": len(published), "eps": eps, **_hit_rate(hits)}
        # The offline protocol's denominator: every event, a user's first one included (online,
        # a user without a published recommendation yet cannot hit: that counts as a miss).
        clicks = hits.processed(topics.clicks)
        replay["hit_rate_all_events"] = replay["hits"] / clicks if clicks else None
        replay["offline"] = offline_hit_rate(self.plan.replay_limit)
        if len(published) < sent * 0.99:
            self.note(
                f"replay: {len(published):,} of {sent:,} Taobao events were processed within "
                f"{self.plan.replay_s:.0f} s; the hit rate covers those"
            )
        if self.results.get("faust_bare_eps"):
            replay["ratio_to_faust_bare"] = eps / self.results["faust_bare_eps"]
        self.results["replay"] = replay
        self.progress.update(
            task, total=1, completed=1, status=f"{eps:,.0f} ev/s, online hit rate {replay['hit_rate'] or 0:.3f}"
        )


class ShellWorkerProcess(WorkerProcess):
    """The processing-free worker (:mod:`streams.bench.shell_worker`)."""

    module = "streams.bench.shell_worker"


class _Child:
    """A harness child process (load generator, ceiling): its JSON result on stdout, its log in a
    file (a pipe nobody reads while it runs would stall a chatty child)."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "w") as err:
            self._proc = subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def result(self, timeout_s: float = 1800.0) -> dict[str, Any]:
        """Wait for the end; the last line it printed, parsed."""
        out, _ = self._proc.communicate(timeout=timeout_s)
        if self._proc.returncode != 0:
            raise RuntimeError(f"{self._proc.args} failed ({self._proc.returncode}):\n{self.log_tail()}")
        parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return parsed

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _busy_share(before: Any, after: Any) -> float:
    """Share of the machine's CPU time (all cores) that was not idle between two samples."""
    idle = (after.idle + getattr(after, "iowait", 0.0)) - (before.idle + getattr(before, "iowait", 0.0))
    total = sum(after) - sum(before)
    return 1.0 - idle / total if total > 0 else 0.0


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def untrained_snapshot() -> Snapshot:
    """The shipped model's architecture with the starting weights of the offline replay
    (``Trainer(config, seed=0)``)."""
    config = load_warm_start().config
    return Snapshot(version=1, config=config, weights=initial_weights(config, 0), extra={"source": "untrained, seed 0"})


#: The offline prequential figures of ``shopguide evaluate recommend --format taobao``.
OFFLINE_TAOBAO = Path(__file__).resolve().parents[2] / "model" / "results" / "recommend_taobao.json"


def offline_hit_rate(limit: int) -> dict[str, Any] | None:
    """The model's offline HitRate@10 on the whole Taobao stream, over every event and over the
    events of users with an earlier one (deterministic under its seed, so read from its results
    file), when the replay covered the whole stream too."""
    if limit or not OFFLINE_TAOBAO.exists():
        return None
    results = json.loads(OFFLINE_TAOBAO.read_text())
    model = results["results"]["model"]
    return {
        "hit_rate@10": model["hit_rate@10"],
        "n": results["n"],
        "source": OFFLINE_TAOBAO.name,
        "returning_hit_rate@10": model.get("returning_hit_rate@10"),
        "returning_n": model.get("returning_n"),
    }


def _hit_rate(metrics: Metrics) -> dict[str, Any]:
    trials = metrics.value("shopguide_online_trials_total")
    hits = metrics.value("shopguide_online_hits_total")
    return {"hits": hits, "trials": trials, "hit_rate": hits / trials if trials else None}


def _median_drain(drains: list[dict[str, Any]]) -> dict[str, Any]:
    """A point's figures: all those of its median drain by CPU per event over the machine's speed
    (by raw CPU per event if the speed was not measured in every drain), so that they describe one
    drain; a median per figure could mix the events/s of one drain with the CPU of another."""
    key = "cpu_per_reference" if all(d["cpu_per_reference"] is not None for d in drains) else "cpu_ms_per_event"
    measured = sorted((d for d in drains if d[key] is not None), key=lambda d: d[key])
    median = measured[(len(measured) - 1) // 2] if measured else drains[0]
    return {k: median[k] for k in ("eps", "cpu_ms_per_event", "reference_ms", "cpu_per_reference")}


def _spread(rows: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """How much the per-event cost and p50 latency move along each axis: max / min."""
    mid_users = plan.growth_users[len(plan.growth_users) // 2]
    mid_items = plan.growth_items[len(plan.growth_items) // 2]
    out: dict[str, Any] = {}
    for axis, fixed_key, fixed in (("users", "items", mid_items), ("items", "users", mid_users)):
        line = [r for r in rows if r[fixed_key] == fixed]
        for metric in ("cpu_per_reference", "cpu_ms_per_event", "light_cpu_ms_per_event"):
            values = [r[metric] for r in line if r[metric]]
            out[f"{metric}_max_over_min_by_{axis}"] = max(values) / min(values) if len(values) > 1 else None
        p50 = [r["latency_ms"]["p50"] for r in line if r["latency_ms"]["p50"]]
        out[f"latency_p50_max_over_min_by_{axis}"] = max(p50) / min(p50) if len(p50) > 1 else None
    return out


def _transport_ms(reader: TopicReader, tag: str, since: float) -> list[float]:
    """Click ``ts`` to the reader's receipt (ms) of the clicks of one load phase, from ``since``."""
    return [
        (r.received - r.value["ts"]) * 1000
        for r in reader.items
        if isinstance(r.value, dict)
        and str(r.value.get("event_id", "")).startswith(tag + "-")
        and r.value["ts"] >= since
    ]


def _freshness(probes: list[Click], recs: list[dict[str, Any]], transport: dict[str, Any]) -> dict[str, Any]:
    """For each probe (a known user's click in a category new to it): from the click's ``ts`` to
    the first recommendation for that user whose interests show the category."""
    delays, own = [], 0
    for click in probes:
        shown = [
            m
            for m in recs
            if m.get("user_id") == click.user_id and any(i["category"] == click.category for i in m["interests"])
        ]
        if shown:
            first = min(shown, key=lambda m: m["published_ts"])
            delays.append((first["published_ts"] - click.ts) * 1000)
            own += first["trigger_event_id"] == click.event_id
    summary = percentiles(delays)
    return {
        "probes": len(probes),
        "reflected": len(delays),
        "reflected_by_own_recommendation": own,
        "click_to_recommendation_ms": summary,
        "ratio_p50_to_transport": _ratio(summary["p50"], transport.get("p50")),
    }


class _Prober:
    """Once a second, a user who has history clicks in a category it never saw; the delay until
    the category shows in that user's recommendation is the engine's freshness."""

    def __init__(self, settings: Settings, topics: Topics, interval_s: float = 1.0) -> None:
        self._topic = topics.clicks
        self._producer = EventProducer(settings)
        self._interval = interval_s
        self._stop = threading.Event()
        self._probes: list[Click] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="freshness-prober")
        self._thread.start()

    def _send(self, click: Click) -> None:
        self._producer.send(self._topic, click.user_id.encode(), click.to_json())
        self._producer.flush()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(self._interval):
            user = f"fresh-{n}"
            self._send(Click(f"fresh-{n}-a", user, f"fresh-item-{n}-a", "click", time.time(), "fresh-home"))
            time.sleep(0.2)
            probe = Click(f"fresh-{n}-b", user, f"fresh-item-{n}-b", "cart", time.time(), f"fresh-cat-{n}")
            self._send(probe)
            self._probes.append(probe)
            n += 1

    def stop(self) -> list[Click]:
        self._stop.set()
        self._thread.join(10)
        self._producer.close()
        return list(self._probes)


def py_spy() -> str | None:
    """The py-spy executable on PATH or beside this Python, or None."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


class _Profiler:
    """py-spy sampling a worker for a while, in the background: where its time goes. Only the
    thread holding the GIL is sampled (``--gil``): a thread waiting for it would otherwise be
    counted at its last line (a socket write of the consumer's thread, say) as if it were busy."""

    def __init__(self, pid: int, delay_s: float, seconds: float, out: Path) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("bench --profile needs py-spy: pip install py-spy")
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self._cmd = [
            exe,
            "record",
            "-p",
            str(pid),
            "-d",
            str(int(seconds)),
            "-r",
            "200",
            "-f",
            "raw",
            "--full-filenames",
            "-o",
            str(out),
            "--nonblocking",
            "--gil",
        ]
        self._proc: subprocess.Popen[bytes] | None = None
        self._timer = threading.Timer(delay_s, self._start)
        self._timer.start()

    def _start(self) -> None:
        self._proc = subprocess.Popen(self._cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait(self) -> dict[str, Any]:
        self._timer.join()
        if self._proc is not None:
            self._proc.wait(60)
        from streams.bench.report import profile_summary

        return {"collapsed": str(self.out), **profile_summary(self.out)} if self.out.exists() else {}
