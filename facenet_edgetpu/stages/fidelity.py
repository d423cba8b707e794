"""Stage `fidelity`: how far the full-integer model is from the float model, on faces it never
calibrated with.

Three variants embed the same preprocessed faces (stage representative_dataset):

    float            the float model, as the reference run computed it (stage float_reference:
                     TFLite's reference kernels, the same bits on every machine);
    int8             the quantized model, its input quantized with the model's own input scale
                     and zero point (as a float-input model's QUANTIZE op would: round half away
                     from zero, then clip);
    int8_seed_input  the same model fed the seed's hand-made input quantization (000_*,
                     section 3: per-image min/max scale, zero point 128, then
                     `astype(np.uint8)`, which wraps out-of-range values; lib/input_quantization).

Outputs of the quantized model are dequantized with its output scale and zero point (integer
kernels: the same results on every machine). The probes are the val faces; the gallery is the
train faces, embedded by the same variant. Faces are compared by cosine similarity.

Outputs:
    --out     per variant: nearest-neighbour identity accuracy of the val faces against the train
              gallery, equal error rate (and its threshold) and ROC AUC over all val pairs; per
              quantized variant its agreement with float (cosine mean/min, L2 mean/max); counts;
              input values clipped or wrapped (records.Fidelity). Figures rounded to 6 decimals.
    --plots   roc/<variant>.csv (fpr, tpr) for `dvc plots`, and embeddings.png: the val
              embeddings on the first two principal axes of the float ones, one panel per
              variant, coloured by person (like the seed's Fig. 6).

CPU latency is a property of the machine, not of the artifacts: `make bench` measures it.

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu fidelity --tflite models/facenet_keras.tflite \\
        --faces data/preprocessed --reference data/float_reference \\
        --out reports/fidelity.json --plots reports/fidelity
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.lib import interpreter, preprocessed, records
from facenet_edgetpu.lib.embedding_metrics import (
    agreement, nearest_neighbour_accuracy, pca_basis, project, roc_csv, rounded, verification,
    DECIMALS)
from facenet_edgetpu.lib.input_quantization import (
    dequantize, model_quantize, seed_input_for, seed_quantize, seed_wrapped)
from facenet_edgetpu.lib.manifest import verification_shortfall
from facenet_edgetpu.lib.plots import embeddings_png

FLOAT, INT8, SEED = "float", "int8", "int8_seed_input"
VARIANTS = (FLOAT, INT8, SEED)
TITLES = {FLOAT: "float (reference kernels)", INT8: "int8 (model's input scale/zero point)",
          SEED: "int8 (seed's per-image input quantization)"}

log = get_logger("fidelity")

Embeddings = Dict[str, Dict[str, np.ndarray]]   # variant -> split -> faces x embedding


class FidelityError(PipelineError, RuntimeError):
    """The inputs of the stage cannot be evaluated; the message says what to fix."""


def float_embeddings(reference_dir: str, rows: int) -> np.ndarray:
    """The reference run's embeddings, one row per preprocessed face."""
    path = os.path.join(reference_dir, "embeddings.npy")
    try:
        found = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise FidelityError("cannot read {} ({}): rerun float_reference".format(
            path, error)) from None
    if found.ndim != 2 or len(found) != rows:
        raise FidelityError("{} holds {} rows for {} preprocessed faces: rerun float_reference "
                            "(dvc repro does)".format(path, len(found), rows))
    return found


def embed_int8(found: Any, images: np.ndarray, quantizer: Callable[[np.ndarray], np.ndarray],
               desc: str) -> np.ndarray:
    """Dequantized embeddings of the quantized model; `quantizer` maps a float face to input."""
    out_scale, out_zero, _ = interpreter.quantization(found.get_output_details()[0])
    rows = []
    for image in tqdm(images, desc=desc, unit="face", leave=False):
        output = interpreter.run(found, quantizer(image)[np.newaxis])
        rows.append(dequantize(output[0], out_scale, out_zero))
    return np.stack(rows)


def variant_metrics(embeddings: Embeddings, val_labels: Sequence[str],
                    train_labels: Sequence[str], inputs: records.InputQuantization
                    ) -> Tuple[records.Fidelity, Dict[str, str]]:
    """(the fidelity record, ROC CSV per variant)."""
    variants, rocs, vs_float = {}, {}, {}
    curve = {}  # type: Dict[str, Any]
    for variant in VARIANTS:
        probes, gallery = embeddings[variant]["val"], embeddings[variant]["train"]
        curve = verification(probes, val_labels)
        rocs[variant] = roc_csv(curve["fpr"], curve["tpr"])
        variants[variant] = records.VariantMetrics(
            identity_accuracy=rounded(nearest_neighbour_accuracy(
                probes, val_labels, gallery, train_labels)),
            eer=rounded(curve["eer"]), eer_threshold=rounded(curve["eer_threshold"]),
            auc=rounded(curve["auc"]),
            embedding_norm_mean=rounded(np.linalg.norm(probes, axis=1).mean()))
        if variant != FLOAT:
            vs_float[variant] = records.Agreement(**agreement(embeddings[FLOAT]["val"], probes))
    counts = records.FidelityCounts(
        val_faces=len(val_labels), gallery_faces=len(train_labels),
        people=len(set(val_labels) | set(train_labels)), pairs=int(curve["pairs"]),
        genuine_pairs=int(curve["genuine_pairs"]))
    report = records.Fidelity(counts=counts, input_quantization=inputs, variants=variants,
                              vs_float=vs_float)
    return report, rocs


