"""Access to the HTTP API of a real worker: bearer tokens on the data endpoints, Faust's own table
and router views off, a rate limit per client, no server version, no echoed request bytes."""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Iterator

import pytest

from streams.events import Click, Item
from streams.testing.harness import Cluster, fresh_settings

pytestmark = pytest.mark.integration

DATA_PATHS = ("/users/acc-user", "/recommendations/acc-user", "/items/acc-item/sentiment", "/experiments", "/")


@pytest.fixture(scope="module")
def guarded(broker, tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(fresh_settings(broker, tmp_path_factory.mktemp("access"), api_rate=20.0, api_burst=40))
    cluster.start_worker()
    item = Item("acc-item", "tea", "green tea", in_stock=True, ts=time.time())
    cluster.send("items", item.item_id, item.to_json())
    cluster.wait_catalog(1)
    click = Click("acc-click", "acc-user", "acc-item", "view", time.time(), "tea")
    cluster.send("clicks", click.user_id, click.to_json())
    cluster.recommendations.wait_for(lambda m: m["trigger_event_id"] == "acc-click", timeout_s=60)
    yield cluster
    cluster.close()


def request(cluster: Cluster, path: str, token: str | None = None, method: str = "GET") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.settings.web_port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_data_endpoints_need_a_valid_token(guarded):
    token = guarded.workers[0].token
    for path in DATA_PATHS:
        assert request(guarded, path).status == 401, path
        assert request(guarded, path, "wrong-token").status == 401, path
        assert request(guarded, path, token[:-1]).status == 401, path
    assert request(guarded, "/users/acc-user", token).status == 200
    assert request(guarded, "/recommendations/acc-user", token).status == 200
    assert request(guarded, "/users/nobody", token).status == 404


def test_probes_and_metrics_need_no_token(guarded):
    for path in ("/livez", "/readyz", "/metrics", "/model"):
        assert request(guarded, path).status == 200, path


def test_faust_table_and_router_views_are_off(guarded):
    token = guarded.workers[0].token
    for path in ("/table/users/acc-user/", "/table/users/", "/router/", "/router/users/acc-user/"):
        assert request(guarded, path, token).status == 404, path


def test_no_server_version_in_any_answer(guarded):
    token = guarded.workers[0].token
    for path, auth in (("/users/acc-user", token), ("/users/acc-user", None), ("/nothing", token), ("/livez", None)):
        server = request(guarded, path, auth).getheader("Server")
        assert server == "shopguide", (path, server)


def raw(cluster: Cluster, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", cluster.settings.web_port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_and_oversized_requests_get_their_status_without_their_bytes(guarded):
    marker = b"SECRET-MARKER-\xff\x00"
    for data in (
        b"G\x00ET /" + marker + b" HTTP/1.1\r\n\r\n",
        b"GET /users/" + b"u" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /livez HTTP/1.1\r\nX-Big: " + b"h" * 20_000 + b"\r\n\r\n",
        b"GET /livez HTTP/1.1\r\nHost: " + marker + b"\r\nContent-Length: -5\r\n\r\n",
    ):
        answer = raw(guarded, data)
        head, _, body = answer.partition(b"\r\n\r\n")
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", head), head[:100]
        assert b"Server: shopguide" in head and b"aiohttp" not in answer
        assert marker not in body and b"uuuuuuuuuu" not in body and b"hhhhhhhhhh" not in body
    assert request(guarded, "/livez").status == 200
    log = guarded.workers[0].log_path.read_text(errors="replace")
    assert log.count("malformed or oversized HTTP requests") == 1, "logged once per interval"
    assert "Error handling request" not in log and "LineTooLong" not in log  # no traceback each


def test_a_burst_from_one_client_is_limited_and_others_go_on(guarded):
    token = guarded.workers[0].token
    statuses = [request(guarded, "/users/acc-user").status for _ in range(80)]  # no token: limited by address
    assert statuses.count(429) >= 20 and set(statuses) <= {401, 429}
    assert request(guarded, "/users/acc-user", token).status == 200  # the token is a client of its own
    time.sleep(2.5)  # the bucket refills
    assert request(guarded, "/livez").status == 200
