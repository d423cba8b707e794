"""Tests of facenet_edgetpu/stages/fidelity.py on small vectors whose expected values are derived by hand.

None of them uses the real FaceNet model (the pipeline's integration test runs that); the
last one builds a three-weight Keras model to exercise the TFLite plumbing.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from facenet_edgetpu.stages import fidelity as F
from facenet_edgetpu.core.params import ParamsError, section

SQRT5 = math.sqrt(5.0)


# --- cosine, L2, agreement ------------------------------------------------------------------

def test_cosine_of_identical_orthogonal_opposite_and_zero_rows():
    a = np.array([[1.0, 0.0], [1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    b = np.array([[0.0, 5.0], [2.0, 4.0], [-3.0, -4.0], [1.0, 1.0]])
    assert F.cosine_rows(a, b) == pytest.approx([0.0, 1.0, -1.0, 0.0], abs=1e-12)


def test_l2_rows():
    assert F.l2_rows([[0.0, 0.0], [1.0, 1.0]], [[3.0, 4.0], [1.0, 1.0]]).tolist() == [5.0, 0.0]


def test_agreement_summarises_cosine_and_l2_per_face():
    reference = np.array([[1.0, 0.0], [0.0, 2.0]])
    other = np.array([[1.0, 0.0], [0.0, -2.0]])
    assert F.agreement(reference, other) == {
        "cosine_mean": 0.0, "cosine_min": -1.0, "l2_mean": 2.0, "l2_max": 4.0}


def test_rounded_fixes_decimals_and_negative_zero():
    assert F.rounded(0.12345678) == 0.123457
    assert math.copysign(1.0, F.rounded(-0.0000001)) == 1.0


# --- nearest neighbour ----------------------------------------------------------------------

def test_nearest_neighbour_accuracy_with_a_hand_made_gallery():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    gallery_labels = ["a", "b", "c"]
    # cosines of [0.2, -1] with a, b, c: 0.2, -1, -0.2 (over its norm): nearest is a, not c.
    probes = np.array([[0.9, 0.1], [0.1, 0.9], [0.2, -1.0]])
    assert F.nearest_neighbour(probes, gallery, gallery_labels) == ["a", "b", "a"]
    assert F.nearest_neighbour_accuracy(probes, ["a", "b", "c"], gallery,
                                        gallery_labels) == pytest.approx(2.0 / 3.0)


def test_nearest_neighbour_is_by_direction_and_takes_the_first_on_ties():
    gallery = np.array([[10.0, 0.0], [0.0, 0.1]])
    assert F.nearest_neighbour(np.array([[1.0, 1.0], [0.0, 50.0]]), gallery,
                               ["x", "y"]) == ["x", "y"]


# --- pairs, ROC, EER, AUC -------------------------------------------------------------------

def test_pair_scores_cover_every_pair_once_in_order():
    embeddings = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    scores, same = F.pair_scores(embeddings, ["p", "p", "q"])
    assert scores == pytest.approx([1.0, 0.0, 0.0])
    assert same.tolist() == [True, False, False]


def test_perfectly_separable_scores():
    scores = np.array([0.9, 0.3, 0.8, 0.1])
    positive = np.array([True, False, True, False])
    fpr, tpr, thresholds = F.roc_points(scores, positive)
    assert fpr.tolist() == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0, 1.0]
    assert thresholds.tolist() == [np.inf, 0.9, 0.8, 0.3, 0.1]
    assert F.equal_error_rate(fpr, tpr, thresholds) == (0.0, 0.8)
    assert F.auc(fpr, tpr) == 1.0


def test_fully_overlapping_scores():
    # Every score tied: one diagonal step from (0, 0) to (1, 1).
    fpr, tpr, thresholds = F.roc_points(np.full(4, 0.5), np.array([True, False, True, False]))
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]
    assert F.equal_error_rate(fpr, tpr, thresholds) == (0.5, 0.5)
    assert F.auc(fpr, tpr) == 0.5
    # The same scores for both classes, not all tied: still chance level.
    fpr, tpr, thresholds = F.roc_points(np.array([0.9, 0.9, 0.1, 0.1]),
                                        np.array([True, False, True, False]))
    assert F.equal_error_rate(fpr, tpr, thresholds)[0] == 0.5
    assert F.auc(fpr, tpr) == 0.5


def test_inverted_scores_give_eer_one_and_auc_zero():
    fpr, tpr, thresholds = F.roc_points(np.array([0.1, 0.9]), np.array([True, False]))
    assert F.equal_error_rate(fpr, tpr, thresholds)[0] == 1.0
    assert F.auc(fpr, tpr) == 0.0


def test_eer_is_interpolated_on_a_diagonal_segment():
    # 0.8 P, 0.5 P and N (tied), 0.2 N -> (0, 0), (0, .5), (.5, 1), (1, 1); FPR = FNR = .25
    # halfway along the tie. AUC = P(pos > neg) + P(tie) / 2 = 3.5 / 4.
    fpr, tpr, thresholds = F.roc_points(np.array([0.8, 0.5, 0.5, 0.2]),
                                        np.array([True, True, False, False]))
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0] and tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert F.equal_error_rate(fpr, tpr, thresholds) == (0.25, 0.5)
    assert F.auc(fpr, tpr) == 0.875


def test_roc_needs_both_classes():
    with pytest.raises(ValueError):
        F.roc_points(np.array([0.1, 0.2]), np.array([True, True]))


def test_verification_of_embeddings():
    embeddings = np.array([[1.0, 0.1], [1.0, -0.1], [0.1, 1.0], [-0.1, 1.0]])
    result = F.verification(embeddings, ["a", "a", "b", "b"])
    assert (result["pairs"], result["genuine_pairs"]) == (6, 2)
    assert (result["eer"], result["auc"]) == (0.0, 1.0)
    assert result["eer_threshold"] == pytest.approx(0.99 / 1.01)  # cosine within a person


def test_roc_csv_has_x_and_y_columns():
    text = F.roc_csv(np.array([0.0, 0.5, 1.0]), np.array([0.0, 1.0, 1.0]))
    assert text == "fpr,tpr\n0.000000,0.000000\n0.500000,1.000000\n1.000000,1.000000\n"


# --- input quantization ---------------------------------------------------------------------

def test_seed_quantize_wraps_above_255():
    # scale = 255 / (2 - -1) = 85: -85 + 128 = 43; 128; 42.5 + 128 = 170.5 -> 170;
    # 170 + 128 = 298, which the uint8 cast wraps to 298 - 256 = 42.
    q = F.seed_quantize(np.array([-1.0, 0.0, 0.5, 2.0], np.float32))
    assert q.dtype == np.uint8 and q.tolist() == [43, 128, 170, 42]
    assert F.seed_wrapped(np.array([-1.0, 0.0, 0.5, 2.0])) == 1


def test_seed_quantize_wraps_below_0_and_truncates_towards_zero():
    # scale 85: -170 + 128 = -42 -> 256 - 42 = 214; 85 + 128 = 213.
    assert F.seed_quantize(np.array([-2.0, 0.0, 1.0])).tolist() == [214, 128, 213]
    # scale 255 / 4: -2.02 -> -0.775, truncated to 0 (not floored to -1 -> 255);
    # 1.98 -> 254.225 -> 254.
    assert F.seed_quantize(np.array([-2.02, 0.0, 1.98])).tolist() == [0, 128, 254]
    assert F.seed_wrapped(np.array([-2.02, 0.0, 1.98])) == 0


def test_seed_quantize_matches_the_seeds_code_where_the_cast_is_defined():
    image = np.array([-1.0, -0.3, 0.2, 1.0])  # symmetric: nothing leaves 0..255
    scale = (255 - 0) / (image.max() - image.min())
    expected = (image * scale + 128).astype(np.uint8)
    assert F.seed_quantize(image).tolist() == expected.tolist() == [0, 89, 153, 255]


def test_seed_quantize_of_a_constant_image_is_the_zero_point():
    assert F.seed_quantize(np.full((2, 2), 0.7)).tolist() == [[128, 128], [128, 128]]


def test_model_quantize_rounds_half_away_from_zero_and_clips_uint8():
    x = np.array([0.25, -0.25, 0.75, 1.25, 200.0, -10.0], np.float32)
    q = F.model_quantize(x, scale=0.5, zero_point=10, dtype=np.uint8)
    # x / 0.5 = .5, -.5, 1.5, 2.5 (np.round would give 2), 400, -20; + 10; clip to 0..255.
    assert q.dtype == np.uint8 and q.tolist() == [11, 9, 12, 13, 255, 0]


def test_model_quantize_int8():
    x = np.array([3.5, -3.5, 126.6, -128.4, -129.0, 1000.0])
    q = F.model_quantize(x, scale=1.0, zero_point=0, dtype=np.int8)
    assert q.dtype == np.int8 and q.tolist() == [4, -4, 127, -128, -128, 127]


def test_dequantize():
    assert F.dequantize(np.array([141, 0, 255], np.uint8), 0.5, 141).tolist() == \
        [0.0, -70.5, 57.0]


def test_seed_input_for_int8_models_shifts_by_128():
    q = np.array([0, 128, 255], np.uint8)
    assert F.seed_input_for(np.uint8, q) is q
    shifted = F.seed_input_for(np.int8, q)
    assert shifted.dtype == np.int8 and shifted.tolist() == [-128, 0, 127]
    with pytest.raises(F.FidelityError):
        F.seed_input_for(np.float32, q)


# --- PCA and the plot -----------------------------------------------------------------------

def test_pca_axes_follow_variance_and_sign_convention():
    x = np.array([[0.0, 3.0, 0.0], [0.0, -3.0, 0.0], [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    for data in (x, -x, x + 5.0):
        mean, axes = F.pca_basis(data)
        assert axes == pytest.approx(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), abs=1e-12)
    mean, axes = F.pca_basis(x)
    projected = F.project(np.array([[0.0, 3.0, 0.0]]), mean, axes)
    assert projected == pytest.approx(np.array([[3.0, 0.0]]))


def test_pca_sign_fix_makes_largest_coordinate_positive():
    # Points along (1, -2): the raw axis is +-(1, -2)/sqrt 5; -2 is the larger, so it flips.
    line = np.array([[2.0, -4.0], [0.0, 0.0], [-2.0, 4.0], [1.0, -2.0]])
    for data in (line, -line, line[::-1]):
        mean, axes = F.pca_basis(data, components=1)
        assert axes[0] == pytest.approx([-1.0 / SQRT5, 2.0 / SQRT5])


def test_pca_is_deterministic():
    data = np.random.RandomState(0).normal(size=(25, 128))
    first, second = F.pca_basis(data), F.pca_basis(data.copy())
    assert first[0].tobytes() == second[0].tobytes()
    assert first[1].tobytes() == second[1].tobytes()


def test_embeddings_png_is_reproducible_and_carries_no_metadata():
    random = np.random.RandomState(1)
    points = {v: random.normal(size=(6, 2)) for v in F.VARIANTS}
    labels = ["ann", "bob", "cy", "ann", "bob", "cy"]
    png = F.embeddings_png(points, labels, F.TITLES, [0.4, 0.2])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in png and b"matplotlib" not in png
    assert F.embeddings_png(points, labels, F.TITLES, [0.4, 0.2]) == png
    moved = dict(points, float=points["float"] + 1.0)
    assert F.embeddings_png(moved, labels, F.TITLES, [0.4, 0.2]) != png


# --- params and outputs ---------------------------------------------------------------------

def test_params_schema():
    good = {"fidelity": {"latency_runs": 20, "warmup_runs": 0}}
    assert section("fidelity", F.SCHEMA, good) == {"latency_runs": 20, "warmup_runs": 0}
    for bad in ({"latency_runs": 0, "warmup_runs": 1}, {"latency_runs": 5},
                {"latency_runs": 5, "warmup_runs": 1, "channels": "rgb"}):
        with pytest.raises(ParamsError):
            section("fidelity", F.SCHEMA, {"fidelity": bad})


def test_write_outputs(tmp_path):
    fidelity, latency = str(tmp_path / "fidelity.json"), str(tmp_path / "latency.json")
    plots = str(tmp_path / "fidelity")
    F.write_outputs({"b": 1.0, "a": {"y": 2, "x": 3}}, {"int8": "fpr,tpr\n", "float": "x\n"},
                    b"png", {"runs": 3}, fidelity, plots, latency)
    with open(fidelity, encoding="utf-8") as handle:
        assert handle.read() == '{\n  "a": {\n    "x": 3,\n    "y": 2\n  },\n  "b": 1.0\n}\n'
    with open(latency, encoding="utf-8") as handle:
        assert json.load(handle) == {"runs": 3}
    assert sorted(os.listdir(os.path.join(plots, "roc"))) == ["float.csv", "int8.csv"]
    with open(os.path.join(plots, "embeddings.png"), "rb") as handle:
        assert handle.read() == b"png"


# --- TFLite plumbing on a tiny model --------------------------------------------------------

def test_tflite_plumbing_on_a_tiny_model():
    tf = F.tensorflow()
    tf.keras.backend.clear_session()
    inputs = tf.keras.Input(shape=(2,), batch_size=1)
    dense = tf.keras.layers.Dense(2, use_bias=False, kernel_initializer="identity")
    model = tf.keras.Model(inputs, dense(inputs))
    x = np.array([[0.5, -1.0]], np.float32)

    interpreter, threads = F.make_interpreter(model_content=F.float_tflite(model), num_threads=1)
    assert threads == 1
    assert F.run_interpreter(interpreter, x) == pytest.approx(x)
    assert F.embed_keras(model, x) == pytest.approx(x)
    assert F.median_latency_ms(interpreter, x, runs=3, warmup=1) > 0.0

    def calibration():
        for value in np.linspace(-2.0, 2.0, 9, dtype=np.float32):
            yield [np.array([[value, -value]], np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    int8, _ = F.make_interpreter(model_content=converter.convert())
    scale, zero_point, dtype = F.tensor_quantization(int8.get_input_details()[0])
    assert dtype == np.uint8 and scale > 0

    def quantizer(row):
        return F.model_quantize(row, scale, zero_point, dtype)

    embedded = F.embed_int8(int8, x, quantizer, "tiny")
    assert embedded.shape == (1, 2)
    assert embedded[0] == pytest.approx(x[0], abs=0.05)


def test_tensorflow_api_paths_exist():
    tf = F.tensorflow()
    for path in F.TF2_API + tuple(p for p in F.TF1_API if p.startswith("compat.v1.")):
        target = tf
        for name in path.split("."):
            target = getattr(target, name)
        assert target is not None, path
