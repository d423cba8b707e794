"""Stage `fidelity`: how far the full-integer TFLite model is from the float Keras model.

Both models embed the same faces, preprocessed once by `facenet_edgetpu/lib/faces.py` (read with the
channel order of `representative_dataset.channels`, resized, pre-whitened). Three variants:

    float            the Keras model (loaded by `facenet_edgetpu.lib.keras_loader`), float32 input;
    int8             the quantized model `models/facenet_keras.tflite`, its input quantized
                     with the model's own input scale and zero point (as the QUANTIZE op of a
                     float-input model would: round half away from zero, then clip);
    int8_seed_input  the same quantized model fed the seed's hand-made input quantization
                     (000_*, section 3: per-image min/max scale, zero point 128, then
                     `astype(np.uint8)`, which wraps out-of-range values; see `seed_quantize`).

Outputs of the quantized model are dequantized with the model's output scale and zero point.
The probes are the val faces (never used for calibration); the gallery is the train faces,
embedded by the same variant as the probes. Faces are compared by cosine similarity (the
same ranking as L2 distance between L2-normalised embeddings).

Outputs:
    reports/fidelity.json             per variant: nearest-neighbour identity accuracy of the val
                                      faces against the train gallery, equal error rate (and
                                      its threshold) and ROC AUC of verification over all val
                                      pairs; per quantized variant, its agreement with float
                                      (per-face cosine mean/min, L2 mean/max of the raw
                                      embeddings); counts; input values clipped (model
                                      quantization) or wrapped (seed quantization).
    reports/fidelity/roc/<variant>.csv   the ROC points (columns fpr, tpr), for `dvc plots`.
    reports/fidelity/embeddings.png   val embeddings projected on the first two principal axes
                                      of the float embeddings (numpy SVD, sign-fixed), one panel
                                      per variant, coloured by person (like the seed's Fig. 6).
    reports/latency.json              median CPU latency of the float TFLite model (converted in
                                      memory here, no optimizations) and of the int8 one, single
                                      thread, after warm-up runs. The only output that differs
                                      from run to run; every other one is byte-identical.

Run from the repository root: `python -m facenet_edgetpu.fidelity`.
"""
from __future__ import annotations

import inspect
import io
import os
import statistics
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, section
from facenet_edgetpu.lib import faces
from facenet_edgetpu.lib.keras_h5 import model_input_size
from facenet_edgetpu.lib.lambda_params import lambda_functions_param
from facenet_edgetpu.lib.keras_loader import LegacyKerasError
from facenet_edgetpu.lib.manifest import manifest_path, read_manifest, split_entries
from facenet_edgetpu.lib.tf_compat import graph_mode, load_keras_model, tensorflow

ROC_DIR = "roc"                       # inside PLOTS_DIR: roc/<variant>.csv
EMBEDDINGS_PNG = "embeddings.png"     # inside PLOTS_DIR

FLOAT, INT8, SEED = "float", "int8", "int8_seed_input"
VARIANTS = (FLOAT, INT8, SEED)
TITLES = {FLOAT: "float (Keras)", INT8: "int8 (model's input scale/zero point)",
          SEED: "int8 (seed's per-image input quantization)"}

DECIMALS = 6  # every figure in the reproducible outputs is rounded to this many decimals

SCHEMA = {
    "latency_runs": Field(int, low=1, high=10000),
    "warmup_runs": Field(int, low=0, high=1000),
}

# Every TensorFlow attribute path this module uses (relative to `tensorflow`), for a check
# against the TF 1.15 and TF 2.x APIs, like `stages.quantize.TF1_API`.
TF1_API = (
    "__version__",
    "executing_eagerly",
    "compat.v1.keras.backend.clear_session",
    "compat.v1.keras.backend.set_learning_phase",
    "compat.v1.keras.backend.get_session",
    "compat.v1.lite.TFLiteConverter.from_session",
    "lite.Interpreter",
)
TF2_API = (
    "__version__",
    "executing_eagerly",
    "keras.backend.clear_session",
    "lite.TFLiteConverter.from_keras_model",
    "lite.Interpreter",
)

