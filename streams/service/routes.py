"""The guide's HTTP routes: the shopper's page and its API, ``/ask``, gaps, health and metrics.

A shopper is whoever holds a valid session token (``Authorization: Bearer``, the ``sg_session``
cookie the page keeps, or ``?token=`` on the first visit); the feed stream and every action are
scoped to that shopper, and a token never opens another shopper's feed (403).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.engine.web import Access
from streams.errors import InvalidEvent
from streams.events import CLICK_ACTIONS, ID_MAX, Click, parse_question
from streams.service.feeds import sse_event

if TYPE_CHECKING:
    from streams.service.server import GuideService

COOKIE = "sg_session"
KEEPALIVE_S = 15.0
STATIC = {"page.js": "text/javascript", "page.css": "text/css", "feed.png": "image/png"}


def _page_file(name: str) -> bytes:
    return resources.files("streams.service").joinpath("page", name).read_bytes()


def _bad_id(value: str) -> bool:
    return not value or len(value) > ID_MAX or value.strip() != value or any(ord(c) < 32 for c in value)


def build_app(service: GuideService) -> web.Application:
    s = service.settings
    signer = service.signer
    access = Access(s)  # the API tokens of SHOPGUIDE_API_TOKENS: the shop's backend
    index = _page_file("index.html")
    static = {
        name: _page_file(name) for name in STATIC if resources.files("streams.service").joinpath("page", name).is_file()
    }

    def shopper(request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else request.cookies.get(COOKIE) or request.query.get("token")
        return signer.verify(token, time.time()) if token else None

    def error(status: int, reason: str) -> web.Response:
        return web.json_response({"error": reason}, status=status)

    def with_session(response: web.StreamResponse, token: str) -> web.StreamResponse:
        response.set_cookie(COOKIE, token, max_age=int(s.guide_session_ttl_s), httponly=True, samesite="Strict")
        return response

    async def page(request: web.Request) -> web.StreamResponse:
        token = request.query.get("token")
        user = request.query.get("user")
        if token is not None:
            if signer.verify(token, time.time()) is None:
                return web.Response(status=403, text="invalid or expired session token")
            return with_session(web.HTTPFound(request.path), token)
        if user is not None:
            if not s.guide_demo_login:
                return web.Response(status=403, text="demo login is off (SHOPGUIDE_GUIDE_DEMO_LOGIN)")
            if _bad_id(user):
                return web.Response(status=400, text="malformed shopper id")
            return with_session(web.HTTPFound(request.path), signer.mint(user, time.time()))
        return web.Response(
            body=index, content_type="text/html", charset="utf-8", headers={"Cache-Control": "no-cache"}
        )

    async def static_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in static:
            raise web.HTTPNotFound()
        return web.Response(body=static[name], content_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    async def session(request: web.Request) -> web.Response:
        user = shopper(request)
        if user is None:
            return error(401, "no valid session token")
        return web.json_response({"user_id": user, "demo_login": s.guide_demo_login})

    async def feed(request: web.Request) -> web.StreamResponse:
        user = shopper(request)
        wanted = request.match_info["user_id"]
        if user is None:
            return error(401, "no valid session token")
        if user != wanted:
            return error(403, "a session opens only its own shopper's feed")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        sub = service.hub.subscribe(user)
        try:
            await response.write(b"retry: 1000\n\n")
            last = request.headers.get("Last-Event-ID")
            rec = service.hub.latest(user)
            if rec is not None and service.hub.event_id(rec) != last:
                sub.wake()
            while not service.closing.is_set():
                if await sub.next(KEEPALIVE_S):
                    rec = service.hub.latest(user)
                    if rec is not None:
                        view = service.shelf.feed(user, rec, time.time())
                        await response.write(sse_event(service.hub.event_id(rec), view))
                else:
                    await response.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            service.hub.unsubscribe(sub)
        return response

    async def item(request: web.Request) -> web.Response:
        details = service.shelf.details(request.match_info["item_id"], time.time())
        if details is None:
            return error(404, "unknown item")
        return web.json_response(details)

    async def action(request: web.Request) -> web.Response:
        user = shopper(request)
        if user is None:
            return error(401, "no valid session token")
        try:
            body = await request.json()
            item_id, kind = str(body["item_id"]), str(body["action"])
        except (ValueError, KeyError, TypeError):
            return error(400, 'expected {"item_id": ..., "action": ...}')
        if kind not in CLICK_ACTIONS or _bad_id(item_id):
            return error(400, f"action is one of {', '.join(sorted(CLICK_ACTIONS))}, item_id a valid id")
        category = service.shelf.category_of(item_id)
        if category is None:
            return error(404, "unknown item")
        click = Click(f"page-{uuid.uuid4().hex}", user, item_id, kind, time.time(), category)
        await service.send_click(click)
        service.metrics.actions.labels(kind).inc()
        return web.json_response({"event_id": click.event_id}, status=202)

    async def ask(request: web.Request) -> web.Response:
        backend = access.token_of(request.headers.get("Authorization")) is not None
        user = None if backend else shopper(request)
        if not backend and user is None and s.api_token_list:
            return error(401, "a bearer token of SHOPGUIDE_API_TOKENS or a shopper's session is required")
        raw = await request.read()
        try:
            question = parse_question(raw, need_event_id=False)
        except InvalidEvent as exc:
            service.metrics.invalid.labels("http", exc.reason).inc()
            return web.json_response({"error": str(exc), "reason": exc.reason}, status=400)
        if user is not None and user != question.user_id:
            return error(403, "a session asks only as its own shopper")
        return web.json_response(await service.desk.answer(question, "http"))

    async def gaps(request: web.Request) -> web.Response:
        item_id = request.match_info["item_id"]
        if _bad_id(item_id):
            return error(400, "malformed item id")
        return web.json_response(service.gaps.of(item_id))

    async def livez(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def healthz(request: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "status": "ok" if service.ready else "starting",
            "shelf_items": len(service.shelf),
            "encoder_available": service.knowledge.encoder_available,
            "feeds": len(service.hub),
        }
        return web.json_response(body, status=200 if service.ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        text = generate_latest(service.metrics.registry)
        return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def closing(app: web.Application) -> None:
        service.closing.set()
        service.hub.wake_all()

    app = web.Application(client_max_size=64 * 1024)
    app.on_shutdown.append(closing)
    app.add_routes(
        [
            web.get("/", page),
            web.get("/items/{item_id}", page),
            web.get("/static/{name}", static_file),
            web.get("/api/session", session),
            web.get("/api/users/{user_id}/feed", feed),
            web.get("/api/items/{item_id}", item),
            web.post("/api/actions", action),
            web.post("/ask", ask),
            web.get("/items/{item_id}/gaps", gaps),
            web.get("/livez", livez),
            web.get("/healthz", healthz),
            web.get("/readyz", healthz),
            web.get("/metrics", metrics),
        ]
    )
    return app
