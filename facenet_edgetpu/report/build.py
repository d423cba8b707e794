"""Build the report model (`model.ReportModel`) from the stage outputs, once for both renderings.

Inputs are the typed records of `facenet_edgetpu.lib.records`, the compile result (real or
predicted), toolchain.yaml as a mapping, the file sizes and the embeddings plot. Labels live
in the tables below, one per kind of row, so adding a key to a record means adding its label.
"""
from __future__ import annotations

import base64
import dataclasses
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from edgetpu_analyzer.result import STATUS_MAPPED, CompileResult
from facenet_edgetpu.lib import records
from facenet_edgetpu.lib.seed import SEED_COMPILER, SEED_CONVERTER, SEED_OPERATORS, SEED_SIZES
from facenet_edgetpu.report import svg
from facenet_edgetpu.report.formats import (
    DASH, metric, percent, shape, signed_percent, size, thousands)
from facenet_edgetpu.report.model import (
    Card, Cell, Column, Embeddings, Fact, Fidelity, LegendEntry, Memory,
    MemorySegment, Operators, Quantization, ReportModel, Section, Sizes, Strip, StripCell,
    Summary, Table)

TITLE = "FaceNet \u2192 Edge TPU build report"
PREDICTION_BANNER = ("No edgetpu_compiler ran: the operator statuses, the operator strip and the "
                     "memory figures follow the compiler's published rules (edgetpu-predict); the "
                     "memory figures are estimates.")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CPU_LIST_OPEN_LIMIT = 25      # more CPU operators than this are listed folded (HTML)
TEXT_BAR_COLUMNS = 60         # characters of the memory bar in the Markdown report

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
# (kind, label, label inside the bar, character in the text bar)
MEMORY_LINES = (("on-chip-used", "On-chip used", "On-chip used", "#"),
                ("on-chip-remaining", "On-chip remaining", "On-chip remaining", "."),
                ("off-chip", "Off-chip (streamed)", "Off-chip", "="))
RUNS_ON_TEXT = {"edgetpu": "Edge TPU", "cpu": "CPU", "unknown": "status unknown"}
STRIP_CHARACTER_EDGETPU = "#"


def _table(labels: Sequence[str], rows: List[List[Cell]], numeric: Sequence[int] = (),
           element_id: str = "", row_styles: Sequence[str] = ()) -> Table:
    return Table([Column(label, index in numeric) for index, label in enumerate(labels)],
                 rows, element_id, list(row_styles))


def _texts(*texts: object) -> List[Cell]:
    return [Cell(str(text)) for text in texts]


def runs_on(status: Optional[str]) -> str:
    """Where an operator with this status runs; "unknown" when the status is not known."""
    if not status:
        return "unknown"
    return "edgetpu" if status == STATUS_MAPPED else "cpu"


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
    return Sizes("Sizes", _table(["artifact", "bytes (this run)", "bytes (seed)", "vs seed"],
                                 rows, numeric=(1, 2, 3), element_id="size-table"),
                 "Seed: {} converter, Edge TPU compiler {}.".format(SEED_CONVERTER, SEED_COMPILER))


def operators_section(result: CompileResult) -> Operators:
    rows = sorted(result.operators, key=lambda row: (row.operator, row.status))
    counts_line = ""
    if result.total_operations is not None:
        counts_line = ("{} operations: {} on the Edge TPU, {} on the CPU, in {} Edge TPU "
                       "subgraph(s).".format(result.total_operations, result.operations_on_edgetpu,
                                             result.operations_on_cpu, result.edgetpu_subgraphs))
    table = None
    if rows:
        table = _table(
            ["operator", "count", "runs on", "status"],
            [[Cell(row.operator), Cell(str(row.count)),
              Cell(RUNS_ON_TEXT[runs_on(row.status)], style="pill-" + runs_on(row.status)),
              Cell(row.status)] for row in rows],
            numeric=(1,), element_id="operator-table",
            row_styles=["" if row.status == STATUS_MAPPED else "cpu" for row in rows])
    return Operators("Operators", result.predicted, counts_line, table,
                     "No operator table (the compiler stopped before it).")