log = get_logger("fidelity")


class FidelityError(PipelineError, RuntimeError):
    """The inputs of the stage cannot be evaluated; the message says what to fix."""


# --------------------------------------------------------------------------------------------
# Comparing embeddings
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Input quantization
# --------------------------------------------------------------------------------------------

def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (std::round, as TFLite rounds)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def model_quantize(x: np.ndarray, scale: float, zero_point: int, dtype: Any = np.uint8
                   ) -> np.ndarray:
    """Quantize a float input with the model's own scale and zero point.

    As TFLite's QUANTIZE op: zero_point + round(x / scale) with x / scale in float32 and
    halves rounded away from zero, then clipped to the range of `dtype` (uint8 or int8).
    """
    info = np.iinfo(dtype)
    ratio = np.asarray(x, np.float32) / np.float32(scale)
    q = round_half_away(ratio.astype(np.float64)) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values of a quantized tensor: scale * (q - zero_point)."""
    return float(scale) * (np.asarray(q, np.float64) - int(zero_point))


def seed_quantize(x: np.ndarray) -> np.ndarray:
    """The seed's hand-made input quantization (000_*, section 3), arithmetic reproduced.

    The seed computes, on each pre-whitened image (float64),

        scale = (255 - 0) / (x.max() - x.min())
        q = (x * scale + 128).astype(np.uint8)

    i.e. the image's full range is made 255 wide but is centred on 128 rather than shifted
    to start at 0. Whenever the image is not symmetric around 0 (max != -min), one end leaves
    0..255. `astype(np.uint8)` does not clip: on x86-64 numpy converts through a wide integer,
    so it truncates towards zero and keeps the low 8 bits, i.e. wraps modulo 256 (-1.5 -> 255,
    256.3 -> 0, 269.7 -> 13): the brightest (or darkest) pixels turn into their opposite. That
    conversion is undefined behaviour in C, so other CPUs (the seed ran on an ARM board) may
    differ; this function spells the x86-64 result out so it is the same everywhere.
    A constant image (max == min) would divide by zero in the seed; here it maps to 128.
    """
    return np.mod(np.trunc(_seed_values(x)), 256).astype(np.uint8)


def _seed_values(x: np.ndarray) -> np.ndarray:
    """The seed's values before its uint8 cast: x * 255 / (max - min) + 128, in float64."""
    x = np.asarray(x, dtype=np.float64)
    spread = float(x.max() - x.min())
    scale = (255 - 0) / spread if spread > 0 else 0.0
    return x * scale + 128


def seed_wrapped(x: np.ndarray) -> int:
    """How many values of `x` the seed's uint8 cast wraps (outside 0..255 once truncated)."""
    truncated = np.trunc(_seed_values(x))
    return int(np.sum((truncated < 0) | (truncated > 255)))


def seed_input_for(dtype: Any, q_uint8: np.ndarray) -> np.ndarray:
    """The seed's uint8 input for a model whose input is `dtype` (uint8, or int8: q - 128)."""
    if np.dtype(dtype) == np.uint8:
        return q_uint8
    if np.dtype(dtype) == np.int8:
        return (q_uint8.astype(np.int16) - 128).astype(np.int8)
    raise FidelityError("the quantized model's input is {}; expected uint8 or int8".format(
        np.dtype(dtype).name))


# --------------------------------------------------------------------------------------------
# 2-D projection
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Report shaping
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Running the models
# --------------------------------------------------------------------------------------------

def make_interpreter(model_path: Optional[str] = None, model_content: Optional[bytes] = None,
                     num_threads: Optional[int] = None) -> Tuple[Any, Optional[int]]:
    """(allocated tf.lite.Interpreter, threads set). TF < 2.3 has no num_threads: None then."""
    interpreter_class = tensorflow().lite.Interpreter
    kwargs = {"model_path": model_path, "model_content": model_content}
    threads = None
    if num_threads is not None and \
            "num_threads" in inspect.signature(interpreter_class.__init__).parameters:
        kwargs["num_threads"] = threads = int(num_threads)
    interpreter = interpreter_class(**kwargs)
    interpreter.allocate_tensors()
    return interpreter, threads


