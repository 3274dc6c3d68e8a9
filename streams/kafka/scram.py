"""A refused SCRAM login named as such by both Kafka client libraries.

A broker that refuses a SCRAM login (unknown user, wrong password) answers the client's final
message with ``e=<reason>`` instead of its signature ``v=...`` (RFC 5802, section 7). aiokafka
0.14 and kafka-python 3.0 both read that answer as if it always held ``v=`` and fail with
``KeyError: 'v'``, which names neither the login nor the reason. :func:`install` makes both raise
:class:`ScramLoginRefused` with the broker's reason; anything else goes to their own parser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiokafka.conn
import kafka.net.sasl.scram

from streams.errors import ScramLoginRefused

_INSTALLED = "_shopguide_names_refusals"


def refusal(server_final: str | bytes) -> str | None:
    """The broker's reason when a SCRAM server-final message is an error, else None."""
    text = server_final.decode("utf-8", "replace") if isinstance(server_final, bytes) else server_final
    return text[2:] if text.startswith("e=") else None


def _naming_refusals(parse: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    def process_server_final_message(self: Any, server_final: Any) -> None:
        reason = refusal(server_final)
        if reason is not None:
            raise ScramLoginRefused(f"the Kafka broker refused the SCRAM login: {reason}")
        parse(self, server_final)

    setattr(process_server_final_message, _INSTALLED, True)
    return process_server_final_message


def install() -> None:
    """Patch both libraries' SCRAM clients (once; later calls do nothing)."""
    for cls in (aiokafka.conn.ScramAuthenticator, kafka.net.sasl.scram.ScramClient):
        parse = cls.process_server_final_message
        if not getattr(parse, _INSTALLED, False):
            cls.process_server_final_message = _naming_refusals(parse)
