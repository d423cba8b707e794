"""Build the report model (`model.ReportModel`) from the stage outputs, once for both renderings.

Inputs are the typed records of `facenet_edgetpu.lib.records`, the compile result (real or
predicted), toolchain.yaml as a mapping, the file sizes and the embeddings plot. Labels live
in the tables below, one per kind of row, so adding a key to a record means adding its label.
The two drawings (operator strip, memory bar) are built by `drawings`.
"""
from __future__ import annotations

import base64
import dataclasses
import os
from typing import Dict, List, Mapping, Optional, Tuple

from edgetpu_analyzer.result import STATUS_MAPPED, CompileResult
from facenet_edgetpu.lib import records
from facenet_edgetpu.lib.seed import SEED_COMPILER, SEED_CONVERTER, SEED_OPERATORS, SEED_SIZES
from facenet_edgetpu.report.drawings import RUNS_ON_TEXT, memory_section, runs_on, strip_section
from facenet_edgetpu.report.formats import (
    DASH, metric, percent, shape, signed_percent, size, thousands)
from facenet_edgetpu.report.model import (
    Card, Cell, Embeddings, Fact, Fidelity, Operators, Quantization, ReportModel, Section, Sizes,
    Summary, table, texts)

TITLE = "FaceNet \u2192 Edge TPU build report"
PREDICTION_BANNER = ("No edgetpu_compiler ran: the operator statuses, the operator strip and the "
                     "memory figures follow the compiler's published rules (edgetpu-predict); the "
                     "memory figures are estimates.")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SIZE_LABELS = (("keras_h5", "Keras model (.h5)"), ("tflite", "Full-integer TFLite"),
               ("edgetpu_tflite", "Edge TPU TFLite"))
# Every CropCounts key, in the order of the record (a new key without a label fails here).
CROP_LABELS = {"photos": "photos", "read": "read", "cropped": "cropped",
               "unreadable": "unreadable", "no_face": "no face found",
               "margin_outside_image": "margin outside the image",
               "not_tried": "not tried (enough crops)"}
VARIANT_LABELS = {"float": "float (Keras)",
                  "int8": "int8, the model's input quantization",
                  "int8_seed_input": "int8, the seed's input quantization"}
VARIANT_COLUMNS = (("identity_accuracy", "identity accuracy"), ("eer", "equal error rate"),
                   ("eer_threshold", "EER threshold (cosine)"), ("auc", "ROC AUC"),
                   ("embedding_norm_mean", "mean embedding norm"))
FIDELITY_COUNT_LABELS = {"val_faces": "val faces (probes)",
                         "gallery_faces": "train faces (gallery)", "people": "people",
                         "pairs": "val face pairs", "genuine_pairs": "same-person pairs"}
INPUT_QUANTIZATION_LABELS = {
    "scale": "input scale", "zero_point": "input zero point",
    "clipped_fraction": "val input values at the ends of the range (model's quantization)",
    "seed_wrapped_fraction": "val input values wrapped around (seed's quantization)",
    "seed_wrapped_faces": "val faces with wrapped values (seed's quantization)"}


# --------------------------------------------------------------------------------------------
# Summary, sizes, operators
# --------------------------------------------------------------------------------------------

def _cards(result: CompileResult, sizes: Mapping[str, Optional[int]]) -> List[Card]:
    cards = []
    if result.total_operations:
        cards.append(Card("On the Edge TPU", "{} / {}".format(
            result.operations_on_edgetpu or 0, result.total_operations),
            "{} mapped \u00b7 {} on CPU".format(percent(100.0 * result.mapped_fraction()),
                                                 result.operations_on_cpu or 0)))
    if result.edgetpu_subgraphs is not None:
        cards.append(Card("Edge TPU subgraphs", str(result.edgetpu_subgraphs),
                          "one is the best case" if result.edgetpu_subgraphs == 1 else ""))
    if result.on_chip_memory_used_bytes is not None or result.off_chip_memory_bytes is not None:
        cards.append(Card("Parameters on / off chip", "{} / {}".format(
            size(result.on_chip_memory_used_bytes or 0), size(result.off_chip_memory_bytes or 0)),
            "off-chip: streamed per inference"))
    for name, label in (("edgetpu_tflite", "Edge TPU model"), ("tflite", "Full-integer TFLite")):
        if sizes.get(name) is not None:
            cards.append(Card(label, size(sizes[name]), "{} bytes".format(thousands(sizes[name]))))
            break
    return cards


def summary(result: CompileResult, sizes: Mapping[str, Optional[int]]) -> Summary:
    return Summary(
        title=TITLE, predicted=result.predicted,
        model_name=os.path.basename(result.input_model) or "facenet_keras.tflite",
        compiler_version=result.compiler_version,
        how="predicted by edgetpu-predict" if result.predicted else "compiled",
        min_runtime_version=result.min_runtime_version, cards=_cards(result, sizes),
        prediction_banner=PREDICTION_BANNER if result.predicted else "",
        prediction_notes=list(result.notes) if result.predicted else [],
        fatal_error=result.fatal_error, fatal_verb="would" if result.predicted else "did")