def run_interpreter(interpreter: Any, batch: np.ndarray) -> np.ndarray:
    """One invocation on a batch-1 input already in the input tensor's dtype."""
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], batch)
    interpreter.invoke()
    return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))


def tensor_quantization(details: Mapping[str, Any]) -> Tuple[float, int, Any]:
    """(scale, zero point, dtype) of an interpreter tensor."""
    scale, zero_point = details["quantization"]
    return float(scale), int(zero_point), np.dtype(details["dtype"])


def embed_int8(interpreter: Any, images: np.ndarray, quantizer: Any, desc: str) -> np.ndarray:
    """Dequantized embeddings of the quantized model; `quantizer` maps a float image to input."""
    out_scale, out_zero, _ = tensor_quantization(interpreter.get_output_details()[0])
    rows = []
    for image in tqdm(images, desc=desc, unit="face", leave=False):
        q = run_interpreter(interpreter, quantizer(image)[np.newaxis])
        rows.append(dequantize(q[0], out_scale, out_zero))
    return np.stack(rows)


def embed_keras(model: Any, images: np.ndarray) -> np.ndarray:
    """Float embeddings, one face at a time (the model is built with batch size 1)."""
    rows = [np.asarray(model.predict_on_batch(image[np.newaxis]), np.float64)[0]
            for image in tqdm(images, desc="float", unit="face", leave=False)]
    return np.stack(rows)


def float_tflite(model: Any) -> bytes:
    """The Keras model converted to a float TFLite model in memory, no optimizations."""
    tf = tensorflow()
    if graph_mode(tf):
        session = tf.compat.v1.keras.backend.get_session()
        converter = tf.compat.v1.lite.TFLiteConverter.from_session(
            session, model.inputs, model.outputs)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return bytes(converter.convert())


def median_latency_ms(interpreter: Any, batch: np.ndarray, runs: int, warmup: int) -> float:
    """Median wall time of `runs` invocations, after `warmup` untimed ones, in ms."""
    index = interpreter.get_input_details()[0]["index"]
    interpreter.set_tensor(index, batch)
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

def load_faces(entries: Sequence[Mapping[str, Any]], faces_dir: str, size: Tuple[int, int],
               channels: str, desc: str) -> np.ndarray:
    """Every crop preprocessed exactly as for calibration: N x H x W x 3 float32."""
    return np.stack([faces.model_input(faces.read_image(os.path.join(faces_dir, e["crop"]),
                                                        channels), size)
                     for e in tqdm(entries, desc=desc, unit="face", leave=False)])


