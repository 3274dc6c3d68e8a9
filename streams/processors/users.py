"""The processors of the user-keyed topics: clicks, reviews and impressions, which change a
shopper's state and publish recommendations and sentiment."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from guide.aspects import aspects_of
from model.arms import BatchScorings, Pinned, Variants, serve
from model.attribution import Tally, attribution
from model.experiments import Experiment, ExperimentBook, rec_id
from model.rules import RuleBook
from model.serving import ServingModel
from state.catalog import Catalog
from state.user import ACTION_WEIGHT, PublishedRecommendation, UserState
from streams import messages
from streams.events import DISLIKE, Click, parse_click, parse_forget, parse_impression, parse_review
from streams.metrics import Metrics
from streams.processors.base import Clock, Incoming, Learn, Outgoing, ProcessorBase, Store
from streams.processors.resident import ResidentUsers
from streams.topics import Topics

log = logging.getLogger(__name__)

#: A shadow arm's recommendations hold this many items.
SHADOW_K = 10


class ActivityCounts:
    """Click counts per item, gathered between flushes so that the item table sees one message
    per item and interval instead of one per click."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[str, dict[str, float], float]] = {}

    def add(self, item_id: str, category: str, action: str, ts: float) -> None:
        entry = self._counts.get(item_id)
        if entry is None:
            self._counts[item_id] = (category, {action: 1.0}, ts)
            return
        cat, counts, last = entry
        counts[action] = counts.get(action, 0.0) + 1.0
        self._counts[item_id] = (category or cat, counts, max(last, ts))

    def __len__(self) -> int:
        return len(self._counts)

    def drain(self, topic: str) -> list[Outgoing]:
        out = [
            Outgoing(
                topic,
                item_id.encode(),
                json.dumps({"item_id": item_id, "category": cat, "counts": counts, "ts": ts}).encode(),
            )
            for item_id, (cat, counts, ts) in self._counts.items()
        ]
        self._counts.clear()
        return out


