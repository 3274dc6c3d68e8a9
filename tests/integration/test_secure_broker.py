"""The engine against a broker that demands TLS (a throwaway CA) or SASL: a worker and the guide over
TLS count, answer and learn through every client they have; an untrusted certificate and a refused SASL login
each stop it with a message naming the cause instead of a silent hang."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.events import Click
from streams.testing.harness import Cluster, counts_of, fresh_settings, wait_until, wait_until_exact
from streams.tools.broker import BrokerSecurity, EmbeddedBroker
from streams.tools.cluster import WorkerProcess, child_env, get_json, post_json

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates"),
]

CATEGORIES = ("shoes", "bags", "books", "tea")


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    cert, key = directory / f"{name}-ca.pem", directory / f"{name}-ca.key"
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name} CA",
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    return cert, key


def make_server_cert(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost signed by ``ca``: (certificate, key)."""
    cert, key, csr, ext = (directory / f"server.{s}" for s in ("pem", "key", "csr", "ext"))
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(csr))
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    ca = make_ca(root, "shop")
    cert, key = make_server_cert(root, ca)
    other_ca, _ = make_ca(root, "other")
    return {"ca": ca[0], "cert": cert, "key": key, "other_ca": other_ca}


@pytest.fixture(scope="module")
def tls_broker(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("tls-broker") / "broker.log"
    with EmbeddedBroker(log_path=log, security=BrokerSecurity(tls_cert=pki["cert"], tls_key=pki["key"])) as b:
        yield b


def test_a_worker_over_tls_counts_answers_and_learns(tls_broker, pki, tmp_path):
    settings = fresh_settings(tls_broker, tmp_path, security_protocol="SSL", ssl_cafile=str(pki["ca"]))
    cluster = Cluster(settings)  # topic creation, the producer and the topic readers over TLS
    try:
        worker = cluster.start_worker()
        cluster.add_items("tls", CATEGORIES)
        start = get_json(worker.url + "/model")[1]["version"]
        expected: dict[str, Counter[str]] = {}
        lines = []
        for n in range(600):  # enough for the trainer to publish a snapshot through the broker
            user = f"tls-user-{n % 8}"
            c = Click(f"tls-c{n}", user, f"tls-{(n % 8) * 4 + n % 3}", "view", time.time(), CATEGORIES[n % 4])
            lines.append(c.to_json())
            expected.setdefault(user, Counter())["view"] += 1
        (tmp_path / "clicks.jsonl").write_bytes(b"\n".join(lines))
        produce = subprocess.run(  # the CLI producer, in a process of its own
            [sys.executable, "-m", "streams.tools.cli", "produce", "clicks", str(tmp_path / "clicks.jsonl")],
            env=child_env(settings),
            capture_output=True,
            timeout=120,
        )
        assert produce.returncode == 0 and b"produced 600 messages" in produce.stdout, produce.stderr[-2000:]
        [rec] = cluster.recommendations.wait_for(lambda m: m["trigger_event_id"] == "tls-c599", timeout_s=120)
        assert rec["user_id"] == "tls-user-7" and rec["items"]
        assert wait_until_exact(worker.url, expected, stall_s=30) == {}
        model = wait_until(
            lambda: (m := get_json(worker.url + "/model")[1])["version"] > start and m, 180, "a model snapshot"
        )
        assert model["version"] > 0
        status, ready = get_json(worker.url + "/readyz")
        assert status == 200, ready

        guide = cluster.start_guide(tmp_path / "guide")  # ready once it has read the shelf over TLS
        status, _ = post_json(
            guide.url + "/ask", json.dumps({"user_id": "tls-asker", "text": "Good?", "item_id": "tls-1"}).encode()
        )
        assert status == 200
        assert wait_until(lambda: counts_of(worker.url, "tls-asker"), 30, "the question's click counted")["view"] == 1
    finally:
        cluster.close()


#: How long the refused workers retry (the product's default, 30 s, would only make these tests wait).
REFUSAL_WAIT_S = 4.0


def wait_for_refusal(worker: WorkerProcess, cause: str, timeout_s: float = 90.0) -> None:
    """Until the worker's log names ``cause``, then its exit (69, EX_UNAVAILABLE); it must never
    have been ready meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cause in " ".join(worker.log_path.read_text(errors="replace").split()):  # the console wraps lines
            break
        if worker.alive:
            try:
                status, _ = get_json(worker.url + "/readyz", 2.0)
            except OSError:
                status = None
            assert status != 200, "ready although the broker refuses it"
        time.sleep(0.5)
    else:
        raise AssertionError(f"no {cause!r} in the log after {timeout_s:.0f} s:\n{worker.log_tail()}")
    assert worker.proc is not None and worker.proc.wait(20) == 69, "not the exit code of an unreachable broker"


def test_an_untrusted_broker_certificate_stops_the_worker_with_the_reason(tls_broker, pki, tmp_path):
    settings = fresh_settings(
        tls_broker, tmp_path, security_protocol="SSL", ssl_cafile=str(pki["other_ca"]), broker_wait_s=REFUSAL_WAIT_S
    )
    worker = WorkerProcess(settings).start()
    try:
        wait_for_refusal(worker, "CERTIFICATE_VERIFY_FAILED")
    finally:
        worker.stop()


def test_a_refused_sasl_login_stops_the_worker_with_the_reason(pki, tmp_path):
    security = BrokerSecurity(tls_cert=pki["cert"], tls_key=pki["key"], authentication=True)
    with EmbeddedBroker(log_path=tmp_path / "broker.log", security=security) as broker:
        settings = fresh_settings(
            broker,
            tmp_path,
            security_protocol="SASL_SSL",
            ssl_cafile=str(pki["ca"]),
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="shop",
            sasl_password="not-the-password",
            broker_wait_s=REFUSAL_WAIT_S,
        )
        worker = WorkerProcess(settings).start()
        try:
            wait_for_refusal(worker, "unknown-user")
        finally:
            worker.stop()
