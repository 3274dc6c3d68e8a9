"""The model's hyperparameters: one frozen, JSON-serialisable object shared by training, snapshots
and serving.

A snapshot carries the config it was trained with, so a worker or a resumed trainer rebuilds the
exact shapes from the snapshot alone; :func:`weight_shapes` is the single source of those shapes,
used to build the Keras network and to verify a snapshot before any weight is used. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from model.candidate_features import CANDIDATE_FEATURES
from model.errors import ConfigError

TASKS: tuple[str, ...] = ("recommend", "interest", "sentiment", "rating")
#: User activity counts: one per action plus the user's review count (log1p-scaled).
N_COUNTS = 6
#: Codes of a history item's action for the attended history: 0 pads, then one per action
#: (``model.features``: its fixed input weight, 1 to 5).
ACTION_CODES = 6
#: Starting bias of every ReLU layer (experts / shared bottom, task towers, the ranker's and the
#: sentiment head's hidden layers). Not 0: a review's shared input is exactly zero at first (empty
#: user context, all-zero text rows), and ReLU(0) has gradient 0, so with zero biases nothing
#: behind the first ReLU, the text rows' deep part included, ever received a gradient from
#: reviews: trained on reviews alone the sentiment head stayed a wide (hashed logistic
#: regression) model, and only clicks, moving the shared biases, woke the deep part up.
RELU_BIAS_INIT = 0.1


@dataclass(frozen=True)
class ModelConfig:
    """Shapes, bounded hash spaces and training options.

    Hash spaces are powers of two so that memory is fixed whatever the catalog or vocabulary size;
    bucket 0 of each space is reserved for padding and unknown values.
    """

    item_buckets: int = 1 << 17
    category_buckets: int = 1 << 12
    text_buckets: int = 1 << 17
    dim: int = 32  # item and category embeddings, user vector
    text_dim: int = 16
    hidden: int = 64  # shared bottom / expert width
    tower: int = 32  # per-task tower width
    experts: int = 4  # MMoE experts; 0 = shared-bottom
    history: int = 20  # recent items pooled into the user vector
    #: Also read the history as a sequence: each of the last ``history`` items with its position
    #: and action, attended to by a query from the newest one (:mod:`model.network`), one more
    #: vector of the shared input. Per user, not per candidate: ranking costs the same.
    history_attention: bool = False
    interests: int = 8  # decayed category interests fed to the network
    text_features: int = 256  # hashed text n-grams kept per review
    negatives: int = 6  # sampled negatives per click
    batch_size: int = 256
    #: Adam, dense weights. 5e-3 with item rows at 0.1 lifted the MovieLens replay (1.160 ->
    #: 1.179 times the best baseline) but cost the shop held out of training 1.1 points of
    #: sentiment accuracy (0.8538 -> 0.8426): not adopted.
    learning_rate: float = 2e-3
    text_learning_rate: float = 0.2  # Adagrad, sparse rows of the text table
    item_learning_rate: float = 0.2  # Adagrad, sparse rows of the item table
    #: Adagrad, the ranker's linear part over the candidate features: a new shop's first minutes
    #: are decided by how fast the ranker learns which features count there (a MovieLens user
    #: never rates a film twice, a Taobao shopper comes back to what they viewed), faster than
    #: Adam at 2e-3 moves the MLP; Adagrad's step then shrinks on its own.
    wide_learning_rate: float = 0.3
    clipnorm: float = 5.0
    task_weights: dict[str, float] = field(
        default_factory=lambda: {"recommend": 1.0, "interest": 0.5, "sentiment": 1.0, "rating": 0.5}
    )
    uncertainty_weighting: bool = False  # Kendall et al. 2018: learn the task weights
    review_context_dropout: float = 0.5  # serving scores reviews without user/item context
    #: Share of a training review's n-grams hidden (inverted dropout, reviews only; serving sees
    #: every n-gram): keeps the deep text part from memorising rare n-grams.
    text_dropout: float = 0.5
    #: The layout of a candidate's feature row (:mod:`model.candidate_features`). Configs from
    #: before it was recorded were all trained on the layout of that time, which is this one.
    candidate_features: tuple[str, ...] = CANDIDATE_FEATURES
    #: Weigh each review in the sentiment loss by the inverse share of its class among the reviews
    #: learnt so far, so that a rare class (the unhappy reviews of a shop that mostly pleases)
    #: counts as much as the common one and the head cannot settle on "all positive".
    sentiment_class_weights: bool = True
    #: Platt scaling of the sentiment logit, ``(slope, intercept)``: the published score is
    #: ``sigmoid(slope * logit + intercept)``. Fitted on reviews the weights did not learn from
    #: (:mod:`model.calibration`); identity until then.
    sentiment_calibration: tuple[float, float] = (1.0, 0.0)
    #: A review is labelled positive when its calibrated score is at least this: chosen with the
    #: calibration, for the best macro-F1 on the same reviews.
    sentiment_threshold: float = 0.5
    #: Share of the held-out negative reviews the decision threshold must find (a recall floor:
    #: among the thresholds that do, the best macro-F1), for a shop that would rather see more of
    #: its unhappy reviews than fewer false alarms. 0 chooses on macro-F1 alone. Not on by
    #: default: 0.88 lifted English negative recall offline but cost the online model positive
    #: recall on a 3%-negative stream (docs/sentiment.md, 2026-12-07).
    sentiment_negative_recall: float = 0.0

    def __post_init__(self) -> None:
        for name in ("item_buckets", "category_buckets", "text_buckets"):
            n = getattr(self, name)
            if n < 2 or n & (n - 1):
                raise ConfigError(f"{name} must be a power of two >= 2, got {n}")
        if self.experts < 0 or min(self.dim, self.text_dim, self.hidden, self.tower) < 1:
            raise ConfigError("dimensions must be positive (experts may be 0: shared-bottom)")
        unknown = set(self.task_weights) - set(TASKS)
        if unknown:
            raise ConfigError(f"unknown tasks in task_weights: {sorted(unknown)}")
        if any(w < 0 for w in self.task_weights.values()):
            raise ConfigError("task weights must be >= 0")
        calibration = self.sentiment_calibration
        if len(calibration) != 2 or not all(_finite_number(v) for v in calibration):
            raise ConfigError(f"sentiment_calibration must be two finite numbers, got {calibration}")
        if not _finite_number(self.sentiment_threshold) or not 0.0 < self.sentiment_threshold < 1.0:
            raise ConfigError(f"sentiment_threshold must be in (0, 1), got {self.sentiment_threshold}")
        floor = self.sentiment_negative_recall
        if not _finite_number(floor) or not 0.0 <= floor <= 1.0:
            raise ConfigError(f"sentiment_negative_recall must be in [0, 1], got {floor}")

    @property
    def variant(self) -> str:
        return "mmoe" if self.experts else "shared-bottom"

    def weight(self, task: str) -> float:
        return float(self.task_weights.get(task, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config options: {sorted(unknown)}")
        for name in ("candidate_features", "sentiment_calibration"):
            if name in data:
                data = {**data, name: tuple(data[name])}
        return cls(**data)

    def with_(self, **changes: Any) -> ModelConfig:
        return ModelConfig.from_dict({**self.to_dict(), **changes})


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def shared_input_width(config: ModelConfig) -> int:
    """Width of the shared feature vector: pooled history, the attended history (with
    ``history_attention``), interests, counts, review text."""
    return (3 if config.history_attention else 2) * config.dim + N_COUNTS + config.text_dim


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every weight of the network, by name, with its shape. The Keras network creates exactly
    these; the numpy scorer reads exactly these; a snapshot must hold exactly these."""
    d, h, t = config.dim, config.hidden, config.tower
    x = shared_input_width(config)
    shapes: dict[str, tuple[int, ...]] = {
        # Embedding tables; the last column(s) are per-bucket biases / wide weights.
        "item_table": (config.item_buckets, d + 1),
        "category_table": (config.category_buckets, d + 1),
        "text_table": (config.text_buckets, config.text_dim + 2),  # deep | sentiment | rating
    }
    if config.history_attention:
        shapes |= {
            "history/position": (config.history, d),
            "history/action": (ACTION_CODES, d),
            "history/query/kernel": (d, d),
            "history/query/bias": (d,),
        }
    if config.experts:
        shapes |= {
            "experts/kernel": (config.experts, x, h),
            "experts/bias": (config.experts, h),
            "gates/kernel": (len(TASKS), x, config.experts),
            "gates/bias": (len(TASKS), config.experts),
        }
    else:
        shapes |= {"bottom/kernel": (x, h), "bottom/bias": (h,)}
    for task in TASKS:
        shapes |= {f"{task}/tower/kernel": (h, t), f"{task}/tower/bias": (t,)}
    f = len(config.candidate_features)
    shapes |= {
        "recommend/user/kernel": (t, d),
        "recommend/user/bias": (d,),
        "recommend/features/kernel": (f + t, 32),
        "recommend/features/bias": (32,),
        "recommend/features/out": (32, 1),
        "recommend/bias": (1,),
        "recommend/wide": (f,),  # a linear term over the candidate features
        "interest/query/kernel": (t, d),
        "interest/query/bias": (d,),
        "interest/prior": (2,),  # weights of the user's own interest and recent-category shares
        "sentiment/hidden/kernel": (t + d + config.text_dim, 32),
        "sentiment/hidden/bias": (32,),
        "sentiment/out": (32, 1),
        "sentiment/bias": (1,),
        "rating/out": (t, 1),
        "rating/bias": (1,),
        "task_log_vars": (len(TASKS),),
    }
    return shapes


#: The biases that feed a ReLU (``model.network``).
RELU_BIASES = frozenset(
    {
        "experts/bias",
        "bottom/bias",
        *(f"{t}/tower/bias" for t in TASKS),
        "recommend/features/bias",
        "sentiment/hidden/bias",
    }
)


def initial_weights(config: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """Starting weights, from numpy alone so that a seed gives the same model everywhere.

    Embedding tables start at zero: an untouched bucket then contributes nothing (an unseen item
    or n-gram is neutral), and a snapshot can store only the rows that training touched. Kernels
    are Glorot-uniform over their last two axes; the biases of ReLU layers start at
    :data:`RELU_BIAS_INIT` (so that an all-zero input still passes gradients), other biases at zero.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in weight_shapes(config).items():
        if name in RELU_BIASES:
            out[name] = np.full(shape, RELU_BIAS_INIT, np.float32)
        elif name.endswith("_table") or len(shape) == 1 or name.endswith("bias"):
            out[name] = np.zeros(shape, np.float32)
        else:
            limit = np.sqrt(6.0 / (shape[-2] + shape[-1]))
            out[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
    return out
