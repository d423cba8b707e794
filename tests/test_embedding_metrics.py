"""lib/embedding_metrics.py on small vectors whose expected values are derived by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from facenet_edgetpu.lib import embedding_metrics as M

SQRT5 = math.sqrt(5.0)


# --- cosine, L2, agreement ------------------------------------------------------------------

def test_cosine_of_identical_orthogonal_opposite_and_zero_rows():
    a = np.array([[1.0, 0.0], [1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    b = np.array([[0.0, 5.0], [2.0, 4.0], [-3.0, -4.0], [1.0, 1.0]])
    assert M.cosine_rows(a, b) == pytest.approx([0.0, 1.0, -1.0, 0.0], abs=1e-12)


def test_l2_rows():
    assert M.l2_rows([[0.0, 0.0], [1.0, 1.0]], [[3.0, 4.0], [1.0, 1.0]]).tolist() == [5.0, 0.0]


def test_agreement_summarises_cosine_and_l2_per_face():
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    other = np.array([[1.0, 0.0], [0.0, -2.0]])
    assert M.agreement(reference, other) == {
        "cosine_mean": 0.0, "cosine_min": -1.0, "l2_mean": 2.0, "l2_max": 4.0}


def test_rounded_fixes_decimals_and_negative_zero():
    assert M.rounded(0.12345678) == 0.123457
    assert math.copysign(1.0, M.rounded(-0.0000001)) == 1.0


# --- nearest neighbour ----------------------------------------------------------------------

def test_nearest_neighbour_accuracy_with_a_hand_made_gallery():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    gallery_labels = ["a", "b", "c"]
    # cosines of [0.2, -1] with a, b, c: 0.2, -1, -0.2 (over its norm): nearest is a, not c.
    probes = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, -1.0]])
    assert M.nearest_neighbour(probes, gallery, gallery_labels) == ["a", "b", "a"]
    assert M.nearest_neighbour_accuracy(probes, ["a", "b", "c"], gallery,
                                        gallery_labels) == pytest.approx(2.0 / 3.0)


def test_nearest_neighbour_is_by_direction_and_takes_the_first_on_ties():
    gallery = np.array([[10.0, 0.0], [0.0, 0.1]])
    assert M.nearest_neighbour(np.array([[1.0, 1.0], [0.0, 50.0]]), gallery,
                               ["x", "y"]) == ["x", "y"]


# --- pairs, ROC, EER, AUC -------------------------------------------------------------------

def test_pair_scores_cover_every_pair_once_in_order():
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    scores, same = M.pair_scores(embeddings, ["p", "p", "q"])
    assert scores == pytest.approx([1.0, 0.0, 0.0])
    assert same.tolist() == [True, False, False]


def test_perfectly_separable_scores():
    scores = np.array([0.9, 0.3, 0.8, 0.1])
    positive = np.array([True, False, True, False])
    fpr, tpr, thresholds = M.roc_points(scores, positive)
    assert fpr.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.9, 0.8, 0.3, 0.1]
    assert M.equal_error_rate(fpr, tpr, thresholds) == (0.0, 0.8)
    assert M.auc(fpr, tpr) == 1.0


def test_fully_overlapping_scores():
    # Every score tied: one diagonal step from (0, 0) to (1, 1).
    fpr, tpr, thresholds = M.roc_points(np.full(4, 0.5), np.array([True, False, True, False]))
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]
    assert M.equal_error_rate(fpr, tpr, thresholds) == (0.5, 0.5)
    assert M.auc(fpr, tpr) == 0.5
    # The same scores for both classes, not all tied: still chance level.
    fpr, tpr, thresholds = M.roc_points(np.array([0.9, 0.9, 0.1, 0.1]),
                                        np.array([True, False, True, False]))
    assert M.equal_error_rate(fpr, tpr, thresholds)[0] == 0.5
    assert M.auc(fpr, tpr) == 0.5


def test_inverted_scores_give_eer_one_and_auc_zero():
    fpr, tpr, thresholds = M.roc_points(np.array([0.1, 0.9]), np.array([True, False]))
    assert M.equal_error_rate(fpr, tpr, thresholds)[0] == 1.0
    assert M.auc(fpr, tpr) == 0.0


def test_eer_is_interpolated_on_a_diagonal_segment():
    # 0.8 P, 0.5 P and N (tied), 0.2 N -> (0, 0), (0, .5), (.5, 1), (1, 1); FPR = FNR = .25
    # halfway along the tie. AUC = P(pos > neg) + P(tie) / 2 = 3.5 / 4.
    fpr, tpr, thresholds = M.roc_points(np.array([0.8, 0.5, 0.5, 0.2]),
                                        np.array([True, True, False, False]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert M.equal_error_rate(fpr, tpr, thresholds) == (0.25, 0.5)
    assert M.auc(fpr, tpr) == 0.875


def test_roc_needs_both_classes():
    with pytest.raises(ValueError):
        M.roc_points(np.array([0.1, 0.2]), np.array([True, True]))


def test_verification_of_embeddings():
    embeddings = np.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]])
    result = M.verification(embeddings, ["a", "a", "b", "b"])
    assert (result["pairs"], result["genuine_pairs"]) == (6, 2)
    assert (result["eer"], result["auc"]) == (0.0, 1.0)
    assert result["eer_threshold"] == pytest.approx(0.99 / 1.01)  # cosine within a person


def test_roc_csv_has_x_and_y_columns():
    text = M.roc_csv(np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 1.0]))
    assert text == "fpr,tpr\n0.000000,0.000000\n0.500000,1.000000\n1.000000,1.000000\n"


# --- PCA and the plot -----------------------------------------------------------------------

def test_pca_axes_follow_variance_and_sign_convention():
    x = np.array([[0.0, 3.0, 0.0], [0.0, -3.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    for data in (x, -x, x + 5.0):
        mean, axes = M.pca_basis(data)
        assert axes == pytest.approx(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), abs=1e-12)
    mean, axes = M.pca_basis(x)
    projected = M.project(np.array([[0.0, 3.0, 0.0]]), mean, axes)
    assert projected == pytest.approx(np.array([[3.0, 0.0]]))


def test_pca_sign_fix_makes_largest_coordinate_positive():
    # Points along (1, -2): the raw axis is +-(1, -2)/sqrt 5; -2 is the larger, so it flips.
    line = np.array([[2.0, -4.0], [0.0, 0.0], [-2.0, 4.0], [1.0, -2.0]])
    for data in (line, -line, line[::-1]):
        mean, axes = M.pca_basis(data, components=1)
        assert axes[0] == pytest.approx([-1.0 / SQRT5, 2.0 / SQRT5])


def test_pca_is_deterministic():
    data = np.random.RandomState(0).normal(size=(25, 128))
    first, second = M.pca_basis(data), M.pca_basis(data.copy())
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1].tobytes() == second[1].tobytes()
