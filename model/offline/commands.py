"""``shopguide train`` and ``shopguide evaluate ...``: the model's offline commands.

``register(subparsers)`` adds them to the engine's CLI (``streams/tools/cli.py``). Long runs show a
progress bar on stderr; ``--json OUT`` writes machine-readable results;
``--plot PNG`` (recommend) draws the hit rate over the replay.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from model.atomic_file import write_atomically
from model.candidates import NEW_SHARE
from model.config import TASKS, ModelConfig
from model.offline import datasets as data
from state.decay import INTEREST_HALF_LIFE_S, POPULARITY_HALF_LIFE_S

DEFAULT_SEED = 0
MOVIELENS_POSITIVE = 4.0
#: Popularity half-life of the replay per data set: the engine's default for a live shop
#: (Taobao covers two hours), a month for MovieLens (22 years of ratings).
POPULARITY_HALF_LIFE = {"taobao": POPULARITY_HALF_LIFE_S, "movielens": 30 * 86400.0}
#: Every modelling choice for recommendation was compared on the first 40,000 events of each
#: stream only (their prequential figures); the rest of each stream is reported on its own.
TUNING_EVENTS = 40_000


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _rows(reader: Iterator[Any], kind: type) -> list[Any]:
    return [r for r in reader if isinstance(r, kind)]


def read_reviews(path: Path) -> list[data.LabeledReview]:
    """A ``label,review[,cat]`` CSV, or the women's clothing file (recognised by its header)."""
    with open(path, encoding="utf-8-sig") as f:
        header = f.readline()
    reader = data.read_reviews_en if "Review Text" in header else data.read_labeled_csv
    return _rows(reader(path), data.LabeledReview)


def read_stream(fmt: str, path: Path) -> list[data.Interaction]:
    reader = {"taobao": data.read_taobao, "movielens": data.read_movielens}[fmt]
    return _rows(reader(path), data.Interaction)


def is_positive(fmt: str) -> Callable[[data.Interaction], bool]:
    if fmt == "movielens":
        return lambda e: e.rating is not None and e.rating >= MOVIELENS_POSITIVE
    return lambda e: True


def _write_json(path: str | None, payload: dict[str, Any]) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n", encoding="utf-8")
    print(text)


def _config(args: argparse.Namespace) -> ModelConfig:
    config = ModelConfig()
    if getattr(args, "shared_bottom", False):
        config = config.with_(experts=0)
    if getattr(args, "uncertainty", False):
        config = config.with_(uncertainty_weighting=True)
    if getattr(args, "history_attention", False):
        config = config.with_(history_attention=True)
    if getattr(args, "no_class_weights", False):
        config = config.with_(sentiment_class_weights=False)
    floor = getattr(args, "negative_recall", None)
    if floor is not None:
        config = config.with_(sentiment_negative_recall=floor)
    return config


# --------------------------------------------------------------------------- evaluate sentiment