def evaluate(model_path: str, tflite_path: str, faces_dir: str, channels: str,
             lambda_functions: Mapping[str, str], latency_runs: int, warmup_runs: int
             ) -> Tuple[Dict[str, Any], Dict[str, str], bytes, Dict[str, Any]]:
    """(fidelity report, ROC CSV per variant, embeddings PNG, latency report)."""
    manifest = read_manifest(faces_dir)
    val, train = split_entries(manifest, "val"), split_entries(manifest, "train")
    if not val or not train:
        raise FidelityError("{} lists {} val and {} train crops; the evaluation needs both: "
                            "put photos under <photos>/val/<person>/ too and rerun crop_faces."
                            .format(manifest_path(faces_dir), len(val), len(train)))
    val_labels = [e["person"] for e in val]
    train_labels = [e["person"] for e in train]
    missing = sorted(set(val_labels) - set(train_labels))
    if missing:
        log.warning("val faces of %s have no train face: they can never be identified",
                    ", ".join(missing))
    if len(set(val_labels)) < 2 or len(set(val_labels)) == len(val_labels):
        raise FidelityError("verification needs val faces of at least two people and two faces "
                            "of one person; found {} faces of {} people".format(
                                len(val_labels), len(set(val_labels))))
    if not os.path.exists(tflite_path):
        raise FidelityError("{} not found: run the quantize stage first".format(tflite_path))

    size = model_input_size(model_path)
    with timed(log, "Preprocessing {} val and {} train faces ({})".format(
            len(val), len(train), channels)):
        images = {"val": load_faces(val, faces_dir, size, channels, "val faces"),
                  "train": load_faces(train, faces_dir, size, channels, "train faces")}

    int8, _ = make_interpreter(model_path=tflite_path)
    in_details = int8.get_input_details()[0]
    in_scale, in_zero, in_dtype = tensor_quantization(in_details)
    if tuple(in_details["shape"][1:]) != images["val"].shape[1:] or in_scale == 0:
        raise FidelityError("{} takes {} {} (scale {}); the Keras model's faces are {}: "
                            "quantize this model again".format(
                                tflite_path, np.dtype(in_dtype).name,
                                "x".join(map(str, in_details["shape"])), in_scale,
                                "x".join(map(str, images["val"].shape[1:]))))
    log.info("%s: input %s, scale %g, zero point %d", tflite_path, in_dtype.name, in_scale,
             in_zero)

    def own(image):
        return model_quantize(image, in_scale, in_zero, in_dtype)

    def seed(image):
        return seed_input_for(in_dtype, seed_quantize(image))

    embeddings = {v: {} for v in VARIANTS}  # type: Dict[str, Dict[str, np.ndarray]]
    with timed(log, "Loading {} and embedding with the float model".format(model_path)):
        model = load_keras_model(model_path, lambda_functions)
        for split in ("val", "train"):
            embeddings[FLOAT][split] = embed_keras(model, images[split])
    with timed(log, "Converting the float model to TFLite in memory (for latency only)"):
        float_model = float_tflite(model)
    del model
    with timed(log, "Embedding with the int8 model, two input quantizations"):
        for split in ("val", "train"):
            embeddings[INT8][split] = embed_int8(int8, images[split], own, "int8 " + split)
            embeddings[SEED][split] = embed_int8(int8, images[split], seed, "seed " + split)

    report = {"variants": {}, "vs_float": {},
              "counts": {"val_faces": len(val), "gallery_faces": len(train),
                         "people": len(set(val_labels) | set(train_labels))}}
    rocs = {}
    for variant in VARIANTS:
        probes, gallery = embeddings[variant]["val"], embeddings[variant]["train"]
        curve = verification(probes, val_labels)
        rocs[variant] = roc_csv(curve["fpr"], curve["tpr"])
        report["counts"]["pairs"] = curve["pairs"]
        report["counts"]["genuine_pairs"] = curve["genuine_pairs"]
        report["variants"][variant] = {
            "identity_accuracy": rounded(nearest_neighbour_accuracy(
                probes, val_labels, gallery, train_labels)),
            "eer": rounded(curve["eer"]), "eer_threshold": rounded(curve["eer_threshold"]),
            "auc": rounded(curve["auc"]),
            "embedding_norm_mean": rounded(np.linalg.norm(probes, axis=1).mean()),
        }
        if variant != FLOAT:
            report["vs_float"][variant] = agreement(embeddings[FLOAT]["val"], probes)
    values = float(images["val"].size)
    own_q = model_quantize(images["val"], in_scale, in_zero, in_dtype)
    info = np.iinfo(in_dtype)
    report["input_quantization"] = {
        "scale": rounded(in_scale), "zero_point": in_zero,
        # Val input values at the ends of the model's range (clipped, or exactly at the end).
        "clipped_fraction": rounded(np.mean((own_q == info.min) | (own_q == info.max))),
        # Val input values the seed's quantization pushes outside 0..255 (and so wraps).
        "seed_wrapped_fraction": rounded(sum(seed_wrapped(i) for i in images["val"]) / values),
        "seed_wrapped_faces": int(sum(seed_wrapped(i) > 0 for i in images["val"])),
    }

    mean, axes = pca_basis(embeddings[FLOAT]["val"])
    centred = embeddings[FLOAT]["val"] - mean
    total = float(np.sum(centred ** 2))
    explained = [float(np.sum(project(embeddings[FLOAT]["val"], mean, axes)[:, k] ** 2)) /
                 total if total > 0 else 0.0 for k in range(2)]
    points = {v: np.round(project(embeddings[v]["val"], mean, axes), DECIMALS)
              for v in VARIANTS}
    png = embeddings_png(points, val_labels, TITLES, explained)

    with timed(log, "Latency: {} runs after {} warm-up runs, one thread".format(
            latency_runs, warmup_runs)):
        first = images["val"][:1]
        float_interpreter, threads = make_interpreter(model_content=float_model, num_threads=1)
        int8_interpreter, _ = make_interpreter(model_path=tflite_path, num_threads=1)
        latency = {
            "float_tflite_median_ms": round(median_latency_ms(
                float_interpreter, first.astype(np.float32), latency_runs, warmup_runs), 3),
            "int8_tflite_median_ms": round(median_latency_ms(
                int8_interpreter, own(first), latency_runs, warmup_runs), 3),
            "float_tflite_bytes": len(float_model),
            # TF < 2.3 has no num_threads: the interpreter then uses its own default.
            "num_threads": threads if threads is not None else "interpreter default",
            "runs": latency_runs, "warmup_runs": warmup_runs,
        }
    return report, rocs, png, latency


