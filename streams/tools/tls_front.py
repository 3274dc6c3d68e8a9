"""A TLS terminator in front of the embedded broker, so that clients can speak SSL or SASL_SSL to it.

Tansu 0.6.0 accepts ``--cert`` and ``--key`` but cannot be given both (they share an exclusive
argument group) and never wraps a connection in TLS even when built with a certificate (its
acceptor is created and left unused), so the TLS listener is this one: it decrypts each client
connection and relays its bytes to the broker's plain port. Kafka's SASL exchange and every request
pass through unchanged; the broker advertises this listener's port, so clients reconnect through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class TlsFront:
    """``TlsFront(port, upstream_port, cert, key).start()``: TLS on ``port``, plain to ``upstream_port``."""

    def __init__(self, port: int, upstream_port: int, cert: Path, key: Path) -> None:
        self.port = port
        self._upstream_port = upstream_port
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"tls-front-{port}")

    def start(self) -> TlsFront:
        self._thread.start()
        self._ready.wait(10)
        if self._failure is not None:
            raise RuntimeError(f"TLS front could not listen on 127.0.0.1:{self.port}") from self._failure
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            server = self._loop.run_until_complete(
                asyncio.start_server(self._relay, "127.0.0.1", self.port, ssl=self._context)
            )
        except OSError as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self._upstream_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(_pump(client_reader, broker_writer), _pump(broker_reader, client_writer))