def cmd_evaluate_sentiment(args: argparse.Namespace) -> dict[str, Any]:
    from model.offline.baselines import TfidfLogReg
    from model.offline.evaluate import (
        classification_figures,
        out_of_fold_calibration,
        snapshot_logits,
        snapshot_sentiment,
        split,
        train_sentiment,
    )
    from model.snapshot import Snapshot
    from model.training import Trainer

    rows = read_reviews(Path(args.path))
    if args.holdout_cat:
        train = [r for r in rows if r.category != args.holdout_cat]
        test = [r for r in rows if r.category == args.holdout_cat]
        protocol = f"train on every category but {args.holdout_cat!r}, test on it"
    else:
        train, test = split(rows, seed=args.seed)
        protocol = f"shuffled with seed {args.seed}, 80% train / 20% test"
    if not train or not test:
        raise SystemExit("nothing to train or test on")
    if args.folds == 1 or args.folds < 0:
        raise SystemExit(f"--folds must be 0 or at least 2, got {args.folds}")
    started = time.perf_counter()
    trainer = Trainer(_config(args), seed=args.seed)
    with progress_bar(len(train) * args.epochs, "training (model)") as advance:
        on_validation, history = train_sentiment(
            trainer, train, args.epochs, seed=args.seed, progress=advance, balance=args.balance
        )
    epochs_used = history.index(max(history)) + 1
    best = on_validation
    if args.folds > 1:
        total = len(train) * (args.folds - 1) // args.folds * epochs_used
        with progress_bar(total, f"cross-fitting ({args.folds} folds)") as advance:
            fitted = out_of_fold_calibration(
                _config(args), train, args.folds, epochs_used, args.seed, advance, args.balance
            )
        if fitted is not None:
            best = replace(on_validation, config=fitted.applied_to(on_validation.config))
    labels = np.array([r.label for r in test])
    texts = [r.text for r in test]
    train_seconds = time.perf_counter() - started
    results: dict[str, Any] = {"model": snapshot_sentiment(best, test)}
    results["model"] |= {
        "train_seconds": train_seconds,
        "validation_macro_f1_by_epoch": history,
        "epochs_used": epochs_used,
        "folds": args.folds,
        **_decision_rule(best),
    }
    if args.folds > 1:
        # The same weights with the calibration and threshold of the validation share alone.
        results["model_validation_calibrated"] = snapshot_sentiment(on_validation, test) | _decision_rule(on_validation)
    # The same weights without the calibration and threshold fitted on validation: the raw
    # sigmoid labelled at 0.5.
    raw = 1.0 / (1.0 + np.exp(-snapshot_logits(best, test)))
    results["model_uncalibrated"] = classification_figures(labels, raw)
    if args.snapshot:
        snap = Snapshot.from_bytes(Path(args.snapshot).read_bytes())
        results["snapshot"] = snapshot_sentiment(snap, test)
        results["snapshot"]["version"] = snap.version
    for balanced in (False, True):
        started = time.perf_counter()
        baseline = TfidfLogReg(seed=args.seed, balanced=balanced).fit([r.text for r in train], [r.label for r in train])
        results[baseline.name] = classification_figures(labels, baseline.predict_proba(texts))
        results[baseline.name]["train_seconds"] = time.perf_counter() - started
    payload = {
        "task": "sentiment",
        "n": len(test),
        "train_n": len(train),
        "path": str(args.path),
        "protocol": protocol,
        "max_epochs": args.epochs,
        "folds": args.folds,
        "balance": args.balance,
        "class_weights": trainer.config.sentiment_class_weights,
        "seed": args.seed,
        "config": trainer.config.to_dict(),
        "macro_f1": {name: r["macro_f1"] for name, r in results.items()},
        "results": results,
    }
    _write_json(args.json, payload)
    return payload


def _decision_rule(snapshot: Any) -> dict[str, Any]:
    config = snapshot.config
    return {"threshold": config.sentiment_threshold, "calibration": list(config.sentiment_calibration)}


# --------------------------------------------------------------------------- evaluate recommend


