"""Reply drafts to unhappy reviews, for a merchant to check and send.

A draft is written in the review's language: an apology, then for each complaint aspect what the
shop will do, quoted from the shop's policy (an exchange for a size problem, the warranty for a
fault...), and where to reach a person. Nothing is promised that the policy does not say; the
status stays ``"draft"`` until a person sends it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from guide.policy import PolicyEntry

#: Policy entries that say what the shop does about each complaint aspect, first found wins.
ASPECT_POLICY: dict[str, tuple[str, ...]] = {
    "size_fit": ("exchange", "returns_window"),
    "quality": ("warranty", "returns_window"),
    "shipping": ("order_status", "shipping_time"),
    "packaging": ("returns_window",),
    "service": ("customer_service",),
    "not_as_described": ("returns_window", "return_process"),
    "price": (),
    "other": (),
}
_NAMES = {
    "en": {
        "size_fit": "the size and fit",
        "quality": "the quality",
        "shipping": "the delivery",
        "packaging": "the packaging",
        "service": "our service",
        "price": "the price",
        "not_as_described": "the item not matching its description",
        "other": "your experience",
    },
    "zh": {
        "size_fit": "尺码",
        "quality": "质量",
        "shipping": "物流",
        "packaging": "包装",
        "service": "服务",
        "price": "价格",
        "not_as_described": "商品与描述不符",
        "other": "购物体验",
    },
}
_TEMPLATES = {
    "en": {
        "apology": "We are sorry that {what} disappointed you, and thank you for telling us about {about}.",
        "action": "{text}",
        "no_policy": "We have passed your feedback on {about} to the team responsible.",
        "close": "If you would like us to sort this out with you, please contact customer service in the app.",
    },
    "zh": {
        "apology": "非常抱歉{what}让您失望了，感谢您告诉我们{about}方面的问题。",
        "action": "{text}",
        "no_policy": "您对{about}的反馈我们已转给相关同事。",
        "close": "如需我们协助处理，请在App内联系客服。",
    },
}


@dataclass(frozen=True)
class ReplyDraft:
    """A reply to one review, waiting for a person to approve it."""

    item_id: str
    review_event_id: str
    lang: str
    aspects: list[str]
    text: str
    status: str = field(default="draft")

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def write_reply(
    *,
    item_id: str,
    review_event_id: str,
    lang: str,
    aspects: Sequence[str],
    title: str | None,
    policy: Sequence[PolicyEntry],
) -> ReplyDraft:
    """The draft for a negative review whose aspects are known."""
    lang = lang if lang in _TEMPLATES else "en"
    t, names = _TEMPLATES[lang], _NAMES[lang]
    by_key = {e.key: e for e in policy}
    what = (
        (f"“{title}”" if lang == "zh" else f"the {title}") if title else ("这次购物" if lang == "zh" else "your order")
    )
    sep = "、" if lang == "zh" else " and "
    about = sep.join(names.get(a, names["other"]) for a in aspects)
    parts = [t["apology"].format(what=what, about=about)]
    quoted: set[str] = set()
    for aspect in aspects:
        entry = next((by_key[k] for k in ASPECT_POLICY.get(aspect, ()) if k in by_key), None)
        if entry is None:
            parts.append(t["no_policy"].format(about=names.get(aspect, names["other"])))
        elif entry.key not in quoted:
            quoted.add(entry.key)
            parts.append(t["action"].format(text=entry.text[lang]))
    if "customer_service" not in quoted:
        parts.append(t["close"])
    return ReplyDraft(item_id, review_event_id, lang, list(aspects), ("" if lang == "zh" else " ").join(parts))