# --------------------------------------------------------------------------------------------
# Operator strip
# --------------------------------------------------------------------------------------------

def strip_entries(result: CompileResult) -> Tuple[List[Tuple[int, str, str, str]], str]:
    """(operator index, operator, status, reason) per cell, and the order: "execution" when the
    result knows it, else "table" (cells drawn from the operator table's counts)."""
    if result.execution_order:
        return [(op.index, op.operator, op.status or "", op.reason or "")
                for op in result.execution_order], "execution"
    entries = []  # type: List[Tuple[int, str, str, str]]
    for row in result.operators:
        entries.extend((len(entries), row.operator, row.status, "") for _ in range(row.count))
    return entries, "table"


def status_keys(statuses: Sequence[str]) -> Dict[str, str]:
    """A letter per CPU status, in order of first appearance (A, B, ..., then 27, 28, ...)."""
    keys = {}  # type: Dict[str, str]
    for status in statuses:
        if runs_on(status) == "cpu" and status not in keys:
            keys[status] = chr(ord("A") + len(keys)) if len(keys) < 26 else str(len(keys) + 1)
    return keys


def _legend(cells: Sequence[StripCell], keys: Mapping[str, str]) -> List[LegendEntry]:
    def count(where: str, status: Optional[str] = None) -> int:
        return sum(1 for cell in cells if cell.runs_on == where
                   and (status is None or cell.status == status))
    legend = [LegendEntry("edgetpu", "", "Edge TPU", STATUS_MAPPED, count("edgetpu"))]
    legend += [LegendEntry("cpu", key, "CPU: " + status, status, count("cpu", status))
               for status, key in keys.items()]
    if count("unknown"):
        legend.append(LegendEntry("unknown", "?", "status unknown", "", count("unknown")))
    return legend


