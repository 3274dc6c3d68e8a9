"""Figures for people: the hit rate of every method along a prequential replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curves(payload: dict[str, Any], path: Path) -> None:
    """One line per method: HitRate@10 over consecutive windows of positives (the model's
    rankings with other shares of new items left out: they lie on the model's line)."""
    import matplotlib

    from model.offline.evaluate import is_model

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = payload["curves"]
    window = curves["window"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in curves.items():
        if name == "window" or not curve or (is_model(name) and name != "model"):
            continue
        xs = [(i + 1) * window for i in range(len(curve))]
        ax.plot(xs, curve, label=name, linewidth=2 if name == "model" else 1)
    ax.set_xlabel("positive events replayed")
    ax.set_ylabel(f"HitRate@10 per {window} positives")
    ax.set_title(f"Prequential replay: {payload.get('format', '')}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
