"""What a negative review complains about: ``size_fit``, ``quality``, ``shipping``, ``packaging``,
``service``, ``price``, ``not_as_described``, or ``other`` when none of them.

Two voters, either suffices: bilingual cue lexicons (a review names its complaint in a small
vocabulary: "runs small", "偏小", "物流慢", "色差"; a merchant can read why a draft says what it
says), and one logistic head per aspect over the review's sentence embedding, which catches the
phrasings no lexicon lists ("fits like a medium", "已读不回"). The heads ship in
``aspects_model.json`` (``shopguide evaluate aspects --fit``); without the encoder the lexicons
answer alone. A review can have several aspects; they are returned in ``ASPECTS`` order.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np

from guide.encoder import Encoder
from state.item import COMPLAINT_ASPECTS

MODEL_PATH = Path(__file__).with_name("aspects_model.json")

ASPECTS = COMPLAINT_ASPECTS

_CUES: dict[str, dict[str, tuple[str, ...]]] = {
    "size_fit": {
        "en": (
            r"too (tight|loose|big|small|long|short|narrow|wide)",
            r"runs? (small|large|big)",
            r"\bsize",
            r"sized up",
            r"\bfits?\b",
            r"doesn'?t fit",
            r"too short for",
            r"too long for",
            r"\btight\b",
            r"pinch",
            r"heel slips",
            r"kids size",
            r"\bxl\b",
        ),
        "zh": (
            "偏小",
            "偏大",
            "尺码",
            "码数",
            "大了一码",
            "小了一码",
            "太紧",
            "太松",
            "太长",
            "太短",
            "太窄",
            "太宽",
            "扣不上",
            "穿不进",
            "不合身",
            "版型",
            "太小",
            "大一码",
            "小一码",
            "掉跟",
        ),
    },
    "quality": {
        "en": (
            r"\bbroke",
            r"\bbroken\b",
            r"snapped",
            r"came apart",
            r"stitching",
            r"stopped (working|charging)",
            r"\bdied\b",
            r"\bjunk\b",
            r"cheap(ly)? (plastic|made|material)",
            r"chipping",
            r"peeling",
            r"coming off",
            r"cracked",
            r"\bpills?\b",
            r"fragile",
            r"\bleaks?\b",
            r"smells? like",
            r"\bsmell\b",
            r"defective",
            r"falling apart",
            r"poor quality",
            r"doesn'?t close",
            r"\btore\b",
            r"tearing",
            r"feels like a",
            r"shr[iu]nk",
        ),
        "zh": (
            "坏了",
            "质量",
            "做工",
            "线头",
            "走线",
            "开线",
            "断了",
            "罢工",
            "起球",
            "掉色",
            "坏点",
            "闪屏",
            "开胶",
            "漏水",
            "裂",
            "碎了",
            "撞坏",
            "异味",
            "刺鼻",
            "味道很大",
            "粗糙",
            "充不进电",
            "不能用",
            "太脆",
            "脱落",
            "缩水",
        ),
    },
    "shipping": {
        "en": (
            r"to arrive",
            r"\barrived (late|a week|days)",
            r"arrived .* late",
            r"\blate\b",
            r"shipping",
            r"\bshipped?\b",
            r"delivery",
            r"delivered",
            r"courier",
            r"tracking",
            r"customs",
            r"to ship",
            r"in a warehouse",
            r"\bparcel\b",
            r"left it (in|at|outside)",
            r"threw the parcel",
        ),
        "zh": (
            "物流",
            "快递",
            "发货",
            "送货",
            "签收",
            "没收到",
            "才到",
            "驿站",
            "海关",
            "送上门",
            "扔在门口",
            "到货慢",
            "配送",
        ),
    },
    "packaging": {
        "en": (
            r"\bbox\b",
            r"packag",
            r"\bseal\b",
            r"crushed",
            r"squashed",
            r"\btorn\b",
            r"ripped open",
            r"protective",
            r"bubble wrap",
            r"thin bag",
            r"rattled",
        ),
        "zh": ("包装", "外箱", "箱子", "盒子", "礼盒", "封口", "压扁", "压坏", "填充", "塑料袋", "胶带", "没封"),
    },
    "service": {
        "en": (
            r"customer service",
            r"\bsupport\b",
            r"\bseller\b",
            r"\bthe shop\b",
            r"never repl",
            r"no reply",
            r"\brude\b",
            r"ignored",
            r"nobody answers",
            r"copy-paste",
            r"transferring",
            r"won'?t refund",
            r"refused to help",
            r"for a reply",
        ),
        "zh": (
            "客服",
            "卖家",
            "店家",
            "商家",
            "售后",
            "态度",
            "不回",
            "没人理",
            "不理人",
            "推脱",
            "机器人",
            "拖着",
            "不给退",
        ),
    },
    "price": {
        "en": (
            r"overpriced",
            r"expensive",
            r"price",
            r"not worth",
            r"\bcheaper\b",
            r"ripped off",
            r"half the",
            r"\bbucks\b",
            r"dollars",
            r"value for money",
            r"costs? too much",
        ),
        "zh": ("太贵", "价格", "性价比", "降价", "便宜", "不值", "买亏", "偏贵", "贵了", "价钱"),
    },
    "not_as_described": {
        "en": (
            r"nothing like the (picture|photo)",
            r"different from the (picture|photo)",
            r"from the photo",
            r"the listing",
            r"described as",
            r"supposed to be",
            r"than it looks",
            r"in the photo",
            r"sent me the",
            r"instead of",
            r"wrong (size|color|colour|item) was sent",
            r"not as described",
            r"label says",
            r"than (the )?pictured",
            r"like the pictures?",
        ),
        "zh": (
            "图片",
            "色差",
            "描述",
            "详情页",
            "宣传",
            "发错",
            "与描述",
            "不符",
            "实物",
            "被骗",
            "和图",
            "跟图",
            "不一样",
        ),
    },
}

_PATTERNS: dict[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    aspect: (re.compile("|".join(cues["en"])), tuple(cues["zh"])) for aspect, cues in _CUES.items()
}


def detect_aspects(text: str, lang: str | None = None) -> list[str]:
    """The complaint aspects of a negative review, ``["other"]`` when neither voter finds one.

    Both languages' cues are tried (mixed reviews are common), so ``lang`` is not needed; it is
    accepted for callers that know it.
    """
    vectors = _encoder().encode([text])
    return aspects_of(text, None if vectors is None else vectors[0])


def aspects_of(text: str, vector: np.ndarray | None) -> list[str]:
    """``detect_aspects`` for a caller that has the text's embedding already (or None)."""
    lowered = text.lower()
    found = {
        aspect
        for aspect, (english, chinese) in _PATTERNS.items()
        if english.search(lowered) or any(c in lowered for c in chinese)
    }
    model = _model()
    if vector is not None and model is not None:
        names, weights, bias, threshold = model
        probability = 1.0 / (1.0 + np.exp(-(weights @ vector + bias)))
        found.update(n for n, p in zip(names, probability, strict=True) if p >= threshold)
    return [a for a in ASPECTS if a in found] or ["other"]


@functools.cache
def _encoder() -> Encoder:
    return Encoder()


@functools.cache
def _model() -> tuple[list[str], np.ndarray, np.ndarray, float] | None:
    if not MODEL_PATH.exists():
        return None
    raw = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    names = list(raw["heads"])
    weights = np.asarray([raw["heads"][n]["weights"] for n in names], dtype=np.float32)
    bias = np.asarray([raw["heads"][n]["bias"] for n in names], dtype=np.float32)
    return names, weights, bias, float(raw["threshold"])