def _text_rows(cells: Sequence[StripCell], columns: int) -> List[str]:
    characters = [STRIP_CHARACTER_EDGETPU if cell.runs_on == "edgetpu" else cell.key
                  for cell in cells]
    width = len(str(max(0, len(cells) - 1) // columns * columns))
    return ["{:>{}} {}".format(start, width, "".join(characters[start:start + columns]))
            for start in range(0, len(cells), columns)]


def _cpu_table(result: CompileResult, cells: Sequence[StripCell], order: str,
               keys: Mapping[str, str]) -> Table:
    if order == "execution":
        reasons = {op.index: op.reason or DASH for op in result.execution_order}
        return _table(["#", "operator", "status", "why"], [
            [Cell(str(cell.index)), Cell(cell.operator), Cell(cell.status, key=cell.key),
             Cell(reasons[cell.index])] for cell in cells if cell.runs_on == "cpu"],
            numeric=(0,), element_id="cpu-operators")
    return _table(["operator", "count", "status"], [
        [Cell(row.operator), Cell(str(row.count)), Cell(row.status, key=keys[row.status])]
        for row in result.operators if runs_on(row.status) == "cpu"],
        numeric=(1,), element_id="cpu-operators")


def strip_section(result: CompileResult, columns: int = svg.STRIP_COLUMNS) -> Strip:
    entries, order = strip_entries(result)
    keys = status_keys([status for _, _, status, _ in entries])
    cells = [StripCell(
        position=position, index=index, operator=operator, status=status,
        runs_on=runs_on(status), key=keys.get(status, "?" if runs_on(status) == "unknown" else ""),
        tooltip="#{} {}: {}{}".format(index, operator, status or "status unknown",
                                       " \u2014 " + reason if reason else ""),
        rect=svg.strip_cell(position, columns),
        key_at=svg.cell_key_position(svg.strip_cell(position, columns)))
        for position, (index, operator, status, reason) in enumerate(entries)]
    on_cpu = sum(1 for cell in cells if cell.runs_on == "cpu")
    caption = ("One cell per operator of the main subgraph, in execution order, left to right, "
               "{} per row; the row labels count operators.".format(columns))
    warning = ""
    if order == "table":
        caption = "One cell per operator, {} per row, grouped by table row.".format(columns)
        warning = ("Execution order unknown: the compiler prints only the operator table, so "
                   "the cells are drawn from its counts, grouped by table row, not in execution "
                   "order.")
    return Strip(
        title="Operator strip", predicted=result.predicted, order=order, columns=columns,
        size=svg.strip_size(len(cells), columns), cells=cells,
        row_labels=svg.strip_row_labels(len(cells), columns), legend=_legend(cells, keys),
        caption=caption, order_warning=warning, text_rows=_text_rows(cells, columns),
        cpu_heading="Operators on the CPU ({})".format(on_cpu),
        cpu_table=_cpu_table(result, cells, order, keys) if on_cpu else None,
        cpu_open=on_cpu <= CPU_LIST_OPEN_LIMIT,
        empty_note="No operators to show{}.".format(
            ": the compiler refused the model" if result.fatal_error else ""))


# --------------------------------------------------------------------------------------------
# Memory bar
# --------------------------------------------------------------------------------------------

def memory_lines(result: CompileResult) -> Tuple[List[Optional[int]], bool]:
    """Bytes of the three memory lines (None: not printed), and whether "remaining" was derived
    as available - used (compiler 2.0 prints "available" instead of "remaining")."""
    used = result.on_chip_memory_used_bytes
    remaining = result.on_chip_memory_remaining_bytes
    available = result.on_chip_memory_available_bytes
    derived = False
    if remaining is None and available is not None and used is not None:
        remaining, derived = max(available - used, 0), True
    return [used, remaining, result.off_chip_memory_bytes], derived


def memory_section(result: CompileResult) -> Memory:
    values, derived = memory_lines(result)
    known = [value for value in values if value is not None]
    total = sum(known)
    rects = iter(svg.bar_segments(known))
    runs = iter(svg.character_runs(known, TEXT_BAR_COLUMNS))
    segments, text_bar = [], ""
    for (kind, label, short, character), value in zip(MEMORY_LINES, values):
        if kind == "on-chip-remaining" and derived:
            label += " (available \u2212 used)"
        rect = next(rects) if value is not None else None
        text_bar += character * next(runs) if value is not None else ""
        inside = "{} {}".format(short, size(value)) if value is not None else ""
        segments.append(MemorySegment(
            kind=kind, label=label, size_text=size(value) if value is not None else "not reported",
            bytes=value, share_text=percent(100.0 * value / total) if value is not None and total
            else "", character=character, rect=rect,
            inside_text=inside if rect is not None and svg.label_fits(inside, rect.width) else "",
            inside_at=svg.segment_label_position(rect) if rect is not None else None))
    used, remaining, off_chip = values
    capacity, caption = None, ""
    if used is not None and remaining is not None and off_chip:
        # Only worth a line when part of the parameters does not fit on chip.
        capacity = svg.capacity_marker(used + remaining, total)
        caption = "on-chip capacity {}".format(size(used + remaining))
    return Memory(
        title="Parameter memory", predicted=result.predicted, segments=segments,
        size=svg.Rect(0, 0, svg.BAR_WIDTH, svg.BAR_HEIGHT + svg.BAR_CAPTION_ROOM),
        bar_height=svg.BAR_HEIGHT, capacity=capacity, capacity_caption=caption,
        text_bar=text_bar,
        note="To scale. Parameters that do not fit in the Edge TPU's on-chip memory are streamed "
             "from host memory on every inference.{} Units as the compiler prints them.".format(
                 " These figures are estimates." if result.predicted else ""),
        empty_note="The compile result has no memory lines.")


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
    variants = _table(["variant"] + [label for _, label in VARIANT_COLUMNS], [
        [Cell(_variant(name))] + [Cell(metric(getattr(figures, key))) for key, _ in VARIANT_COLUMNS]
        for name, figures in sorted(fidelity.variants.items())],
        numeric=range(1, len(VARIANT_COLUMNS) + 1), element_id="fidelity-variants")
    agreement = _table(
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
        counts=_table(["faces and pairs", "count"], _record_rows(
            fidelity.counts, FIDELITY_COUNT_LABELS), numeric=(1,), element_id="fidelity-counts"),
        input_quantization=_table(["input quantization", "value"], _record_rows(
            fidelity.input_quantization, INPUT_QUANTIZATION_LABELS), numeric=(1,),
            element_id="fidelity-input"),
        embeddings=plot)


def _tensor_row(side: str, tensor: records.TensorDetails) -> List[Cell]:
    return _texts(side, tensor.name, tensor.dtype, shape(tensor.shape), repr(tensor.scale),
                  tensor.zero_point)


def quantization_section(quantization: records.Quantization) -> Quantization:
    tensors = _table(["tensor", "name", "dtype", "shape", "scale", "zero point"],
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
        rows.append(_texts(name, versions, ours.get(name, 0), SEED_OPERATORS.get(name, 0),
                           _difference(ours.get(name, 0), SEED_OPERATORS.get(name, 0))))
        styles.append("")
    total, seed_total = sum(ours.values()), sum(SEED_OPERATORS.values())
    rows.append(_texts("total", "", total, seed_total, _difference(total, seed_total)))
    styles.append("total")
    operators = _table(["operator", "versions", "this run", "seed ({})".format(SEED_CONVERTER),
                        "difference"], rows, numeric=(2, 3, 4), element_id="tflite-operators",
                       row_styles=styles)
    groups = {}  # type: Dict[Tuple[str, str], int]
    for layer in quantization.lambda_layers.values():
        groups[(layer.source, layer.origin)] = groups.get((layer.source, layer.origin), 0) + 1
    lambdas = _table(["Lambda layer source", "origin", "layers"], [
        _texts(source, origin, count) for (source, origin), count in sorted(groups.items())],
        numeric=(2,), element_id="lambda-layers") if groups else None
    return Quantization("Quantization", tensors, facts, operators, lambdas)


def _difference(ours: int, seed: int) -> str:
    return "{:+d}".format(ours - seed) if ours != seed else DASH


def crops_section(crops: records.CropMetrics) -> Section:
    keys = [item.name for item in dataclasses.fields(records.CropCounts)]
    return Section("Calibration faces", _table(
        ["split"] + [CROP_LABELS[key] for key in keys],
        [[Cell(split)] + [Cell(thousands(getattr(counts, key))) for key in keys]
         for split, counts in sorted(crops.splits.items())],
        numeric=range(1, len(keys) + 1), element_id="crop-table"))


def toolchain_section(toolchain: Mapping[str, str]) -> Section:
    return Section("Toolchain", _table(["component", "version"], [
        _texts(key, toolchain[key]) for key in sorted(toolchain)], element_id="toolchain-table"))


def build_report(result: CompileResult, quantization: records.Quantization,
                 crops: records.CropMetrics, fidelity: records.Fidelity,
                 toolchain: Mapping[str, str], sizes: Mapping[str, Optional[int]],
                 plot: Embeddings) -> ReportModel:
    """The whole report; `sizes` maps "keras_h5", "tflite", "edgetpu_tflite" to bytes (None:
    not built)."""
    return ReportModel(
        summary=summary(result, sizes), sizes=sizes_section(sizes, result),
        operators=operators_section(result), strip=strip_section(result),
        memory=memory_section(result), fidelity=fidelity_section(fidelity, plot),
        quantization=quantization_section(quantization), crops=crops_section(crops),
        toolchain=toolchain_section(toolchain))