def input_figures(val_images: np.ndarray, scale: float, zero_point: int, dtype: np.dtype
                  ) -> records.InputQuantization:
    """How the two input quantizations treat the val faces' values."""
    quantized = model_quantize(val_images, scale, zero_point, dtype)
    info = np.iinfo(dtype)
    return records.InputQuantization(
        scale=rounded(scale), zero_point=zero_point,
        clipped_fraction=rounded(np.mean((quantized == info.min) | (quantized == info.max))),
        seed_wrapped_fraction=rounded(sum(seed_wrapped(i) for i in val_images) /
                                      float(val_images.size)),
        seed_wrapped_faces=int(sum(seed_wrapped(i) > 0 for i in val_images)))


def embeddings_figure(embeddings: Embeddings, val_labels: Sequence[str]) -> bytes:
    """The val embeddings of every variant on the float embeddings' first two principal axes."""
    float_val = embeddings[FLOAT]["val"]
    mean, axes = pca_basis(float_val)
    total = float(np.sum((float_val - mean) ** 2))
    coordinates = project(float_val, mean, axes)
    explained = [float(np.sum(coordinates[:, k] ** 2)) / total if total > 0 else 0.0
                 for k in range(2)]
    points = {v: np.round(project(embeddings[v]["val"], mean, axes), DECIMALS) for v in VARIANTS}
    return embeddings_png(points, val_labels, TITLES, explained)


def evaluate(tflite_path: str, faces_dir: str, reference_dir: str
             ) -> Tuple[records.Fidelity, Dict[str, str], bytes]:
    """(fidelity record, ROC CSV per variant, embeddings PNG)."""
    faces = preprocessed.load(faces_dir)
    rows = {split: faces.rows_of(split) for split in ("val", "train")}
    labels = {split: [faces.entries[r]["person"] for r in rows[split]] for split in rows}
    shortfall = verification_shortfall(labels["val"])
    if not rows["train"] or shortfall:
        raise FidelityError("{}: {} train faces; val: {}. Add photos and rerun crop_faces."
                            .format(faces_dir, len(rows["train"]), shortfall or "enough"))
    missing = sorted(set(labels["val"]) - set(labels["train"]))
    if missing:
        log.warning("val faces of %s have no train face: they can never be identified",
                    ", ".join(missing))
    reference = float_embeddings(reference_dir, len(faces.entries))
    # Integer kernels give the same results on any number of threads: use every core.
    int8 = interpreter.interpreter(model_path=tflite_path,
                                   num_threads=interpreter.available_cores())
    in_details, _ = interpreter.single_io(int8, tflite_path)
    scale, zero_point, dtype = interpreter.quantization(in_details)
    if tuple(in_details["shape"][1:]) != faces.array.shape[1:] or scale == 0:
        raise FidelityError("{} takes {} {} (scale {}); the preprocessed faces are {}: "
                            "quantize this model again".format(
                                tflite_path, dtype.name, "x".join(map(str, in_details["shape"])),
                                scale, "x".join(map(str, faces.array.shape[1:]))))
    quantizers = {INT8: lambda image: model_quantize(image, scale, zero_point, dtype),
                  SEED: lambda image: seed_input_for(dtype, seed_quantize(image))}
    embeddings = {FLOAT: {split: reference[rows[split]] for split in rows}}  # type: Embeddings
    with timed(log, "Embedding {} faces with the int8 model, two input quantizations".format(
            len(faces.entries))):
        for variant, quantizer in quantizers.items():
            embeddings[variant] = {split: embed_int8(int8, faces.array[rows[split]], quantizer,
                                                     "{} {}".format(variant, split))
                                   for split in rows}
    report, rocs = variant_metrics(embeddings, labels["val"], labels["train"], input_figures(
        faces.array[rows["val"]], scale, zero_point, dtype))
    return report, rocs, embeddings_figure(embeddings, labels["val"])


def write_outputs(report: records.Fidelity, rocs: Mapping[str, str], png: bytes,
                  fidelity_path: str, plots_dir: str) -> None:
    """Every output atomically (the plots folder is replaced as a whole)."""
    with artifacts.staged_dir(plots_dir) as temp:
        os.makedirs(os.path.join(temp, records.ROC_DIR))
        for variant, text in sorted(rocs.items()):
            artifacts.write_text(os.path.join(temp, records.ROC_DIR, variant + ".csv"), text)
        artifacts.write_bytes(os.path.join(temp, records.EMBEDDINGS_PNG), png)
    report.save(fidelity_path)


def log_figures(report: records.Fidelity) -> List[str]:
    lines = []
    for variant in VARIANTS:
        figures = report.variants[variant]
        lines.append("{:<16} identity accuracy {:.3f}  EER {:.3f}  AUC {:.3f}".format(
            variant, figures.identity_accuracy, figures.eer, figures.auc))
    for variant, close in sorted(report.vs_float.items()):
        lines.append("{:<16} vs float: cosine mean {:.4f} min {:.4f}, L2 mean {:.3f} max "
                     "{:.3f}".format(variant, close.cosine_mean, close.cosine_min, close.l2_mean,
                                     close.l2_max))
    return lines


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("fidelity", __doc__)
    parser.add_argument("--tflite", required=True, help="the quantized .tflite model")
    parser.add_argument("--faces", required=True, help="the preprocessed faces folder")
    parser.add_argument("--reference", required=True, help="the float_reference folder")
    parser.add_argument("--out", required=True, help="the fidelity JSON to write")
    parser.add_argument("--plots", required=True, help="the folder of ROC and embedding plots")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report, rocs, png = evaluate(args.tflite, args.faces, args.reference)
    write_outputs(report, rocs, png, args.out, args.plots)
    for line in log_figures(report):
        log.info("%s", line)
    log.info("wrote %s and %s", args.out, args.plots)


if __name__ == "__main__":
    entry.start("fidelity", main)
