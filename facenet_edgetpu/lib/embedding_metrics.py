"""How close two sets of face embeddings are, and how well they tell people apart (numpy only).

Cosine and L2 agreement of paired embeddings, nearest-neighbour identity accuracy against a
gallery, ROC / AUC / equal error rate of verification over every pair, and a deterministic 2-D
projection (PCA by SVD with fixed signs). Reproducible outputs are rounded to DECIMALS.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

DECIMALS = 6  # every figure in the reproducible outputs is rounded to this many decimals


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (an all-zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of a[i] and b[i] for every row i (0 when either row is zero)."""
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def l2_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between a[i] and b[i] for every row i."""
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64), axis=-1)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of every row of `a` (rows of the result) with every row of `b`."""
    return l2_normalize(a) @ l2_normalize(b).T


def nearest_neighbour(probes: np.ndarray, gallery: np.ndarray,
                      gallery_labels: Sequence[str]) -> List[str]:
    """The label of each probe's most cosine-similar gallery row (the first one on ties)."""
    if len(gallery) == 0:
        raise ValueError("the gallery is empty")
    best = np.argmax(cosine_matrix(probes, gallery), axis=1)
    return [gallery_labels[int(i)] for i in best]


def nearest_neighbour_accuracy(probes: np.ndarray, probe_labels: Sequence[str],
                               gallery: np.ndarray, gallery_labels: Sequence[str]) -> float:
    """Fraction of probes whose nearest gallery row has the probe's label."""
    predicted = nearest_neighbour(probes, gallery, gallery_labels)
    return sum(p == t for p, t in zip(predicted, probe_labels)) / float(len(probe_labels))


def pair_scores(embeddings: np.ndarray, labels: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(cosine similarity, same person?) for every pair i < j, in row-major order."""
    rows, cols = np.triu_indices(len(labels), k=1)
    similarity = cosine_matrix(embeddings, embeddings)[rows, cols]
    labels = np.asarray(labels)
    return similarity, labels[rows] == labels[cols]


def roc_points(scores: np.ndarray, positive: np.ndarray
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, threshold) of "accept when score >= threshold", from (0, 0) to (1, 1).

    One point per distinct score, highest first, so tied scores move the curve diagonally;
    the first point (nothing accepted) has threshold +inf.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("a ROC needs positive and negative pairs, got {} and {}".format(
            n_pos, n_neg))
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    last_of_group = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(positive)[last_of_group]
    fp = np.cumsum(~positive)[last_of_group]
    fpr = np.r_[0.0, fp / float(n_neg)]
    tpr = np.r_[0.0, tp / float(n_pos)]
    return fpr, tpr, np.r_[np.inf, scores[last_of_group]]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under a ROC curve by the trapezoid rule."""
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray
                     ) -> Tuple[float, float]:
    """(EER, threshold): where the ROC, drawn as straight segments, crosses FPR = 1 - TPR.

    The threshold is that of the first ROC point at which FPR >= FNR (the highest threshold
    whose false-accept rate reaches the false-reject rate).
    """
    fpr, tpr = np.asarray(fpr, np.float64), np.asarray(tpr, np.float64)
    gap = fpr - (1.0 - tpr)  # FPR - FNR: -1 at (0, 0), +1 at (1, 1), never decreasing
    i = int(np.argmax(gap >= 0))
    if i == 0 or gap[i] == 0:
        return float(fpr[i]), float(thresholds[i])
    t = -gap[i - 1] / (gap[i] - gap[i - 1])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1])), float(thresholds[i])


def verification(embeddings: np.ndarray, labels: Sequence[str]) -> Dict[str, Any]:
    """ROC, AUC and EER of same-person verification over every pair of rows."""
    scores, same = pair_scores(embeddings, labels)
    fpr, tpr, thresholds = roc_points(scores, same)
    eer, threshold = equal_error_rate(fpr, tpr, thresholds)
    return {"fpr": fpr, "tpr": tpr, "auc": auc(fpr, tpr), "eer": eer,
            "eer_threshold": threshold, "pairs": len(scores), "genuine_pairs": int(same.sum())}


def pca_basis(x: np.ndarray, components: int = 2) -> Tuple[np.ndarray, np.ndarray]:
    """(mean, axes): the first principal axes of the rows of `x`, by numpy SVD.

    An axis's sign is arbitrary in SVD; it is fixed so that its largest-magnitude coordinate
    (the first one on ties) is positive, which makes the projection deterministic.
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = vt[:components].copy()
    for row in axes:
        if row[int(np.argmax(np.abs(row)))] < 0:
            row *= -1.0
    return mean, axes


def project(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of `x` on `axes` around `mean`."""
    return (np.asarray(x, dtype=np.float64) - mean) @ axes.T


def rounded(value: float) -> float:
    """A float rounded to DECIMALS (and -0.0 written as 0.0)."""
    return round(float(value), DECIMALS) + 0.0


def agreement(reference: np.ndarray, other: np.ndarray) -> Dict[str, float]:
    """Per-face cosine (mean, min) and L2 distance (mean, max) of two embeddings of each face."""
    cosine = cosine_rows(reference, other)
    distance = l2_rows(reference, other)
    return {"cosine_mean": rounded(cosine.mean()), "cosine_min": rounded(cosine.min()),
            "l2_mean": rounded(distance.mean()), "l2_max": rounded(distance.max())}


def roc_csv(fpr: np.ndarray, tpr: np.ndarray) -> str:
    """The ROC points as CSV with columns fpr, tpr."""
    lines = ["fpr,tpr"]
    lines.extend("{:.{d}f},{:.{d}f}".format(f, t, d=DECIMALS) for f, t in zip(fpr, tpr))
    return "\n".join(lines) + "\n"