class ClickProcessor(ProcessorBase):
    """Clicks: update the user's state and publish a recommendation that already reflects the
    click. Users are scored together, in rounds in which each user appears once, so that every
    recommendation reflects exactly the clicks up to its own.

    A dislike is answered like a click, but it is no engagement: it only goes into the user's
    feedback (with the item's near neighbours, ``neighbours``), never into the action counts, the
    history, the indexes, popularity, the hit rate or the training examples.

    When the worker runs behind (a flood, a bot, a backlog after a restart: the click waited longer
    than ``coalesce_after_s`` in Kafka), a user's clicks in one batch share one recommendation,
    triggered by the last: every click still changes the state, but scoring, the expensive part,
    is paid once per user and batch, so a flood cannot starve the other users of the partition.
    Those clicks do not train the model either: one bot must not steer what everyone is
    recommended. A worker that keeps up answers every click."""

    def __init__(
        self,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        users: Store,
        catalog: Catalog,
        model: Callable[[], ServingModel],
        activity: ActivityCounts,
        *,
        top_k: int,
        interest_half_life_s: float,
        coalesce_after_s: float = 1.0,
        learn: Learn | None = None,
        on_hit: Callable[[int, bool], None] | None = None,
        resident: ResidentUsers | None = None,
        rules: RuleBook | None = None,
        experiments: ExperimentBook | None = None,
        tally: Tally | None = None,
        pinned: Pinned | None = None,
        variants: Variants | None = None,
        neighbours: Callable[[str], list[str]] | None = None,
        action_weights: Mapping[str, float] = ACTION_WEIGHT,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.users = users
        #: The merchandising rules every recommendation is built under (kept current by the engine).
        self.rules = rules if rules is not None else RuleBook()
        #: The experiments (kept current by the engine), what their arms did, and the pinned
        #: snapshot versions and trainer variants' models this worker holds (none by default).
        self.experiments = experiments if experiments is not None else ExperimentBook()
        self.tally = tally if tally is not None else Tally()
        self.pinned: Pinned = pinned if pinned is not None else (lambda version: None)
        self.variants: Variants = variants if variants is not None else (lambda name: None)
        #: A disliked item's near neighbours, demoted with it for a while (none by default).
        self.neighbours = neighbours if neighbours is not None else (lambda item_id: [])
        self.action_weights = action_weights
        #: Shared with every processor that writes the users' table (none resident by default).
        self.resident = resident if resident is not None else ResidentUsers(0)
        self.catalog = catalog
        self.model = model
        self.activity = activity
        self.top_k = top_k
        self.half_life = interest_half_life_s
        self.coalesce_after_s = coalesce_after_s
        self.learn = learn
        self.on_hit = on_hit

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        with self.resident.batch():
            return self._process(batch)

    def _process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        """The batch's outputs; its processed clicks and online hits are counted once, at the
        end (a batch that fails part-way is handled again and counted then)."""
        out: list[Outgoing] = []
        processed: dict[str, int] = {}
        hits = trials = 0
        model = self.model()  # one version for the whole batch, even if a new one arrives
        round_: dict[str, tuple[Incoming, Click, UserState]] = {}
        replays: dict[str, tuple[Click, UserState]] = {}  # per user, the redelivered click to answer again
        for msg in batch:
            click = self.admit(msg, lambda v: parse_click(v, self.clock()), lambda c: c.user_id, out)
            if click is None:
                continue
            behind = self.clock() - msg.timestamp_ms / 1000.0 > self.coalesce_after_s
            pending = round_.get(click.user_id)
            flooding = pending is not None and behind
            if flooding and pending is not None:
                state = pending[2]  # this click joins the unpublished one's answer
            else:
                if pending is not None:
                    out += self._publish(round_, model)
                state = self.resident.load(self.users, click.user_id, msg.handle)
            if state.applied.seen("clicks", msg.where, click.event_id):
                self.duplicate(msg, self.users, click.user_id, state.to_bytes())
                if not flooding:  # else the unpublished answer covers it
                    earlier = replays.pop(click.user_id, None)
                    if earlier is not None and not behind:
                        out += self._replay(*earlier)
                    replays[click.user_id] = (click, state)
                continue
            earlier = replays.pop(click.user_id, None)
            if earlier is not None:
                out += self._replay(*earlier)
            if click.action == DISLIKE:
                state.feedback.dislike(click.item_id, click.ts, self.neighbours(click.item_id))
            else:
                hit = self._engage(model, state, click, learn=not flooding)
                if hit is not None:
                    hits += hit
                    trials += 1
            state.applied.record("clicks", msg.where, click.event_id)
            round_[click.user_id] = (msg, click, state)
            processed[msg.topic] = processed.get(msg.topic, 0) + 1
        out += self._publish(round_, model)
        for click, state in replays.values():
            out += self._replay(click, state)
        for topic, n in processed.items():
            self.processed_many(topic, n)
        self.metrics.record_hits(hits, trials)
        return out

    def _engage(self, model: ServingModel, state: UserState, click: Click, *, learn: bool) -> bool | None:
        """An engagement's effects: training, the indexes, the state, popularity. Whether it hit
        the user's last recommendation (None without one), for the batch's hit rate."""
        category = click.category or self.catalog.category_of(click.item_id)
        hit = None
        if state.last is not None:
            hit = click.item_id in state.last.item_ids()
            # A variant's versions count on their own: its hits are not the main model's.
            if self.on_hit is not None and not self.experiments.variant_arm(state.last.experiment, state.last.arm):
                self.on_hit(state.last.model_version, hit)
            reason = attribution(state.last, click.item_id, click.action) if learn else None
            if reason is not None:  # a flood's later clicks are no answer to the recommendation
                last = state.last
                self.tally.attributed(last.experiment, last.arm, click.action)
                self.metrics.attributed.labels(last.experiment, last.arm, click.action, reason).inc()
        if self.learn is not None and learn:
            self.learn(model, state, click, category)  # from the state before the click
        model.observe_click(state, click.item_id, click.action, click.ts, category)
        state.apply_click(click.item_id, click.action, click.ts, category, self.half_life, self.action_weights)
        self.activity.add(click.item_id, category, click.action, click.ts)
        self.catalog.bump(click.item_id, category, click.action, click.ts)
        return hit

    def _replay(self, click: Click, state: UserState) -> list[Outgoing]:
        """Publish again the answer to a click the state already reflects: its outputs may not
        have reached the broker before a crash (the state is written first). The user's last
        recommendation, under this click's id when a later click's answer replaced its own (it
        then reflects those later clicks too); consumers drop repeats by ``trigger_event_id``.
        Behind, a user's redelivered clicks of one batch share one, like fresh ones."""
        if state.last is None:  # its answer was coalesced into one that was never published
            return []
        rec = state.last
        if rec.trigger_event_id != click.event_id:
            rec = dataclasses.replace(rec, trigger_event_id=click.event_id, event_ts=click.ts)
        self.metrics.republished.labels(self.topics.recommendations).inc()
        return [
            Outgoing(self.topics.recommendations, click.user_id.encode(), messages.recommendation(click.user_id, rec))
        ]

    def _publish(self, round_: dict[str, tuple[Incoming, Click, UserState]], model: ServingModel) -> list[Outgoing]:
        if not round_:
            return []
        entries = list(round_.values())
        round_.clear()
        now = self.clock()
        user_ids = [click.user_id for _, click, _ in entries]
        states = [state for _, _, state in entries]
        experiment = self.experiments.active
        arms = [experiment.arm_of(u) for u in user_ids] if experiment is not None else None
        scorings = BatchScorings()  # the shadow arm reuses what the served arms scored
        served = serve(
            model,
            self.pinned,
            self.rules,
            user_ids,
            states,
            arms,
            now=now,
            k=self.top_k,
            half_life_s=self.half_life,
            scorings=scorings,
            variants=self.variants,
        )
        out = []
        published_ts = self.clock()
        per_arm: dict[tuple[str, bool], int] = {}  # (arm, as asked) -> recommendations of this batch
        for n, ((msg, click, state), (rec, by, wanted)) in enumerate(zip(entries, served, strict=True)):
            state.last = PublishedRecommendation(
                items=rec.items,
                interests=rec.interests,
                model_version=by.version,
                trigger_event_id=click.event_id,
                event_ts=click.ts,
                published_ts=published_ts,
                reasons=rec.reasons,
            )
            if experiment is not None and arms is not None:
                arm = arms[n].name
                state.last.experiment, state.last.arm = experiment.experiment_id, arm
                state.last.rec_id = rec_id(click.user_id, click.event_id)
                per_arm[(arm, wanted)] = per_arm.get((arm, wanted), 0) + 1
            self.users.put(click.user_id, state.to_bytes(), msg.handle)
            out.append(
                Outgoing(
                    self.topics.recommendations,
                    click.user_id.encode(),
                    messages.recommendation(click.user_id, state.last),
                )
            )
            self.metrics.event_to_recommendation.observe(max(0.0, published_ts - click.ts))
        if experiment is not None:
            self._count_arms(experiment.experiment_id, per_arm)
            if experiment.shadow is not None:
                out += self._shadow(experiment, model, entries, user_ids, states, now, published_ts, scorings)
        self.metrics.recommendations.inc(len(entries))
        return out

    def _count_arms(self, experiment_id: str, per_arm: dict[tuple[str, bool], int]) -> None:
        """A batch's recommendations per arm, counted once per arm and batch."""
        for (arm, wanted), n in per_arm.items():
            self.tally.recommended(experiment_id, arm, n)
            self.metrics.arm_recommendations.labels(experiment_id, arm).inc(n)
            if not wanted:
                self.metrics.pinned_fallbacks.labels(experiment_id, arm).inc(n)

    def _shadow(
        self,
        experiment: Experiment,
        model: ServingModel,
        entries: list[tuple[Incoming, Click, UserState]],
        user_ids: list[str],
        states: list[UserState],
        now: float,
        published_ts: float,
        scorings: BatchScorings,
    ) -> list[Outgoing]:
        """The shadow arm's recommendations for the batch's users (``entries``, their ids and
        states as served), to the shadow topic only, from the served arms' ``scorings`` where
        they apply (no retrieval again)."""
        shadow = experiment.shadow_arm
        assert shadow is not None
        served = serve(
            model,
            self.pinned,
            self.rules,
            user_ids,
            states,
            [shadow] * len(entries),
            now=now,
            k=SHADOW_K,
            half_life_s=self.half_life,
            scorings=scorings,
            interests=False,  # a shadow message holds none
            variants=self.variants,
        )
        out = []
        fallbacks = 0
        for (_, click, _), (rec, by, wanted) in zip(entries, served, strict=True):
            fallbacks += not wanted
            shown = PublishedRecommendation(
                items=rec.items,
                interests=[],
                model_version=by.version,
                trigger_event_id=click.event_id,
                event_ts=click.ts,
                published_ts=published_ts,
                reasons=rec.reasons,
                experiment=experiment.experiment_id,
                arm=shadow.name,
                rec_id=rec_id(click.user_id, click.event_id),
            )
            out.append(Outgoing(self.topics.shadow, click.user_id.encode(), messages.shadow(click.user_id, shown)))
        self.metrics.shadow_recommendations.labels(experiment.experiment_id, shadow.name).inc(len(out))
        if fallbacks:
            self.metrics.pinned_fallbacks.labels(experiment.experiment_id, shadow.name).inc(fallbacks)
        return out


class ReviewProcessor(ProcessorBase):
    """Reviews: count them on the user, score their sentiment in one batched call, and re-key
    them by item so that the item's owner can keep exact per-item sentiment figures. A review the
    state already reflects is scored and re-keyed again (its outputs may have been lost)."""

    def __init__(
        self,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        users: Store,
        model: Callable[[], ServingModel],
        catalog: Catalog,
        learn: Learn | None = None,
        resident: ResidentUsers | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.users = users
        self.resident = resident if resident is not None else ResidentUsers(0)
        self.model = model
        self.catalog = catalog
        self.learn = learn

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        with self.resident.batch():
            return self._process(batch)

    def _process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        accepted = []
        model = self.model()
        for msg in batch:
            review = self.admit(msg, lambda v: parse_review(v, self.clock()), lambda r: r.user_id, out)
            if review is None:
                continue
            state = self.resident.load(self.users, review.user_id, msg.handle)
            if state.applied.seen("reviews", msg.where, review.event_id):
                # Its scored copy may not have reached the broker before a crash: sent again, the
                # item's owner drops it as a duplicate or publishes its sentiment once more.
                self.duplicate(msg, self.users, review.user_id, state.to_bytes())
                self.metrics.republished.labels(self.topics.item_reviews).inc()
                accepted.append(review)
                continue
            if self.learn is not None:
                self.learn(model, state, review, self.catalog.category_of(review.item_id))
            state.apply_review()
            state.applied.record("reviews", msg.where, review.event_id)
            self.users.put(review.user_id, state.to_bytes(), msg.handle)
            accepted.append(review)
            self.processed(msg)
        if accepted:
            scores = model.sentiment_many([r.text for r in accepted])
            threshold = model.sentiment_threshold  # the trained decision rule, not 0.5
            for review, score in zip(accepted, scores, strict=True):
                body: dict[str, object] = {
                    "event_id": review.event_id,
                    "user_id": review.user_id,
                    "item_id": review.item_id,
                    "rating": review.rating,
                    "ts": review.ts,
                    "score": float(score),
                    "positive": bool(score >= threshold),
                    "model_version": model.version,
                }
                if not body["positive"]:  # what it complains of, for the item's alert
                    body["aspects"] = aspects_of(review.text, None)
                out.append(Outgoing(self.topics.item_reviews, review.item_id.encode(), json.dumps(body).encode()))
        return out


class _UserTableProcessor(ProcessorBase):
    """A processor that only changes the users' table, sharing its resident states."""

    def __init__(
        self,
        topics: Topics,
        partitions: int,
        metrics: Metrics,
        users: Store,
        resident: ResidentUsers | None = None,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(topics, partitions, metrics, clock)
        self.users = users
        self.resident = resident if resident is not None else ResidentUsers(0)


class ImpressionProcessor(_UserTableProcessor):
    """Impressions (items shown to a shopper): counted per item on the user's feedback, once per
    event id, so that an item shown again and again without an action is demoted. Nothing is
    published: the user's next recommendation reflects them."""

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        with self.resident.batch():
            out: list[Outgoing] = []
            for msg in batch:
                shown = self.admit(msg, lambda v: parse_impression(v, self.clock()), lambda i: i.user_id, out)
                if shown is None:
                    continue
                state = self.resident.load(self.users, shown.user_id, msg.handle)
                if state.applied.seen("impressions", msg.where, shown.event_id):
                    self.duplicate(msg, self.users, shown.user_id, state.to_bytes())
                    continue
                state.feedback.show(shown.item_ids)
                state.applied.record("impressions", msg.where, shown.event_id)
                self.users.put(shown.user_id, state.to_bytes(), msg.handle)
                self.processed(msg)
            return out


class ForgetProcessor(_UserTableProcessor):
    """Requests to erase a user: the user's state goes from the table (a tombstone in its
    changelog, so standby copies and the compacted changelog lose it too; the event-id index of
    already applied events is part of that state) and the latest recommendation from the compacted
    recommendations topic (a tombstone keyed by the user). Logged without the user's id."""

    def process(self, batch: Sequence[Incoming]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for msg in batch:
            user_id = self.admit(msg, parse_forget, str, out)
            if user_id is None:
                continue
            self.users.delete(user_id, msg.handle)
            self.resident.drop(user_id)
            out.append(Outgoing(self.topics.recommendations, user_id.encode(), None))
            self.processed(msg)
        forgotten = sum(1 for o in out if o.topic == self.topics.recommendations)
        if forgotten:
            log.info("forgot %d users", forgotten)
        return out
