"""The shop's policy and FAQ: shipping, returns, payment, warranty, order status, in Chinese and English.

A policy file is JSON ``{"entries": [{"key", "topic", "zh", "en", "keywords": {"zh": [..], "en": [..]}}]}``;
``topic`` is the intent the entry answers. Answers quote an entry in the question's language, so
every entry carries both texts. ``policy_sample.json`` is the shipped example.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SAMPLE_PATH = Path(__file__).with_name("policy_sample.json")


@dataclass(frozen=True)
class PolicyEntry:
    key: str
    topic: str
    text: dict[str, str]
    keywords: dict[str, tuple[str, ...]]

    def matches(self, question: str) -> int:
        """How many of the entry's keywords (either language) the lowercased question contains."""
        q = question.lower()
        return sum(1 for words in self.keywords.values() for w in words if w in q)


def load_policy(path: str | Path | None = None) -> list[PolicyEntry]:
    """Entries of a policy file (the shipped sample when ``path`` is None); ValueError when malformed."""
    source = Path(path) if path is not None else SAMPLE_PATH
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
        entries = [
            PolicyEntry(
                key=str(e["key"]),
                topic=str(e["topic"]),
                text={"zh": str(e["zh"]), "en": str(e["en"])},
                keywords={
                    lang: tuple(str(w).lower() for w in e.get("keywords", {}).get(lang, ())) for lang in ("zh", "en")
                },
            )
            for e in raw["entries"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"policy file {source}: {exc}") from exc
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError(f"policy file {source}: duplicate keys")
    return entries
