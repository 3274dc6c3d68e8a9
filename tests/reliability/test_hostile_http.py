"""Thousands of generated hostile HTTP requests at a real worker, on every path it serves and some it
does not (Faust's table and router views included): never a 5xx, the worker stays up. Raw requests
are mostly refused by the HTTP parser; well-formed ones with hostile paths, ids and tokens reach the
views."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import urllib.parse
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.testing.harness import Cluster, fresh_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUESTS = 6000
WELL_FORMED = 4000
PATHS = (
    "/livez",
    "/readyz",
    "/metrics",
    "/model",
    "/users/",
    "/recommendations/",
    "/items/",
    "/experiments",
    "/table/users/",
    "/router/",
    "/",
    "//",
)
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT")


@pytest.fixture(scope="module")
def target(broker, tmp_path_factory) -> Iterator[tuple[Cluster, Counter[int]]]:
    # A high rate limit: the requests must reach the views, not stop at the limiter.
    cluster = Cluster(fresh_settings(broker, tmp_path_factory.mktemp("hostile")))
    cluster.start_worker()
    yield cluster, Counter()
    cluster.close()


def suffix() -> st.SearchStrategy[bytes]:
    text = st.text(max_size=120)
    quoted = text.map(lambda t: urllib.parse.quote(t, safe="").encode())
    return st.one_of(  # mostly well-formed paths, which reach the views
        quoted,
        quoted,
        quoted,
        text.map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=80),
        st.sampled_from(
            [
                b"u-1",
                b"u-1/sentiment",
                b"i-1/similar?k=5",
                b"i-1/bought-together?k=-1",
                b"x" * 300,
                b"%00",
                b"..%2F..%2Fetc",
                b"a/b/c/d",
            ]
        ),
    )


def headers(token: str) -> st.SearchStrategy[list[bytes]]:
    auth = st.sampled_from(
        [f"Bearer {token}", "Bearer wrong", "Bearer ", "Basic eDp5", token, f"Bearer {token}x", "Bearer \x00"]
    ).map(lambda v: b"Authorization: " + v.encode())
    other = st.one_of(
        st.integers(-5, 10**12).map(lambda n: b"Content-Length: %d" % n),
        st.just(b"Transfer-Encoding: chunked"),
        st.binary(max_size=60).map(lambda b: b"X-Junk: " + b),
        st.binary(max_size=40),
        st.just(b"Host: " + b"h" * 9000),
    )
    return st.lists(st.one_of(auth, auth, other), max_size=4)


def send(port: int, data: bytes) -> bytes:
    """The answer's status line, headers and body (read up to its Content-Length: the server may
    linger on the connection to drain a request body it did not read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(OSError):  # the server may close first, having answered already
            sock.sendall(data)
        answer = b""
        while True:
            head, sep, body = answer.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                return answer
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return answer
            if not chunk:
                return answer
            answer += chunk


def test_hostile_requests_never_get_a_5xx(target):
    cluster, statuses = target
    worker = cluster.workers[0]
    port = cluster.settings.web_port

    @settings(max_examples=REQUESTS, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        method=st.one_of(st.just(b"GET"), st.sampled_from(METHODS).map(str.encode), st.binary(min_size=1, max_size=8)),
        path=st.tuples(st.sampled_from(PATHS).map(str.encode), suffix()).map(b"".join),
        head=headers(worker.token),
        body=st.binary(max_size=200),
    )
    def hostile(method: bytes, path: bytes, head: list[bytes], body: bytes) -> None:
        request = method + b" " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        request += b"".join(h + b"\r\n" for h in head)
        if not any(h.lower().startswith((b"content-length", b"transfer-encoding")) for h in head):
            request += b"Content-Length: %d\r\n" % len(body)  # else the body is a second, broken request
        answer = send(port, request + b"\r\n" + body)
        match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
        status = int(match.group(1)) if match else 0  # 0: closed without an answer
        statuses[status] += 1
        assert status < 500, (request[:200], answer[:300])

    hostile()
    assert sum(statuses.values()) >= REQUESTS
    assert {200, 401, 404, 400} <= statuses.keys(), statuses  # the views themselves were reached
    assert worker.alive
    assert send(port, b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 200")
    print(f"statuses of {sum(statuses.values())} hostile requests: {dict(sorted(statuses.items()))}")


def test_well_formed_hostile_requests_reach_the_views_and_never_get_a_5xx(target):
    cluster, _ = target
    worker = cluster.workers[0]
    statuses: Counter[int] = Counter()

    @settings(max_examples=WELL_FORMED, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(
        method=st.sampled_from(["GET", "GET", "GET", "HEAD", "POST", "DELETE"]),
        prefix=st.sampled_from(PATHS),
        key=st.text(max_size=200),
        auth=st.sampled_from([worker.token, worker.token, "wrong", "", None]),
    )
    def hostile(method: str, prefix: str, key: str, auth: str | None) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", cluster.settings.web_port, timeout=10)
        headers = {} if auth is None else {"Authorization": f"Bearer {auth}"}
        try:
            conn.request(method, prefix + urllib.parse.quote(key, safe=""), headers=headers)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        statuses[response.status] += 1
        assert response.status < 500, (method, prefix, key, response.status)

    hostile()
    assert {200, 400, 401, 404} <= statuses.keys() and statuses[200] + statuses[404] >= WELL_FORMED // 4, statuses
    assert worker.alive
    print(f"statuses of {sum(statuses.values())} well-formed hostile requests: {dict(sorted(statuses.items()))}")