def _size_cell(name: str, this_run: Optional[int], result: CompileResult) -> Cell:
    if this_run is not None:
        return Cell(thousands(this_run), detail=size(this_run))
    if name == "edgetpu_tflite" and result.predicted and result.output_size_bytes:
        return Cell("\u2248 " + size(result.output_size_bytes), predicted=True)
    return Cell("not built", style="muted")


def _change_cell(this_run: Optional[int], seed: int) -> Cell:
    if this_run is None or not seed:
        return Cell(DASH)
    change = 100.0 * (this_run - seed) / seed
    return Cell(signed_percent(change), style="delta-up" if change > 0 else
                "delta-down" if change < 0 else "muted")


def sizes_section(sizes: Mapping[str, Optional[int]], result: CompileResult) -> Sizes:
    rows = [[Cell(label), _size_cell(name, sizes.get(name), result),
             Cell(thousands(SEED_SIZES[name])), _change_cell(sizes.get(name), SEED_SIZES[name])]
            for name, label in SIZE_LABELS]
    return Sizes("Sizes", table(["artifact", "bytes (this run)", "bytes (seed)", "vs seed"],
                                rows, numeric=(1, 2, 3), element_id="size-table"),
                 "Seed: {} converter, Edge TPU compiler {}.".format(SEED_CONVERTER, SEED_COMPILER))


def operators_section(result: CompileResult) -> Operators:
    rows = sorted(result.operators, key=lambda row: (row.operator, row.status))
    counts_line = ""
    if result.total_operations is not None:
        counts_line = ("{} operations: {} on the Edge TPU, {} on the CPU, in {} Edge TPU "
                       "subgraph(s).".format(result.total_operations, result.operations_on_edgetpu,
                                             result.operations_on_cpu, result.edgetpu_subgraphs))
    operator_table = None
    if rows:
        operator_table = table(
            ["operator", "count", "runs on", "status"],
            [[Cell(row.operator), Cell(str(row.count)),
              Cell(RUNS_ON_TEXT[runs_on(row.status)], style="pill-" + runs_on(row.status)),
              Cell(row.status)] for row in rows],
            numeric=(1,), element_id="operator-table",
            row_styles=["" if row.status == STATUS_MAPPED else "cpu" for row in rows])
    return Operators("Operators", result.predicted, counts_line, operator_table,
                     "No operator table (the compiler stopped before it).")


# --------------------------------------------------------------------------------------------
# Fidelity, quantization, crops, toolchain
# --------------------------------------------------------------------------------------------

def embeddings(png: bytes, link: str, source: str) -> Embeddings:
    """The embeddings plot: inline for HTML, linked from Markdown."""
    if not png.startswith(PNG_SIGNATURE):
        raise records.RecordError("{} is not a PNG file; rerun the stage that writes it (dvc "
                                  "repro fidelity)".format(source))
    return Embeddings("data:image/png;base64," + base64.b64encode(png).decode("ascii"), link,
                      "Val embeddings on the first two principal axes of the float ones, per "
                      "variant, coloured by person.")


def _variant(name: str) -> str:
    return VARIANT_LABELS.get(name, name)


def _record_rows(record: records.Record, labels: Mapping[str, str]) -> List[List[Cell]]:
    """One (label, value) row per field of a flat record, in the record's order."""
    rows = []
    for item in dataclasses.fields(record):
        value = getattr(record, item.name)
        rows.append([Cell(labels[item.name]),
                     Cell(metric(value) if isinstance(value, float) else thousands(value))])
    return rows


def fidelity_section(fidelity: records.Fidelity, plot: Embeddings) -> Fidelity:
    variants = table(["variant"] + [label for _, label in VARIANT_COLUMNS], [
        [Cell(_variant(name))] + [Cell(metric(getattr(figures, key))) for key, _ in VARIANT_COLUMNS]
        for name, figures in sorted(fidelity.variants.items())],
        numeric=range(1, len(VARIANT_COLUMNS) + 1), element_id="fidelity-variants")
    agreement = table(
        ["variant", "cosine to float (mean / min)", "L2 to float (mean / max)"], [
            [Cell(_variant(name)),
             Cell("{} / {}".format(metric(figures.cosine_mean), metric(figures.cosine_min))),
             Cell("{} / {}".format(metric(figures.l2_mean), metric(figures.l2_max)))]
            for name, figures in sorted(fidelity.vs_float.items())],
        numeric=(1, 2), element_id="fidelity-agreement")
    return Fidelity(
        title="Fidelity: float vs int8",
        note="The float Keras model against the full-integer model on the val faces, as the "
             "fidelity stage measured them; the int8 model is fed its own input quantization "
             "and the seed's hand-made one.",
        variants=variants, agreement=agreement,
        counts=table(["faces and pairs", "count"], _record_rows(
            fidelity.counts, FIDELITY_COUNT_LABELS), numeric=(1,), element_id="fidelity-counts"),
        input_quantization=table(["input quantization", "value"], _record_rows(
            fidelity.input_quantization, INPUT_QUANTIZATION_LABELS), numeric=(1,),
            element_id="fidelity-input"),
        embeddings=plot)