def segment_comparison(results: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Per segment ("all" and ``SEGMENTS``): the model's HR@10, the best baseline's on that same
    segment, and their ratio (None when no baseline hits anything there)."""
    from model.offline.evaluate import SEGMENTS, is_model

    out: dict[str, dict[str, Any]] = {}
    for segment in ("all", *SEGMENTS):
        key = "hit_rate@10" if segment == "all" else f"{segment}_hit_rate@10"
        best, name = max((v[key], k) for k, v in results.items() if not is_model(k))
        model = results["model"][key]
        out[segment] = {
            "model": model,
            "best_baseline": name,
            "best_baseline_hit_rate@10": best,
            "model_vs_best_baseline": model / best if best else None,
        }
    return out


def cmd_evaluate_recommend(args: argparse.Namespace) -> dict[str, Any]:
    from model.offline.baselines import Recommender
    from model.offline.evaluate import (
        ModelRecommender,
        NewShareView,
        baseline_recommenders,
        is_model,
        prequential,
        replay_catalog,
    )
    from model.training import Trainer

    events = read_stream(args.format, Path(args.path))
    if args.limit:
        events = events[: args.limit]
    half_life = POPULARITY_HALF_LIFE[args.format]
    catalog, clock = replay_catalog(half_life)
    trainer = Trainer(_config(args), seed=args.seed)
    model = ModelRecommender(
        trainer,
        catalog,
        interest_half_life_s=INTEREST_HALF_LIFE_S,
        seed=args.seed,
        train_every=args.train_every,
        new_share=args.new_share,
    )
    views = [NewShareView(model, share) for share in args.compare_shares if share != args.new_share]
    methods: list[Recommender] = [model, *views, *baseline_recommenders(catalog, half_life)]
    with progress_bar(len(events), f"prequential replay ({args.format})") as advance:
        result = prequential(
            events,
            methods,
            catalog,
            clock,
            is_positive=is_positive(args.format),
            interest_half_life_s=INTEREST_HALF_LIFE_S,
            popularity_half_life_s=half_life,
            window=args.window,
            progress=advance,
            tuned_until=args.tuned_until if args.tuned_until < len(events) else None,
        )
    results = result.results()
    best = max((v["hit_rate@10"], k) for k, v in results.items() if not is_model(k))
    after: dict[str, Any] = {}
    if result.after:
        after_results = result.results_after()
        best_after = max((v["hit_rate@10"], k) for k, v in after_results.items() if not is_model(k))
        after = {
            "after_tuning": {
                "events_from": result.tuned_until,
                "best_baseline": best_after[1],
                "model_vs_best_baseline": after_results["model"]["hit_rate@10"] / best_after[0]
                if best_after[0]
                else None,
                "segments": segment_comparison(after_results),
                "results": after_results,
            }
        }
    payload = {
        "task": "recommend",
        "n": result.n,
        "events": result.events,
        "format": args.format,
        "path": str(args.path),
        "seed": args.seed,
        "seconds": round(result.seconds, 1),
        "new_share": args.new_share,
        "recommend_ms_per_event": result.recommend_ms,
        "best_baseline": best[1],
        "model_vs_best_baseline": results["model"]["hit_rate@10"] / best[0] if best[0] else None,
        "segments": segment_comparison(results),
        "prequential_losses": {t: float(np.mean(v)) for t, v in model.losses.items()},
        "curves": {"window": result.window, **{k: s.curve for k, s in result.scores.items()}},
        "config": trainer.config.to_dict(),
        "results": results,
        **after,
    }
    if args.plot:
        from model.offline.plots import plot_curves

        plot_curves(payload, Path(args.plot))
    _write_json(args.json, payload)
    return payload


# --------------------------------------------------------------------------- train


def training_streams(limit: int | None = None) -> list[tuple[str, list[data.Interaction]]]:
    """The click streams the warm start learns from, in the order it learns them. The trainer
    replays them one after the other, so the ranker ends up closest to the last one: the shop
    (Taobao, where shoppers come back to what they just viewed) comes last, not MovieLens (where a
    rated film is never rated again), because the warm start serves a shop. With MovieLens last,
    a new shop's user's own just-viewed items scored about 0."""
    return [(fmt, read_stream(fmt, data.default_path(fmt))[:limit]) for fmt in ("movielens", "taobao")]


def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    """Replay the MovieLens then the Taobao stream through the example builders and the trainer,
    interleaving ``--epochs`` passes over the training 80% of both review sets, then save a
    training checkpoint in ``--out`` and, with ``--warm-start``, the shipped warm start."""
    from model.offline.evaluate import (
        ModelRecommender,
        prequential,
        replay_catalog,
        review_examples,
        snapshot_sentiment,
        split,
    )
    from model.snapshot import Snapshot, SnapshotStore
    from model.training import Trainer

    store = SnapshotStore(args.out, keep=args.keep)
    if store.versions():  # every run counts its versions from 1: it could not save at the end
        raise SystemExit(f"{args.out} already holds a training run's snapshots: remove it or choose another --out")
    sources = {name: data.default_path(name) for name in ("taobao", "movielens", "reviews-zh", "reviews-en")}
    checksums = {name: sha256_file(p) for name, p in sources.items()}
    reviews: list[Any] = []
    held_out: dict[str, list[data.LabeledReview]] = {}
    for name in ("reviews-zh", "reviews-en"):
        train, held_out[name] = split(read_reviews(sources[name]), seed=args.seed)
        reviews += review_examples(train[: args.limit] if args.limit else train)
    streams = training_streams(args.limit)
    total_events = sum(len(ev) for _, ev in streams)
    review_budget = len(reviews) * args.epochs
    rng = np.random.default_rng(args.seed)
    feed = _cycle_shuffled(reviews, rng)

    per_flush = round(review_budget / max(total_events, 1) * 256)

    def extra() -> list[Any]:
        return [next(feed) for _ in range(per_flush)]

    trainer = Trainer(_config(args), seed=args.seed)
    started = time.perf_counter()
    for fmt, events in streams:
        catalog, clock = replay_catalog(POPULARITY_HALF_LIFE[fmt])
        model = ModelRecommender(
            trainer,
            catalog,
            interest_half_life_s=INTEREST_HALF_LIFE_S,
            seed=args.seed,
            train_every=256,
            extra_examples=extra,
        )
        with progress_bar(len(events), f"training on {fmt}") as advance:
            prequential(
                events,
                [model],
                catalog,
                clock,
                is_positive=lambda e: False,
                interest_half_life_s=INTEREST_HALF_LIFE_S,
                popularity_half_life_s=POPULARITY_HALF_LIFE[fmt],
                progress=advance,
            )
    command = (
        "shopguide train " + " ".join(sys.argv[sys.argv.index("train") + 1 :])
        if "train" in sys.argv
        else "shopguide train"
    )
    extra_meta = {
        "data_sha256": checksums,
        "command": command,
        "seed": args.seed,
        "epochs": args.epochs,
        "seconds": round(time.perf_counter() - started, 1),
    }
    snapshot = trainer.export(with_optimizer=True, extra=extra_meta)
    path = store.save(snapshot)
    payload: dict[str, Any] = {
        "task": "train",
        "snapshot": str(path),
        "version": snapshot.version,
        "counters": snapshot.counters,
        **extra_meta,
    }
    scored = {"checkpoint": snapshot}
    if args.warm_start:
        payload["warm_start"] = write_warm_start(snapshot, Path(args.warm_start))
        scored["warm_start"] = Snapshot.from_bytes(Path(args.warm_start).read_bytes())
    # What the float16, pruned warm start loses against the full checkpoint, if anything, on the
    # reviews training held out.
    payload["held_out_sentiment"] = {
        f"{name}/{label}": snapshot_sentiment(snap, rows)
        for name, rows in held_out.items()
        for label, snap in scored.items()
    }
    _write_json(args.json, payload)
    return payload


def _take(feed: Iterator[Any], n: int) -> list[Any]:
    return [next(feed) for _ in range(n)]


def _cycle_shuffled(items: list[Any], rng: np.random.Generator) -> Iterator[Any]:
    while True:
        for i in rng.permutation(len(items)):
            yield items[i]


WARM_START_MAX_BYTES = 4_800_000


def write_warm_start(snapshot: Any, path: Path, max_bytes: int = WARM_START_MAX_BYTES) -> dict[str, Any]:
    """The shipped warm start: serving weights only, float16, non-zero rows only. Item-id and
    category rows are dropped (a new shop's item ids and category names mean nothing to a model
    trained on Taobao and MovieLens ids: a category of the new shop that happened to hash onto a
    Taobao category's bucket would inherit its learnt popularity and steal the user's published
    interests). Row 0 of both (the "unknown" item and category the sentiment head sees at serving),
    text and every dense weight (towers, the ranker, the interest head's share multipliers) are
    kept. If that is still over ``max_bytes`` the text n-gram rows with the smallest norms (rare
    n-grams) are pruned until it fits."""
    weights = snapshot.serving_weights()
    for table in ("item_table", "category_table"):
        weights[table] = np.zeros_like(weights[table])
        weights[table][0] = snapshot.weights[table][0]
    text = weights["text_table"]
    norms = np.linalg.norm(text, axis=1)
    order = np.flatnonzero(norms > 0)
    order = order[np.argsort(norms[order], kind="stable")]  # weakest first
    pruned = 0
    blob = replace(snapshot, weights=weights).to_bytes(dtype="float16")
    while len(blob) > max_bytes and pruned < len(order):
        pruned = min(len(order), pruned + (len(blob) - max_bytes) // (text.shape[1] * 2 + 4) + 256)
        weights["text_table"] = text.copy()
        weights["text_table"][order[:pruned]] = 0.0
        blob = replace(snapshot, weights=weights).to_bytes(dtype="float16")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, blob)
    return {
        "path": str(path),
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "text_rows_pruned": int(pruned),
    }


# --------------------------------------------------------------------------- ablation


def cmd_evaluate_ablation(args: argparse.Namespace) -> dict[str, Any]:
    """Each task alone versus all jointly, on the same stream and the same number of steps:
    the Taobao replay (first ``--events`` events) with the training reviews interleaved; figures
    are the prequential hit rate (recommend), prequential cross-entropy (interest), and held-out
    accuracy (sentiment) and RMSE (rating) on the review test splits."""
    from model.offline.evaluate import (
        ModelRecommender,
        classification_figures,
        prequential,
        replay_catalog,
        review_examples,
        sentiment_scores,
        split,
    )
    from model.training import Trainer

    events = read_stream("taobao", data.default_path("taobao"))[: args.events]
    trains, tests = [], []
    for name in ("reviews-zh", "reviews-en"):
        tr, te = split(read_reviews(data.default_path(name)), seed=args.seed)
        trains += tr[: args.reviews]
        tests.append((name, te))
    reviews = review_examples(trains)
    base = ModelConfig()
    variants: dict[str, ModelConfig] = {
        "joint (mmoe)": base,
        "joint (shared-bottom)": base.with_(experts=0),
        "joint (mmoe, uncertainty weights)": base.with_(uncertainty_weighting=True),
    }
    for task in TASKS:
        variants[f"{task} alone"] = base.with_(task_weights={task: 1.0})
    out: dict[str, Any] = {}
    for label, config in variants.items():
        rng = np.random.default_rng(args.seed)
        feed = _cycle_shuffled(reviews, rng)
        per_flush = round(len(reviews) * args.epochs / len(events) * 256)
        trainer = Trainer(config, seed=args.seed)
        catalog, clock = replay_catalog(POPULARITY_HALF_LIFE["taobao"])
        model = ModelRecommender(
            trainer,
            catalog,
            interest_half_life_s=INTEREST_HALF_LIFE_S,
            seed=args.seed,
            extra_examples=functools.partial(_take, feed, per_flush),
        )
        with progress_bar(len(events), f"ablation: {label}") as advance:
            result = prequential(
                events,
                [model],
                catalog,
                clock,
                is_positive=lambda e: True,
                interest_half_life_s=INTEREST_HALF_LIFE_S,
                popularity_half_life_s=POPULARITY_HALF_LIFE["taobao"],
                progress=advance,
            )
        figures: dict[str, Any] = {
            "recommend_hit_rate@10": result.results()["model"]["hit_rate@10"],
            "interest_prequential_xent": float(np.mean(model.losses.get("interest", [np.nan]))),
        }
        for name, test in tests:
            labels = np.array([r.label for r in test])
            probs = sentiment_scores(model.serving, [r.text for r in test])
            threshold = model.serving.sentiment_threshold
            figures[f"sentiment_accuracy_{name}"] = classification_figures(labels, probs, threshold)["accuracy"]
        rated = [r for _, test in tests for r in test if r.rating is not None]
        predicted = np.array(model.serving.rating_many([r.text for r in rated]))
        figures["rating_rmse"] = float(np.sqrt(np.mean((predicted - [r.rating for r in rated]) ** 2)))
        if config.uncertainty_weighting:
            log_vars = model.serving.snapshot.weights["task_log_vars"]
            figures["learned_weights"] = {t: float(np.exp(-v)) for t, v in zip(TASKS, log_vars, strict=True)}
        out[label] = figures
        print(label, json.dumps(figures), file=sys.stderr)
    payload = {
        "task": "ablation",
        "events": len(events),
        "reviews": len(reviews),
        "epochs": args.epochs,
        "seed": args.seed,
        "results": out,
    }
    _write_json(args.json, payload)
    return payload


def cmd_evaluate_speed(args: argparse.Namespace) -> dict[str, Any]:
    from model.offline.speed import run

    payload: dict[str, Any] = {"task": "speed", "results": run(seed=args.seed)}
    if args.snapshot:
        from model.offline.speed import snapshot_costs
        from model.snapshot import Snapshot

        trained = Snapshot.from_bytes(Path(args.snapshot).read_bytes())
        payload["trained_snapshot"] = {"path": args.snapshot, **snapshot_costs(trained)}
    _write_json(args.json, payload)
    return payload


# --------------------------------------------------------------------------- CLI wiring


def register(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate {sentiment,recommend,ablation}`` to an argparse CLI."""
    train = subparsers.add_parser("train", help="train the multi-task model on ../shared/data")
    train.add_argument("--out", required=True, help="snapshot directory (created)")
    train.add_argument("--warm-start", help="also write the shipped warm start to this file")
    train.add_argument("--epochs", type=int, default=4, help="passes over the training reviews")
    train.add_argument("--limit", type=int, help="use only the first N rows of each data set")
    train.add_argument("--keep", type=int, default=5, help="snapshots kept in --out")
    _common(train)
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser("evaluate", help="evaluate the model beside baselines")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    sent = kinds.add_parser(
        "sentiment", help="macro-F1, per-class precision/recall and calibration on a labelled review CSV"
    )
    sent.add_argument("--path", required=True, help="CSV with label,review[,cat] columns")
    sent.add_argument(
        "--epochs", type=int, default=12, help="most epochs; a 10%% validation share of the training rows stops early"
    )
    sent.add_argument("--holdout-cat", help="test on this category, train on the others")
    sent.add_argument("--snapshot", help="also score a trained snapshot file (no training)")
    sent.add_argument(
        "--balance", action="store_true", help="train the model with the rarer class's reviews repeated (re-sampling)"
    )
    sent.add_argument(
        "--no-class-weights", action="store_true", help="train the model without class weights in the sentiment loss"
    )
    sent.add_argument(
        "--negative-recall",
        type=float,
        metavar="FLOOR",
        help="choose the decision threshold among those finding at least FLOOR of the validation "
        "share's negative reviews (default: the model's, ModelConfig.sentiment_negative_recall)",
    )
    sent.add_argument(
        "--folds",
        type=int,
        default=0,
        help="fit the calibration and threshold on out-of-fold scores of every training row, from "
        "this many models (at least 2) trained as many epochs as the validation share chose "
        "(default 0: on the validation share alone)",
    )
    _common(sent)
    sent.set_defaults(func=cmd_evaluate_sentiment)

    rec = kinds.add_parser(
        "recommend", help="prequential HitRate@10 / NDCG@10 replay, per segment, with pool recall and coverage"
    )
    rec.add_argument("--format", choices=("taobao", "movielens"), required=True)
    rec.add_argument("--path", required=True)
    rec.add_argument("--limit", type=int, help="replay only the first N events")
    rec.add_argument("--train-every", type=int, default=256, help="events per training batch")
    rec.add_argument("--window", type=int, default=2000, help="positives per hit-rate point")
    rec.add_argument("--plot", help="PNG of the hit rate over the replay")
    rec.add_argument(
        "--tuned-until",
        type=int,
        default=TUNING_EVENTS,
        help="events of the stream's prefix used for tuning decisions; the positives "
        "after it are also reported on their own (after_tuning)",
    )
    rec.add_argument(
        "--new-share",
        type=_share,
        default=NEW_SHARE,
        help="share of the model's top 10 held for items new to the user, as the engine publishes it (0: off)",
    )
    rec.add_argument(
        "--compare-shares",
        type=lambda text: [_share(s) for s in text.split(",")],
        default=[0.0],
        help="other shares scored on the model's same rankings (model_new_share_<share>; comma-separated)",
    )
    _common(rec)
    rec.set_defaults(func=cmd_evaluate_recommend)

    abl = kinds.add_parser("ablation", help="each task alone versus jointly")
    abl.add_argument("--events", type=int, default=40_000, help="Taobao events replayed")
    abl.add_argument("--reviews", type=int, default=8_000, help="training reviews per language")
    abl.add_argument("--epochs", type=int, default=3, help="passes over the reviews")
    abl.add_argument("--seed", type=int, default=DEFAULT_SEED)
    abl.add_argument("--json", help="write the results here")
    abl.set_defaults(func=cmd_evaluate_ablation)

    speed = kinds.add_parser("speed", help="benchmarks of the model path (synthetic data)")
    speed.add_argument("--snapshot", help="also measure the snapshot costs of this trained checkpoint")
    speed.add_argument("--seed", type=int, default=DEFAULT_SEED)
    speed.add_argument("--json", help="write the results here")
    speed.set_defaults(func=cmd_evaluate_speed)
    from guide.evaluation import register as register_guide  # the shopping guide's figures

    register_guide(kinds)


def _share(text: str) -> float:
    share = float(text)
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"a share is between 0 and 1, got {text}")
    return share


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--shared-bottom", action="store_true", help="shared-bottom, not MMoE")
    parser.add_argument("--uncertainty", action="store_true", help="learn task weights (Kendall et al. 2018)")
    parser.add_argument(
        "--history-attention", action="store_true", help="also read the history as a sequence (attention)"
    )
