"""The worker's small HTTP API. Reads of a user's or item's state are routed by Faust to the worker
that owns the key's partition, so any worker answers for any key."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from faust import web

from state.errors import StateDecodeError
from state.item import ItemState
from state.user import UserState
from streams import messages
from streams.events import id_error

if TYPE_CHECKING:
    from streams.engine.app import Engine

log = logging.getLogger(__name__)


def register_views(engine: Engine) -> None:
    app = engine.app
    s = engine.settings

    def load_user(user_id: str) -> UserState | None:
        raw = engine.users.get(user_id)
        if raw is None:
            return None
        try:
            return UserState.from_bytes(raw)
        except StateDecodeError:
            return None

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        ready = engine.catalog_follower.caught_up.is_set() and engine.snapshot_follower.caught_up.is_set()
        watch = engine.broker_watch
        status = "ok" if ready else "starting"
        if not watch.up:
            status, ready = "broker_unreachable", False
        elif watch.missing:
            status, ready = "topics_missing", False  # a production Kafka lost them: an operator's call
        elif engine.delivery.lost:
            status, ready = "outputs_lost", False  # see shopguide_lost_messages_total
        body = {
            "status": status,
            "broker_down_since": watch.down_since,
            "catalog_items": len(engine.catalog),
            "model_version": engine.keeper.version,
            "outputs_lost": engine.delivery.lost,
        }
        return self.json(body, status=200 if ready else 503)

    @app.page("/model")
    async def model(self: web.View, request: web.Request) -> web.Response:
        snap = engine.keeper.snapshot
        hits, trials = engine.metrics.hit_rate
        progress = engine.trainer_progress
        trainer = engine.trainer
        return self.json(
            {
                "version": snap.version,
                "snapshot_age_s": engine.snapshot_age(),
                "trained_examples": snap.counters.get("examples", 0),
                "trained_until": snap.extra.get("trained_until"),
                "created": snap.created,
                "served_since": engine.keeper.swapped_at,
                "metrics": snap.metrics,
                "trainer": {
                    "trained_until": progress.trained_until if progress else None,
                    "newest_version": engine.assembler.newest,
                    "running_here": bool(trainer and trainer.alive),
                    "dropped_examples": trainer.dropped if trainer else 0,
                },
                "online": {"hits": hits, "trials": trials, "hit_rate": hits / trials if trials else None},
            }
        )

    @app.page("/users/{user_id}")
    @app.table_route(table=engine.users, match_info="user_id")
    async def user(self: web.View, request: web.Request, user_id: str) -> web.Response:
        error = id_error(user_id)
        if error:
            return self.json({"error": error}, status=400)
        state = load_user(user_id)
        if state is None:
            return self.json({"error": f"unknown user {user_id!r}"}, status=404)
        now = state.last_ts()
        return self.json(
            {
                "user_id": user_id,
                "counts": state.action_counts(),
                "recent_items": [
                    {"item_id": r.item_id, "action": r.action, "ts": r.ts, "category": r.category}
                    for r in reversed(state.recent)
                ],
                "interests": [
                    {"category": c, "weight": round(w, 6)}
                    for c, w in state.interest_weights(now, s.interest_half_life_s, 10)
                ],
                "bought": list(reversed(state.bought)),
                "reviews": state.reviews,
            }
        )

    @app.page("/recommendations/{user_id}")
    @app.table_route(table=engine.users, match_info="user_id")
    async def recommendations(self: web.View, request: web.Request, user_id: str) -> web.Response:
        error = id_error(user_id)
        if error:
            return self.json({"error": error}, status=400)
        state = load_user(user_id)
        if state is None or state.last is None:
            return self.json({"error": f"no recommendation for user {user_id!r} yet"}, status=404)
        return self.json(messages.recommendation_fields(user_id, state.last))

    @app.page("/items/{item_id}/sentiment")
    @app.table_route(table=engine.items, match_info="item_id")
    async def item_sentiment(self: web.View, request: web.Request, item_id: str) -> web.Response:
        error = id_error(item_id)
        if error:
            return self.json({"error": error}, status=400)
        raw = engine.items.get(item_id)
        if raw is None:
            return self.json({"error": f"unknown item {item_id!r}"}, status=404)
        try:
            item = ItemState.from_bytes(raw)
        except StateDecodeError:
            log.warning("unreadable state for an item: answered as unknown")
            return self.json({"error": f"no readable state for item {item_id!r}"}, status=404)
        f = item.figures()
        return self.json(
            {
                "item_id": item_id,
                "reviews": f.reviews,
                "positive_ratio": round(f.positive_ratio, 6),
                "recent_negative_ratio": round(f.recent_negative_ratio, 6),
                "recent_reviews": f.recent_reviews,
                "baseline_negative_ratio": round(f.baseline_negative_ratio, 6),
                "mean_rating": f.mean_rating,
                "alerting": item.alerting,
            }
        )