def write_outputs(report: Mapping[str, Any], rocs: Mapping[str, str], png: bytes,
                  latency: Mapping[str, Any], fidelity_path: str, plots_dir: str,
                  latency_path: str) -> None:
    """Write every output atomically (the plots folder is replaced as a whole)."""
    with artifacts.staged_dir(plots_dir) as temp:
        os.makedirs(os.path.join(temp, ROC_DIR))
        for variant, text in sorted(rocs.items()):
            artifacts.write_text(os.path.join(temp, ROC_DIR, variant + ".csv"), text)
        artifacts.write_bytes(os.path.join(temp, EMBEDDINGS_PNG), png)
    artifacts.write_json(fidelity_path, report)
    artifacts.write_json(latency_path, latency)


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("fidelity", __doc__)
    parser.add_argument("--model", required=True, help="the float Keras .h5 model")
    parser.add_argument("--tflite", required=True, help="the quantized .tflite model")
    parser.add_argument("--faces", required=True, help="the crop folder (crop_faces)")
    parser.add_argument("--out", required=True, help="the fidelity JSON to write")
    parser.add_argument("--plots", required=True, help="the folder of ROC and embedding plots")
    parser.add_argument("--latency", required=True, help="the latency JSON to write")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    params = section("fidelity", SCHEMA)
    channels = section("representative_dataset", {"channels": faces.CHANNELS_FIELD},
                       partial=True)["channels"]
    try:
        report, rocs, png, latency = evaluate(
            args.model, args.tflite, args.faces, channels, lambda_functions_param(),
            params["latency_runs"], params["warmup_runs"])
    except LegacyKerasError as error:
        raise FidelityError(str(error))
    write_outputs(report, rocs, png, latency, args.out, args.plots, args.latency)
    for variant in VARIANTS:
        figures = report["variants"][variant]
        log.info("%-16s identity accuracy %.3f  EER %.3f  AUC %.3f", variant,
                 figures["identity_accuracy"], figures["eer"], figures["auc"])
    for variant, figures in sorted(report["vs_float"].items()):
        log.info("%-16s vs float: cosine mean %.4f min %.4f, L2 mean %.3f max %.3f", variant,
                 figures["cosine_mean"], figures["cosine_min"], figures["l2_mean"],
                 figures["l2_max"])
    log.info("latency (median of %d): float tflite %.1f ms, int8 tflite %.1f ms",
             latency["runs"], latency["float_tflite_median_ms"], latency["int8_tflite_median_ms"])
    log.info("wrote %s, %s and %s", args.out, args.plots, args.latency)


if __name__ == "__main__":
    entry.start("fidelity", main)
