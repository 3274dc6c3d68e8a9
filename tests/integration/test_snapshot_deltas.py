"""Snapshot deltas through Kafka: workers that start late, restart, or miss a delta converge to the
trainer's newest model; an older version an experiment pins is loaded from what they stored; a
trainer variant's process serves an experiment's arm."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from model.snapshot import Snapshot, SnapshotStore, stored_weights
from model.snapshot_delta import encode_delta
from model.snapshot_versions import SnapshotVersions
from streams.bench.measure import Metrics
from streams.events import Click, Review, parse_experiment
from streams.learning.snapshot_topic import DELTA_PREFIX, MANIFEST_KEY, snapshot_records
from streams.partitioning import partition_for
from streams.testing.harness import Cluster, TopicReader, fresh_settings, wait_until
from streams.tools.broker import free_port
from streams.tools.children import die_with_parent
from streams.tools.cluster import WorkerProcess, child_env, get_json

pytestmark = pytest.mark.integration

CATEGORIES = ("shoes", "bags", "books", "tea")
FULL_EVERY = 4
VARIANTS = {"fast": {"learning_rate": 0.004, "item_learning_rate": 0.4}}


@pytest.fixture(scope="module")
def cluster(broker, tmp_path_factory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("deltas")
    settings = fresh_settings(
        broker,
        root,
        snapshot_full_every=FULL_EVERY,
        snapshot_full_interval_s=600.0,
        trainer_variants=json.dumps(VARIANTS),
    )
    cluster = Cluster(settings)
    cluster.start_worker(data_dir=root / "trainer")
    cluster.add_items("d", CATEGORIES)
    yield cluster
    cluster.close()


def version_of(worker: WorkerProcess) -> int:
    status, body = get_json(worker.url + "/model")
    assert status == 200, body
    return int(body["version"])


def published(cluster: Cluster) -> int:
    status, body = get_json(cluster.workers[0].url + "/model")
    assert status == 200, body
    return int(body["trainer"]["newest_version"])


_sent = 0


def train(cluster: Cluster, versions: int) -> int:
    """Clicks and reviews until the trainer has published ``versions`` more snapshots; the newest."""
    global _sent
    target = max(published(cluster), version_of(cluster.workers[0])) + versions

    def more() -> bool:
        global _sent
        for _ in range(60):
            n, _sent = _sent, _sent + 1
            learner, step = n % 30, n // 30
            item = 4 * ((3 * step + learner) % 10) + learner % 4
            click = Click(f"dl-{n}", f"learner-{learner}", f"d-{item}", "view", time.time(), CATEGORIES[item % 4])
            cluster.producer.send(cluster.topics.clicks, click.user_id.encode(), click.to_json())
            if n % 6 == 0:
                text = "great, love it" if n % 12 else "terrible, it broke"
                review = Review(f"dlr-{n}", f"learner-{learner}", f"d-{n % 40}", text, time.time(), 5 if n % 12 else 1)
                cluster.producer.send(cluster.topics.reviews, review.user_id.encode(), review.to_json())
        cluster.producer.flush()
        return published(cluster) >= target

    wait_until(more, 300, f"the trainer to publish {versions} more snapshots")
    return published(cluster)


def serve_the_same(workers: list[WorkerProcess], at_least: int) -> int:
    def same() -> int:
        versions = {version_of(w) for w in workers}
        return versions.pop() if len(versions) == 1 and min(versions) >= at_least else 0

    return int(wait_until(same, 60, f"every worker to serve the same version >= {at_least}"))


def manifests_of(reader: TopicReader) -> list[tuple[int, int | None]]:
    """(version, base) of every manifest read so far; base None: a full snapshot."""
    return [
        (r.value["version"], r.value.get("base"))
        for r in reader.items
        if r.key in (MANIFEST_KEY, DELTA_PREFIX + MANIFEST_KEY) and isinstance(r.value, dict)
    ]


def refusals(worker: WorkerProcess, reason: str) -> float:
    return Metrics.scrape(worker.url).value("shopguide_model_snapshots_rejected_total", reason=reason)


def test_a_worker_started_late_takes_the_newest_full_snapshot_and_delta(cluster, tmp_path):
    newest = train(cluster, 2 * FULL_EVERY)
    reader = TopicReader(cluster.settings, cluster.topics.snapshots)
    try:
        manifests = wait_until(
            lambda: (found := manifests_of(reader)) and max(v for v, _ in found) >= newest and found,
            30,
            "the snapshot topic's manifests",
        )
    finally:
        reader.close()
    bases = [base for _, base in manifests]
    fulls, deltas = bases.count(None), len(bases) - bases.count(None)
    assert fulls >= 2 and deltas >= 2 * (FULL_EVERY - 1), f"{fulls} full snapshots and {deltas} deltas published"
    late = cluster.start_worker(data_dir=tmp_path / "late", web_port=free_port(), train=False)
    assert version_of(late) >= newest  # ready means the snapshot topic was read up to its end
    serve_the_same(cluster.workers, newest)
    assert refusals(late, "no_base") == 0 and refusals(late, "integrity") == 0


def test_a_delta_missed_or_without_its_base_is_refused_and_the_next_one_converges(cluster):
    """Signed with the trainer's key, as if the records had been lost: a delta manifest whose
    chunks never arrived, then a delta naming a full snapshot that was never published."""
    workers = cluster.workers
    newest = serve_the_same(workers, published(cluster))
    key = cluster.settings.snapshot_key_bytes
    lost = snapshot_records(b"x" * 100, newest + 1, key, base=newest)[-1]
    cluster.producer.send(cluster.topics.snapshots, *lost)
    stored = SnapshotStore(workers[0].settings.data_dir / "snapshots").latest()
    assert stored is not None
    weights = stored_weights(stored.weights, "float16")
    unknown = Snapshot(newest + 3, stored.config, dict(stored.weights))
    delta = encode_delta(unknown, weights, newest + 2, "float16")
    for record in snapshot_records(delta, newest + 3, key, base=newest + 2):
        cluster.producer.send(cluster.topics.snapshots, *record)
    cluster.producer.flush()
    for worker in workers:
        wait_until(lambda w=worker: refusals(w, "no_base") >= 1, 30, "the delta without its base to be refused")
        assert refusals(worker, "incomplete") >= 1 and version_of(worker) < newest + 3
    after = train(cluster, 2)
    assert after > newest + 3
    serve_the_same(workers, after)


def test_a_restarted_worker_catches_up_on_full_snapshots_and_deltas_it_missed(cluster):
    worker = cluster.workers[1]
    worker.stop()
    cluster.workers.remove(worker)
    newest = train(cluster, FULL_EVERY + 2)  # a new full snapshot and deltas on it, while it was away
    restarted = cluster.start_worker(data_dir=worker.settings.data_dir, web_port=worker.settings.web_port, train=False)
    assert version_of(restarted) >= newest
    serve_the_same(cluster.workers, newest)
    assert refusals(restarted, "no_base") == 0


def shoppers(experiment: dict, prefix: str) -> dict[tuple[int, str], str]:
    """A shopper of each of the experiment's two arms in each of the four partitions."""
    parsed = parse_experiment(json.dumps(experiment).encode())
    people: dict[tuple[int, str], str] = {}
    for n in itertools.count():
        user = f"{prefix}-{n}"
        people.setdefault((partition_for(user, 4), parsed.arm_of(user).name), user)
        if len(people) == 8:
            return people
    raise AssertionError("unreachable")


