"""Text handling for Chinese and English shop text: language, sentences, tokens.

Reviews mix scripts, emoji and stray control characters; every function here accepts any ``str``
and never raises. Chinese is tokenised into character unigrams and bigrams (no dictionary needed,
and bigrams carry most of the meaning of two-character words); English into lowercase words with
stop words removed and a light suffix stemmer, enough for BM25.
"""

from __future__ import annotations

import re

LANGS = ("zh", "en")

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
#: Chinese sentence ends (kept with their sentence), then English ones followed by a space.
_ZH_END = re.compile(r"(?<=[。！？；…!?;])|\n+")
_EN_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HAS_CONTENT = re.compile(r"[\w\u3400-\u9fff]")

_STOP_WORDS_TEXT = """
a an the and or but if of to in on at for with by from as is are was were be been being am do does
did it its it's this that these those there here i me my we our you your he she they them their his
her what which who whom how when where why can could would should will shall may might must have has
had so than then too very just about into over under up down out off again once any some such no not
only own same other all both each few more most s t don't doesn't isn't aren't i'm i've it'll will
lol please thanks thank hi hello also get got one ok really
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
#: Chinese characters too common to tell sentences apart on their own (their bigrams are kept).
ZH_STOP_CHARS = frozenset("的了吗呢吧啊呀是我你他她它们这那个有和也就都很还会在要不么什怎嘛")
_SUFFIXES = ("ing", "edly", "ed", "ies", "es", "s", "ly")


def detect_lang(text: str) -> str:
    """``"zh"`` when Han characters are a fair share of the letters, else ``"en"``.

    Mixed text ("Nice鞋子 非常舒服 comfortable") goes to the script with more weight: one Han character
    counts as much as three Latin letters, about one word each.
    """
    han = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    return "zh" if han * 3 >= latin and han > 0 else "en"


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """The sentences of a review, stripped, without the empty or symbol-only ones.

    Chinese ends sentences on 。！？；… (and their ASCII forms), English on . ! ? followed by a
    space; both on newlines. Overlong sentences are cut to ``max_chars``.
    """
    text = _CONTROL.sub(" ", text)
    pattern = _ZH_END if _CJK.search(text) else _EN_END
    out = []
    for part in pattern.split(text):
        part = part.strip()
        if part and _HAS_CONTENT.search(part):
            out.append(part[:max_chars])
    return out


def stem(word: str) -> str:
    """A light English stemmer: strips one common suffix from words longer than four letters."""
    if len(word) > 4:
        for suffix in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
                if suffix in ("ing", "ed") and word[-1] == word[-2] and word[-1] not in "aeiouls":
                    word = word[:-1]
                break
    return word


def tokens(text: str) -> list[str]:
    """BM25 tokens: Chinese character unigrams and bigrams, English stemmed words without stop words."""
    lowered = text.lower()
    out = [stem(w) for w in _WORD.findall(lowered) if w not in STOP_WORDS]
    for run in _CJK_RUN.findall(lowered):
        out.extend(c for c in run if c not in ZH_STOP_CHARS)
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out
