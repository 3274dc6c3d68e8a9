"""What a shopper's message is about: one of ``INTENTS``, from bilingual keyword rules.

Rules, not a trained classifier: the intents are few, their wording is formulaic ("where is my
order", "转人工"), and a rule that misfires can be read and fixed. Intents are tried in
``INTENTS`` order of priority; the first with a matching phrase wins. A message that matches
nothing is a ``product_question`` when it is asked about an item, else ``other``.
"""

from __future__ import annotations

import re

INTENTS = (
    "human",
    "complaint",
    "order_status",
    "returns",
    "shipping",
    "payment",
    "product_question",
    "greeting",
    "other",
)

_RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "human": {
        "en": (
            "real person",
            "human",
            "an agent",
            "live agent",
            "talk to someone",
            "speak to someone",
            "customer service",
            "representative",
            "operator",
            "call me",
        ),
        "zh": ("人工", "真人", "客服", "转接", "找人", "打电话给我"),
    },
    "complaint": {
        "en": (
            "terrible",
            "worst",
            "scam",
            "ripped off",
            "disappointed",
            "unacceptable",
            "angry",
            "complain",
            "broken on arrival",
            "fake",
        ),
        "zh": ("投诉", "差评", "骗子", "太差", "垃圾", "气死", "失望", "假货", "坑人"),
    },
    "order_status": {
        "en": (
            "where is my order",
            "where's my order",
            "my order",
            "tracking",
            "track my",
            "order status",
            "hasn't arrived",
            "has not arrived",
            "not arrived",
            "cancel",
            "wrong address",
            "change the address",
            "change my address",
            "shipped yet",
        ),
        "zh": (
            "到哪了",
            "物流信息",
            "查物流",
            "订单状态",
            "我的订单",
            "取消订单",
            "下错单",
            "地址写错",
            "改地址",
            "修改地址",
            "还没到",
            "发货了吗",
            "没收到",
        ),
    },
    "returns": {
        "en": ("return", "refund", "money back", "exchange", "swap", "send it back", "send back"),
        "zh": ("退货", "退款", "退钱", "换货", "换码", "换大", "换小", "能退", "可以退", "退回", "换一"),
    },
    "shipping": {
        "en": ("ship", "shipping", "delivery", "deliver", "postage", "courier", "how long to arrive", "arrive"),
        "zh": ("发货", "快递", "包邮", "运费", "邮费", "几天能到", "几天到", "送达", "配送", "寄到"),
    },
    "payment": {
        "en": (
            "pay ",
            "pay?",
            "payment",
            "paypal",
            "credit card",
            "alipay",
            "wechat pay",
            "installment",
            "instalment",
            "invoice",
            "receipt",
            "apple pay",
        ),
        "zh": ("付款", "支付", "分期", "花呗", "发票", "信用卡", "支付宝", "微信支付", "开票"),
    },
    "product_question": {
        "en": (
            "does it",
            "do they",
            "is it",
            "are they",
            "how is",
            "how's",
            "how long",
            "how many",
            "how much",
            "will it",
            "can it",
            "can i use",
            "size",
            "fit",
            "battery",
            "quality",
            "material",
            "?",
        ),
        "zh": ("吗", "怎么样", "如何", "多久", "多少", "尺码", "质量", "能不能", "会不会", "是不是", "够不够", "？"),
    },
    "greeting": {
        "en": ("hello", "hi", "hey", "good morning", "good evening"),
        "zh": ("你好", "您好", "在吗", "哈喽", "早上好", "晚上好"),
    },
}


def _en_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """English phrases match as whole words when they start and end with a letter ("hi" is not in "this")."""
    parts = [rf"\b{re.escape(p)}\b" if p[0].isalnum() and p[-1].isalnum() else re.escape(p) for p in phrases]
    return re.compile("|".join(parts))


_EN_PATTERNS = {intent: _en_pattern(rules["en"]) for intent, rules in _RULES.items()}


def detect_intent(text: str, *, item_id: str | None = None) -> str:
    """The intent of a shopper's message (``item_id``: the item the message is asked about, if any)."""
    lowered = text.lower()
    for intent in INTENTS[:-1]:
        if intent == "greeting" and len(lowered.strip()) > 20:
            continue  # "hi, where is my order?" is about the order
        if any(p in lowered for p in _RULES[intent]["zh"]) or _EN_PATTERNS[intent].search(lowered):
            return intent
    return "product_question" if item_id is not None else "other"
