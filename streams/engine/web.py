"""The worker's small HTTP API. Reads of a user's or item's state are routed by Faust to the worker
that owns the key's partition, so any worker answers for any key.

The API serves personal data, so every path but the probes, ``/metrics`` and ``/model`` needs a
bearer token (``SHOPGUIDE_API_TOKENS``) unless the API was explicitly opened
(``SHOPGUIDE_API_OPEN``); each client (its token, else its address) has a token bucket of requests
(429 beyond it); Faust's own ``/table`` and ``/router`` views are off (see ``streams.engine.app``);
a key whose owner cannot be reached is answered 503 with Retry-After; responses name no
server version, and a malformed request is answered with its status alone, never
with its own bytes echoed, and logged without a traceback (an oversized one once per interval).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Protocol

import aiohttp
import aiohttp.web_server
import faust
from aiohttp import web as aio
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler
from faust import web
from yarl import URL

from model.attribution import Tally
from model.covisitation import CovisIndex
from model.related import bought_together, similar
from state.catalog import Catalog
from state.errors import StateDecodeError
from state.item import ItemState
from state.user import UserState
from streams import messages
from streams.events import id_error
from streams.settings import Settings

log = logging.getLogger(__name__)

#: Paths anyone may call: the probes, the Prometheus scrape and the model's version and age.
OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/model"})
#: Clients whose buckets are remembered; the least recently seen are forgotten beyond it.
MAX_CLIENTS = 10_000
#: Oversized or malformed requests are logged at most once per this many seconds.
BAD_REQUEST_LOG_S = 60.0
SERVER = "shopguide"
#: ``?k=`` of the related-items routes: 10 unless asked, at most this many.
RELATED_MAX = 100
#: Seconds ``GET /experiments`` waits for each other worker's figures.
PEER_TIMEOUT_S = 2.0


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, refilled at ``rate`` a second; the
    buckets of at most :data:`MAX_CLIENTS` clients are kept (least recently seen forgotten)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, float(burst), clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def wait(self, client: str) -> float:
        """0 when ``client`` may make a request now (and it is counted), else seconds to wait."""
        now = self._clock()
        tokens, at = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return 0.0 if allowed else (1.0 - tokens) / self._rate


class Access:
    """Who may call the API, and how often."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens = [t.encode() for t in settings.api_token_list]
        self._open = settings.api_open and not self._tokens
        self.limiter = RateLimiter(settings.api_rate, settings.api_burst, clock)

    def token_of(self, authorization: str | None) -> str | None:
        """The valid bearer token of an ``Authorization`` header, else None (compared in constant time)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[len("Bearer ") :].strip().encode()
        valid = False
        for token in self._tokens:
            valid |= hmac.compare_digest(given, token)
        return given.decode() if valid else None

    def refusal(self, request: aio.Request) -> aio.Response | None:
        """The answer to a request that may not go on (429, 401), or None."""
        token = self.token_of(request.headers.get("Authorization"))
        wait = self.limiter.wait(f"token:{token}" if token else f"addr:{request.remote}")
        if wait:
            return aio.json_response(
                {"error": "too many requests"}, status=429, headers={"Retry-After": str(max(1, round(wait)))}
            )
        if token is None and not self._open and request.path not in OPEN_PATHS:
            return aio.json_response(
                {"error": "a bearer token is required"}, status=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return None


class _QuietRequestHandler(RequestHandler):
    """aiohttp's connection handler, answering a request it could not parse (or a failing handler)
    with the bare status: aiohttp's own answer echoes the offending bytes, names its version and
    logs a traceback for each."""

    _last_logged = float("-inf")  # monotonic time of the last summary line (all connections)
    _unlogged = 0

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> aio.StreamResponse:
        if status >= 500:
            log.error("internal error answering %s", request.path if request is not None else "?", exc_info=exc)
        else:
            cls = type(self)
            cls._unlogged += 1
            now = time.monotonic()
            if now - cls._last_logged >= BAD_REQUEST_LOG_S:
                kind = "oversized" if isinstance(exc, LineTooLong) else "malformed"
                log.warning("refused %d malformed or oversized HTTP requests (the last %s)", cls._unlogged, kind)
                cls._last_logged, cls._unlogged = now, 0
        if request is not None and request.writer.output_size > 0:
            raise ConnectionError("a response was sent already")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        response = aio.json_response({"error": phrase}, status=status, headers={"Server": SERVER})
        response.force_close()
        return response


async def _no_version(request: aio.Request, response: aio.StreamResponse) -> None:
    response.headers["Server"] = SERVER


def _peers(app: faust.App) -> list[str]:
    """The web addresses of the consumer group's other workers: those the partition assignment
    gives table partitions to (each worker advertises its canonical URL), other than this one."""
    own = URL(app.conf.canonical_url)
    urls = (URL(url) for url in app.router.tables_metadata())
    return sorted(str(url) for url in urls if (url.host, url.port) != (own.host, own.port))


async def _peer_tally(app: faust.App, url: str, headers: dict[str, str]) -> Tally | None:
    """Another worker's own figures (``GET /experiments?scope=worker``), None when it does not
    answer them within :data:`PEER_TIMEOUT_S` (logged)."""
    try:
        async with app.http_client.get(
            f"{url}/experiments",
            params={"scope": "worker"},
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=PEER_TIMEOUT_S),
        ) as response:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            body = await response.json()
        tally = Tally()
        tally.add_report(body["figures"])
        return tally
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
        log.warning("experiments: no figures from %s (%r)", url, exc)
        return None


class EngineView(Protocol):
    """What the API reads of a worker: its app and settings, its two tables, and two reports."""

    app: faust.App
    settings: Settings
    users: faust.Table  # type: ignore[type-arg]
    items: faust.Table  # type: ignore[type-arg]
    catalog: Catalog

    def related_indexes(self) -> tuple[CovisIndex, CovisIndex]:
        """The served model's co-visitation and co-purchase indexes."""
        ...

    def readiness(self) -> dict[str, Any]:
        """``status`` is ``ok`` when the worker should get traffic, else why not."""
        ...

    def model_status(self) -> dict[str, Any]: ...

    def experiment_status(self) -> dict[str, Any]:
        """The experiments and their arms' figures on this worker (``figures``: a ``Tally.report``)."""
        ...

    def liveness(self) -> dict[str, Any]:
        """``status`` ``alive`` unless the worker needs a restart."""
        ...