def _tensor_row(side: str, tensor: records.TensorDetails) -> List[Cell]:
    return texts(side, tensor.name, tensor.dtype, shape(tensor.shape), repr(tensor.scale),
                 tensor.zero_point)


def quantization_section(quantization: records.Quantization) -> Quantization:
    tensors = table(["tensor", "name", "dtype", "shape", "scale", "zero point"],
                    [_tensor_row("input", quantization.input),
                     _tensor_row("output", quantization.output)], numeric=(4, 5),
                    element_id="tensor-table")
    facts = [Fact("calibration faces", str(quantization.calibration_samples)),
             Fact("input/output type", quantization.io_type),
             Fact("converter", quantization.converter),
             Fact("TensorFlow", quantization.tensorflow_version),
             Fact("TFLite size", "{} bytes".format(thousands(quantization.tflite_bytes))),
             Fact("TFLite sha256", quantization.tflite_sha256)]
    ours = quantization.operators
    rows, styles = [], []
    for name in sorted(set(ours) | set(SEED_OPERATORS)):
        versions = ", ".join(str(v) for v in quantization.operator_versions.get(name, [])) or DASH
        rows.append(texts(name, versions, ours.get(name, 0), SEED_OPERATORS.get(name, 0),
                          _difference(ours.get(name, 0), SEED_OPERATORS.get(name, 0))))
        styles.append("")
    total, seed_total = sum(ours.values()), sum(SEED_OPERATORS.values())
    rows.append(texts("total", "", total, seed_total, _difference(total, seed_total)))
    styles.append("total")
    operators = table(["operator", "versions", "this run", "seed ({})".format(SEED_CONVERTER),
                       "difference"], rows, numeric=(2, 3, 4), element_id="tflite-operators",
                      row_styles=styles)
    groups: Dict[Tuple[str, str], int] = {}
    for layer in quantization.lambda_layers.values():
        groups[(layer.source, layer.origin)] = groups.get((layer.source, layer.origin), 0) + 1
    lambdas = table(["Lambda layer source", "origin", "layers"], [
        texts(source, origin, count) for (source, origin), count in sorted(groups.items())],
        numeric=(2,), element_id="lambda-layers") if groups else None
    return Quantization("Quantization", tensors, facts, operators, lambdas)


def _difference(ours: int, seed: int) -> str:
    return "{:+d}".format(ours - seed) if ours != seed else DASH


def crops_section(crops: records.CropMetrics) -> Section:
    keys = [item.name for item in dataclasses.fields(records.CropCounts)]
    return Section("Calibration faces", table(
        ["split"] + [CROP_LABELS[key] for key in keys],
        [[Cell(split)] + [Cell(thousands(getattr(counts, key))) for key in keys]
         for split, counts in sorted(crops.splits.items())],
        numeric=range(1, len(keys) + 1), element_id="crop-table"))


def toolchain_section(toolchain: Mapping[str, Mapping[str, str]]) -> Section:
    """One row per (component, version), naming the stages that ran with it: a stage run in
    another image shows up as a second version of the same component."""
    stages = {}  # type: Dict[Tuple[str, str], List[str]]
    for stage in sorted(toolchain):
        for key, version in toolchain[stage].items():
            stages.setdefault((key, version), []).append(stage)
    return Section("Toolchain", table(["component", "version", "stages"], [
        texts(key, version, ", ".join(names)) for (key, version), names in sorted(stages.items())],
        element_id="toolchain-table"))


def build_report(result: CompileResult, quantization: records.Quantization,
                 crops: records.CropMetrics, fidelity: records.Fidelity,
                 toolchain: Mapping[str, Mapping[str, str]], sizes: Mapping[str, Optional[int]],
                 plot: Embeddings) -> ReportModel:
    """The whole report; `sizes` maps "keras_h5", "tflite", "edgetpu_tflite" to bytes (None:
    not built)."""
    return ReportModel(
        summary=summary(result, sizes), sizes=sizes_section(sizes, result),
        operators=operators_section(result), strip=strip_section(result),
        memory=memory_section(result), fidelity=fidelity_section(fidelity, plot),
        quantization=quantization_section(quantization), crops=crops_section(crops),
        toolchain=toolchain_section(toolchain))
