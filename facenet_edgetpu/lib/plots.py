"""The embeddings figure of the fidelity stage, as reproducible PNG bytes."""
from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np


def embeddings_png(points: Mapping[str, np.ndarray], labels: Sequence[str],
                   titles: Mapping[str, str], explained: Sequence[float]) -> bytes:
    """One scatter panel per variant (shared axes), coloured by person, as PNG bytes.

    Drawn with the Agg canvas directly (no pyplot state); the PNG carries no metadata
    (matplotlib would write its version as 'Software'), so equal points give equal bytes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    variants = list(points)
    people = sorted(set(labels))
    figure = Figure(figsize=(4.2 * len(variants), 4.6), dpi=100)
    FigureCanvasAgg(figure)
    stacked = np.concatenate([points[v] for v in variants])
    low, high = stacked.min(axis=0), stacked.max(axis=0)
    pad = 0.08 * np.maximum(high - low, 1e-9)
    colours = {p: "C{}".format(i % 10) for i, p in enumerate(people)}
    label_array = np.asarray(labels)
    for index, variant in enumerate(variants):
        ax = figure.add_subplot(1, len(variants), index + 1)
        for person in people:
            xy = points[variant][label_array == person]
            ax.scatter(xy[:, 0], xy[:, 1], s=28, color=colours[person], label=person,
                       edgecolors="black", linewidths=0.4)
        ax.set_xlim(low[0] - pad[0], high[0] + pad[0])
        ax.set_ylim(low[1] - pad[1], high[1] + pad[1])
        ax.set_title(titles[variant], fontsize=9)
        ax.set_xlabel("PC1 of float ({:.0%} of variance)".format(explained[0]), fontsize=8)
        ax.set_ylabel("PC2 of float ({:.0%} of variance)".format(explained[1]), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.3)
        if index == 0:
            ax.legend(fontsize=7, loc="best")
    figure.suptitle("Val-face embeddings on the float model's first two principal axes",
                    fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()