_answered = itertools.count()


def answers(cluster: Cluster, people: dict[tuple[int, str], str]) -> dict[str, dict]:
    """The recommendations answering a fresh click of each of ``people``, by user."""
    ids = {user: f"{user}-{next(_answered)}" for user in people.values()}
    for user, event_id in ids.items():
        click = Click(event_id, user, "d-0", "view", time.time(), CATEGORIES[0])
        cluster.producer.send(cluster.topics.clicks, user.encode(), click.to_json())
    cluster.producer.flush()
    recs = cluster.recommendations.wait_for(
        lambda m: isinstance(m, dict) and m["trigger_event_id"] in ids.values(), len(ids), 60
    )
    return {r["user_id"]: r for r in recs}


def test_an_older_version_an_experiment_pins_is_loaded_from_the_stored_deltas_in_the_background(cluster):
    """Neither worker held the pinned version (none had served it while it was pinned): each loads
    it from its own data directory (a full snapshot and a delta) while the current model serves
    the arm; a version stored nowhere is counted once per worker and served by the current model."""
    workers = cluster.workers
    serving = serve_the_same(workers, train(cluster, 3))  # deltas both workers accepted and stored
    stored = [SnapshotVersions(SnapshotStore(w.settings.data_dir / "snapshots")).deltas() for w in workers]
    old = max(set.intersection(*(set(d) for d in stored)) - {serving})
    missing = 10**9
    body = {
        "experiment_id": "x-pin",
        "arms": [
            {"name": "old", "share": 0.5, "model": f"pinned:{old}"},
            {"name": "lost", "share": 0.5, "model": f"pinned:{missing}"},
        ],
    }
    people = shoppers(body, "pin")
    cluster.send("experiments", "x-pin", json.dumps(body).encode())

    def pinned_everywhere() -> dict[str, dict] | None:
        recs = answers(cluster, people)
        # A click answered before a worker read the experiment carries no arm: not yet.
        in_force = all(r.get("experiment") == "x-pin" for r in recs.values())
        return recs if in_force and all(r["model_version"] == old for r in recs.values() if r["arm"] == "old") else None

    recs = wait_until(pinned_everywhere, 60, f"the old arm to be served by version {old} on both workers")
    for (_, arm), user in people.items():
        assert recs[user]["arm"] == arm and recs[user]["experiment"] == "x-pin"
        if arm == "lost":
            assert recs[user]["model_version"] not in (old, missing)
    for worker in workers:
        metrics = Metrics.scrape(worker.url)
        loads = {o: metrics.value("shopguide_pinned_model_loads_total", outcome=o) for o in ("found", "unfound")}
        assert loads == {"found": 1, "unfound": 1}, loads
        assert metrics.value("shopguide_pinned_model_fallbacks_total", experiment="x-pin", arm="lost") >= 2
        status, body = get_json(worker.url + "/experiments?scope=worker")
        assert status == 200 and body["pinned_versions_held"] == [old], body
    cluster.producer.send(cluster.topics.experiments, b"x-pin", None)
    cluster.producer.flush()