def register_views(engine: EngineView) -> None:
    app = engine.app
    s = engine.settings
    access = Access(s)
    unreachable_logged = [float("-inf")]  # monotonic time of the last such log line
    aiohttp.web_server.RequestHandler = _QuietRequestHandler  # type: ignore[attr-defined]

    @aio.middleware
    async def guard(request: aio.Request, handler: Callable[[aio.Request], Awaitable[Any]]) -> Any:
        refusal = access.refusal(request)
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except aiohttp.ClientError as exc:
            # The key's partition belongs to a worker that cannot be reached (it died, and the
            # group has not given its partitions to another yet): a retry will be answered.
            now = time.monotonic()
            if now - unreachable_logged[0] >= BAD_REQUEST_LOG_S:
                log.warning("the worker owning %s is unreachable (answered 503): %s", request.path, exc)
                unreachable_logged[0] = now
            return aio.json_response(
                {"error": "the worker holding this key is unreachable; retry shortly"},
                status=503,
                headers={"Retry-After": "1"},
            )

    web_app = app.web.web_app  # type: ignore[attr-defined]  # Faust's aiohttp driver
    web_app.middlewares.append(guard)
    web_app.on_response_prepare.append(_no_version)

    def load_user(user_id: str) -> UserState | None:
        raw = engine.users.get(user_id)
        if raw is None:
            return None
        try:
            return UserState.from_bytes(raw)
        except StateDecodeError:
            return None

    @app.page("/livez")
    async def livez(self: web.View, request: web.Request) -> web.Response:
        """The process answers and is not stalled: restart it only when this fails."""
        body = engine.liveness()
        return self.json(body, status=200 if body["status"] == "alive" else 503)

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        """Caught up with the catalog and the model, and the broker reachable: send it traffic."""
        body = engine.readiness()
        return self.json(body, status=200 if body["status"] == "ok" else 503)

    @app.page("/model")
    async def model(self: web.View, request: web.Request) -> web.Response:
        return self.json(engine.model_status())

    @app.page("/experiments")
    async def experiments(self: web.View, request: web.Request) -> web.Response:
        """The experiments, and their arms' figures summed over the group's workers (each asked
        for its own with ``?scope=worker``); ``unreachable``: the workers whose figures are missing."""
        body = engine.experiment_status()
        if request.query.get("scope") == "worker":
            return self.json({**body, "scope": "worker"})
        tally = Tally()
        tally.add_report(body["figures"])
        peers = _peers(app)
        auth = {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
        answers = await asyncio.gather(*(_peer_tally(app, url, auth) for url in peers))
        for peer in answers:
            if peer is not None:
                tally.add_report(peer.report())
        unreachable = [url for url, peer in zip(peers, answers, strict=True) if peer is None]
        body.update(figures=tally.report(), scope="cluster", workers=len(peers) + 1, unreachable=unreachable)
        return self.json(body)

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

    def related_k(request: web.Request, item_id: str) -> tuple[int, str]:
        """``k`` of a related-items request, or (status, error) to answer instead."""
        error = id_error(item_id)
        k = request.query.get("k", "10")
        if not error and not (k.isdigit() and 1 <= int(k) <= RELATED_MAX):
            error = f"k must be an integer 1..{RELATED_MAX}"
        if error:
            return 400, error
        if item_id not in engine.catalog:
            return 404, f"unknown item {item_id!r}"
        return int(k), ""

    @app.page("/items/{item_id}/similar")
    async def item_similar(self: web.View, request: web.Request, item_id: str) -> web.Response:
        """Items viewed with this one (co-visitation of the served model's index), then popular ones
        of its category; answered by any worker, from the clicks it processed."""
        k, error = related_k(request, item_id)
        if error:
            return self.json({"error": error}, status=k)
        found = similar(item_id, engine.related_indexes()[0], engine.catalog, k)
        items = [{"item_id": i, "score": round(w, 6), "source": source} for i, w, source in found]
        return self.json({"item_id": item_id, "items": items})

    @app.page("/items/{item_id}/bought-together")
    async def item_bought_together(self: web.View, request: web.Request, item_id: str) -> web.Response:
        """Items bought by the shoppers who bought this one (co-purchase); any worker answers."""
        k, error = related_k(request, item_id)
        if error:
            return self.json({"error": error}, status=k)
        found = bought_together(item_id, engine.related_indexes()[1], engine.catalog, k)
        return self.json({"item_id": item_id, "items": [{"item_id": i, "score": round(w, 6)} for i, w in found]})

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
