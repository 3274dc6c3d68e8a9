"""Worker processes on this machine, for the demo, the integration tests and the benchmarks.

A :class:`WorkerProcess` is a real ``shopguide worker`` in a child process, configured only through
``SHOPGUIDE_*`` variables, with its own data directory and web port. Faust reads unprefixed
variables of its own (``WEB_PORT``...) which the engine ignores; they are removed from the child's
environment anyway so that nothing in a developer's shell reaches a test worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from streams.settings import Settings
from streams.tools.children import die_with_parent

#: Variables Faust or its libraries would read if they were set in the parent.
_FOREIGN = (
    "WEB_PORT",
    "WEB_BIND",
    "WEB_HOST",
    "BROKER_URL",
    "STORE",
    "DATADIR",
    "APP_DATADIR",
    "CANONICAL_URL",
    "F_DATADIR",
    "WORKDIR",
)


def child_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPGUIDE_") and k not in _FOREIGN}
    env.update(settings.to_env())
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if extra:
        env.update(extra)
    return env


#: The API token of each worker this process started, by its base URL: requests to it carry it.
_TOKENS: dict[str, str] = {}


def _authorized(request: urllib.request.Request) -> urllib.request.Request:
    """The request with the API token of the process it goes to, unless it names its own."""
    for base, token in _TOKENS.items():
        if request.full_url.startswith(base + "/") and not request.has_header("Authorization"):
            request.add_header("Authorization", f"Bearer {token}")
    return request


def _get(url: str, timeout_s: float) -> tuple[int, bytes]:
    request = _authorized(urllib.request.Request(url))  # noqa: S310 - local URLs
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310 - local URLs
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get_json(url: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    """(status, parsed body) of a GET; the body is None when it is not JSON."""
    status, raw = _get(url, timeout_s)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def post_json(url: str, body: bytes, headers: dict[str, str] | None = None, timeout_s: float = 10.0) -> tuple[int, Any]:
    """(status, parsed body) of a POST of ``body`` (sent as JSON, whatever it holds)."""
    request = _authorized(
        urllib.request.Request(  # noqa: S310 - local URLs
            url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, method="POST"
        )
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def get_text(url: str, timeout_s: float = 5.0) -> str:
    """The body of a GET as text, whatever its status."""
    return _get(url, timeout_s)[1].decode("utf-8", errors="replace")


class WorkerProcess:
    command = "worker"
    #: The module run as ``python -m`` with :attr:`command` as its argument.
    module = "streams.tools.cli"

    def __init__(self, settings: Settings, log_path: Path | None = None) -> None:
        self.settings = settings
        self.log_path = log_path or settings.data_dir / f"{self.command}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        return self.settings.web_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str | None:
        """An API token the worker accepts (the first configured)."""
        tokens = self.settings.api_token_list
        return tokens[0] if tokens else None

    def start(self) -> Self:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        if self.token:
            _TOKENS[self.url] = self.token
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module, self.command],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(self.settings),
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        return self

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Until ``/readyz`` answers 200 (tables recovered, catalog loaded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.command} exited early; see {self.log_path}:\n{self.log_tail()}")
            with contextlib.suppress(OSError):
                status, _ = get_json(self.url + "/readyz", 2.0)
                if status == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.command} not ready after {timeout_s:.0f} s; see {self.log_path}:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, for recovery tests."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class GuideProcess(WorkerProcess):
    """A real ``shopguide guide`` in a child process (its own data dir and ``SHOPGUIDE_GUIDE_PORT``);
    ready once ``/healthz`` answers 200 (the catalog, reviews and recommendations read)."""

    command = "guide"

    @property
    def port(self) -> int:
        return self.settings.guide_port