def test_a_trainer_variant_learns_from_the_same_feed_and_serves_its_arm_while_named(cluster, tmp_path):
    """``shopguide trainer --variant fast`` as a process of its own: the workers follow its topic
    once an experiment names it, serve its arm with its snapshots (trained with its learning
    rates), and stop following it when the experiment is deleted."""
    body = {
        "experiment_id": "x-fast",
        "arms": [{"name": "main", "share": 0.5}, {"name": "fast", "share": 0.5, "model": "trainer:fast"}],
    }
    people = shoppers(body, "fast")
    with (tmp_path / "variant.log").open("wb") as log:
        trainer = subprocess.Popen(
            [sys.executable, "-m", "streams.tools.cli", "trainer", "--variant", "fast"],
            env=child_env(cluster.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),  # gone with the test run, however it ends
        )
    try:
        cluster.send("experiments", "x-fast", json.dumps(body).encode())

        def variant_everywhere() -> dict[str, dict] | None:
            answers(cluster, people)  # training examples for both trainers
            for worker in cluster.workers:
                status, own = get_json(worker.url + "/experiments?scope=worker")
                if status != 200 or own["variant_versions"].get("fast") is None:
                    return None
            return answers(cluster, people)

        recs = wait_until(variant_everywhere, 240, "both workers to serve the fast arm with the variant's model")
        # Each worker took the variant's snapshots, trained with its learning rates, and served
        # the arm with them; the other arm with the main model.
        taken: dict[str, set[int]] = {"main": set(), "fast": set()}
        for worker in cluster.workers:
            for arm, directory in (("main", "snapshots"), ("fast", "variants/fast")):
                taken[arm] |= set(SnapshotVersions(SnapshotStore(worker.settings.data_dir / directory)).versions())
            full = SnapshotStore(worker.settings.data_dir / "variants" / "fast").latest()
            assert full is not None and (full.config.learning_rate, full.config.item_learning_rate) == (0.004, 0.4)
        for (_, arm), user in people.items():
            assert recs[user]["arm"] == arm and recs[user]["model_version"] in taken[arm], (arm, recs[user], taken)

        # Both trainers start from the warm start, so their version numbers overlap: that the fast
        # arm is served by the variant's model shows in the fallbacks, which stop.
        def fallbacks() -> float:
            return sum(
                Metrics.scrape(w.url).value("shopguide_pinned_model_fallbacks_total", experiment="x-fast", arm="fast")
                for w in cluster.workers
            )

        before = fallbacks()
        answers(cluster, people)
        assert fallbacks() == before
        cluster.producer.send(cluster.topics.experiments, b"x-fast", None)
        cluster.producer.flush()
        for worker in cluster.workers:
            wait_until(
                lambda w=worker: get_json(w.url + "/experiments?scope=worker")[1]["variant_versions"] == {},
                30,
                "the workers to stop following the variant",
            )
    finally:
        trainer.terminate()
        try:
            trainer.wait(30)
        except subprocess.TimeoutExpired:
            trainer.kill()
            trainer.wait()
