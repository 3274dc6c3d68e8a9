"""Readers for the public data sets in ``../shared/data`` (see its README for provenance and
quirks). Training, evaluation, benchmarks and ``shopguide replay`` all read them here, so every
consumer sees the same rows and rejects the same bad ones.

Readers yield parsed rows or :class:`Rejected` ones (with the line and the reason), in file order,
and never stop on a bad row.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: Where the data sets live, relative to the repository root (override: SHOPGUIDE_SHARED_DATA).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"

TAOBAO_ACTIONS = {"pv": "click", "fav": "fav", "cart": "cart", "buy": "buy"}
#: Plausible unix seconds for these data sets (1995 .. 2100): catches truncated or garbled rows.
TS_MIN, TS_MAX = 788_918_400, 4_102_444_800


def data_dir() -> Path:
    return Path(os.environ.get("SHOPGUIDE_SHARED_DATA", DEFAULT_DATA_DIR))


def default_path(name: str) -> Path:
    """The usual file of a data set: taobao, movielens, reviews-zh or reviews-en."""
    files = {
        "taobao": "taobao_user_behavior/UserBehavior_stream_96k.csv",
        "movielens": "movielens_small/ratings.csv",
        "reviews-zh": "online_shopping_10_cats/online_shopping_10_cats.csv",
        "reviews-en": "womens_clothing_reviews/womens_clothing_reviews.csv",
    }
    return data_dir() / files[name]


@dataclass(frozen=True, slots=True)
class Interaction:
    user_id: str
    item_id: str
    category: str
    action: str  # one of state.user.ACTIONS
    ts: float
    rating: float | None = None  # explicit feedback (MovieLens)


@dataclass(frozen=True, slots=True)
class LabeledReview:
    text: str
    label: int  # 1 positive, 0 negative
    rating: int | None
    category: str
    item_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    reason: str
    raw: str


def _clean(text: str) -> str:
    return text.replace("\ufeff", "").strip()


def read_taobao(path: Path) -> Iterator[Interaction | Rejected]:
    """``user_id,item_id,category_id,behavior_type,timestamp`` without a header, in time order."""
    with open(path, encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            raw = ",".join(row)
            if len(row) != 5:
                yield Rejected(line_no, f"expected 5 columns, got {len(row)}", raw)
                continue
            user, item, category, behavior, ts = (c.strip() for c in row)
            if not (user and item and category):
                yield Rejected(line_no, "empty id", raw)
                continue
            action = TAOBAO_ACTIONS.get(behavior)
            if action is None:
                yield Rejected(line_no, f"unknown behavior {behavior!r}", raw)
                continue
            if not ts.isdigit() or not TS_MIN <= int(ts) <= TS_MAX:
                yield Rejected(line_no, f"timestamp {ts!r} is not plausible unix seconds (truncated row?)", raw)
                continue
            yield Interaction(user, item, category, action, float(ts))


def read_movielens(path: Path) -> Iterator[Interaction | Rejected]:
    """``ratings.csv`` in timestamp order, each rating as a click: a rating of 4 or more is a
    "fav" (the positives of the evaluation), lower ones a "view". The category is the first genre
    from ``movies.csv`` beside it."""
    genres = {movie: genre for movie, _, genre in read_movielens_catalog(path)}
    rows: list[Interaction] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        for line_no, row in enumerate(reader, start=2):
            try:
                user, movie, rating_s, ts_s = row
                rating, ts = float(rating_s), int(ts_s)
            except ValueError:
                yield Rejected(line_no, "expected userId,movieId,rating,timestamp", ",".join(row))
                continue
            if not (0.5 <= rating <= 5.0 and TS_MIN <= ts <= TS_MAX):
                yield Rejected(line_no, "rating or timestamp out of range", ",".join(row))
                continue
            action = "fav" if rating >= 4.0 else "view"
            rows.append(Interaction(user, movie, genres.get(movie, ""), action, float(ts), rating))
    rows.sort(key=lambda r: r.ts)  # stable: ties keep file order
    yield from rows


def read_movielens_catalog(ratings: Path) -> Iterator[tuple[str, str, str]]:
    """(movie id, title, first genre) from the ``movies.csv`` beside ``ratings.csv``, if any."""
    movies = ratings.parent / "movies.csv"
    if not movies.exists():
        return
    with open(movies, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            yield row["movieId"], row["title"], row["genres"].split("|")[0]


def read_reviews_en(path: Path) -> Iterator[LabeledReview | Rejected]:
    """Women's clothing reviews: rating >= 4 positive, <= 2 negative, 3 dropped (not rejected:
    neutral by the protocol). The text is ``Review Text`` alone, as in the reference protocol."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        for line_no, row in enumerate(reader, start=2):
            text = _clean(row.get("Review Text") or "")
            try:
                rating = int(row.get("Rating") or "")
            except ValueError:
                yield Rejected(line_no, "rating is not an integer", str(row)[:200])
                continue
            if not text:
                yield Rejected(line_no, "no review text", str(row)[:200])
                continue
            if rating == 3:
                continue
            yield LabeledReview(
                text,
                int(rating >= 4),
                rating,
                (row.get("Department Name") or "").strip(),
                f"en-{(row.get('Clothing ID') or '').strip()}",
            )


def read_labeled_csv(path: Path, item_prefix: str = "item-") -> Iterator[LabeledReview | Rejected]:
    """A CSV with ``label,review`` columns (1 = positive) and an optional ``cat`` column, which also
    names the item: online_shopping_10_cats, or another shop's reviews for ``shopguide evaluate
    sentiment``."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        for line_no, row in enumerate(reader, start=2):
            text = _clean(row.get("review") or "")
            label = (row.get("label") or "").strip()
            if not text:
                yield Rejected(line_no, "empty review", str(row)[:200])
                continue
            if label not in ("0", "1"):
                yield Rejected(line_no, f"label {label!r} is not 0 or 1", str(row)[:200])
                continue
            cat = (row.get("cat") or "").strip()
            yield LabeledReview(text, int(label), None, cat, f"{item_prefix}{cat or 'unknown'}")


def read_reviews_zh(path: Path) -> Iterator[LabeledReview | Rejected]:
    """online_shopping_10_cats: ``cat,label,review``; the item is the product category."""
    return read_labeled_csv(path, item_prefix="zh-")
