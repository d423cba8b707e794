"""Write the pipeline's report: reports/report.md and the DVC metrics reports/metrics.json.

It puts the file sizes of the Keras model, the int8 TFLite model and (when compiled) the
Edge TPU model next to the seed's figures, the operator table with each operator's status,
the memory lines, whether the compile result is real or predicted, the crop statistics,
the model's real input/output quantization, and the toolchain.

Example:
    python -m facenet_edgetpu report
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import yaml

from edgetpu_analyzer.result import CompileResult, format_size
from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.log import get_logger
from facenet_edgetpu.lib.seed import SEED_OPERATORS, SEED_SIZES
from facenet_edgetpu.stages.html_report import render_html

RESULT_FILE = "compile_result.json"
EMBEDDINGS_PNG = "embeddings.png"
OPERATORS_PLOT = "operators.csv"
SIZES_PLOT = "sizes.csv"

log = get_logger("report")


def file_size(path: str) -> Optional[int]:
    return os.path.getsize(path) if os.path.exists(path) else None


def edgetpu_model_path(result: CompileResult, compile_dir: str) -> Optional[str]:
    """The compiled model inside the compile folder, if the real compiler produced one."""
    if result.predicted or not result.output_model:
        return None
    path = os.path.join(compile_dir, os.path.basename(result.output_model))
    return path if os.path.exists(path) else None


def collect_metrics(sizes: Dict[str, Optional[int]], result: CompileResult,
                    quantization: Dict[str, Any], crops: Dict[str, Any]) -> Dict[str, Any]:
    """The numbers `dvc metrics diff` compares between runs (flat, no nulls)."""
    metrics = {
        "size_bytes": {name: size for name, size in sorted(sizes.items()) if size is not None},
        "compile": {
            "predicted": result.predicted,
            "succeeded": result.succeeded,
            "total_operations": result.total_operations or 0,
            "operations_on_edgetpu": result.operations_on_edgetpu or 0,
            "operations_on_cpu": result.operations_on_cpu or 0,
            "mapped_fraction": round(result.mapped_fraction(), 6),
            "edgetpu_subgraphs": result.edgetpu_subgraphs or 0,
            "on_chip_memory_used_bytes": result.on_chip_memory_used_bytes or 0,
            "off_chip_memory_bytes": result.off_chip_memory_bytes or 0,
        },
        # One number per (operator, status) row, so `dvc metrics diff` shows operators that
        # changed status between runs, like `oplog-diff` does.
        "operators": {row.operator: {} for row in result.operators},
        "tflite_operators": sum(quantization["operators"].values()),
        "calibration_samples": quantization["calibration_samples"],
        "crops": {split: counts["cropped"] for split, counts in sorted(crops.items())},
    }
    for row in result.operators:
        metrics["operators"][row.operator][row.status] = row.count
    return metrics


def operators_csv(result: CompileResult) -> str:
    """DVC plot data: one bar per (operator, status) row, sorted."""
    lines = ["operator,count"]
    for row in sorted(result.operators, key=lambda row: (row.operator, row.status)):
        lines.append('"{} ({})",{}'.format(row.operator, row.status, row.count))
    return "\n".join(lines) + "\n"


def sizes_csv(sizes: Dict[str, Optional[int]]) -> str:
    """DVC plot data: this run's sizes next to the seed's, in MiB."""
    lines = ["artifact,mib"]
    for name in sorted(SEED_SIZES):
        if sizes.get(name) is not None:
            lines.append("{} (this run),{:.3f}".format(name, sizes[name] / 1048576.0))
        lines.append("{} (seed),{:.3f}".format(name, SEED_SIZES[name] / 1048576.0))
    return "\n".join(lines) + "\n"


def _table(header: List[str], rows: List[List[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return lines


def _bytes(size: Optional[int]) -> str:
    return "{:,}".format(size) if size is not None else "–"


def render_markdown(sizes: Dict[str, Optional[int]], result: CompileResult,
                    quantization: Dict[str, Any], crops: Dict[str, Any],
                    toolchain: Dict[str, str]) -> str:
    """The Markdown report; every figure in it comes from the arguments."""
    kind = "PREDICTED (no edgetpu_compiler here)" if result.predicted else "compiled"
    lines = ["# FaceNet to Edge TPU: build report", "",
             "Compile result: **{}**, compiler {}{}.".format(
                 kind, result.compiler_version,
                 ", `--min_runtime_version {}`".format(result.min_runtime_version)
                 if result.min_runtime_version is not None else ""), ""]
    if result.predicted:
        lines += ["> The operator statuses and memory lines below are a prediction by "
                  "`edgetpu-predict` from the compiler's published rules, not compiler output; "
                  "the memory figures are estimates.", ""]
    if result.fatal_error:
        lines += ["**The compiler {} refuse the model:** `{}`".format(
            "would" if result.predicted else "did", result.fatal_error), ""]

    lines += ["## Sizes", ""]
    names = [("keras_h5", "Keras model (.h5)"), ("tflite", "full-integer TFLite"),
             ("edgetpu_tflite", "Edge TPU TFLite")]
    lines += _table(["artifact", "bytes (this run)", "bytes (seed)"], [
        [label, _bytes(sizes.get(name)), _bytes(SEED_SIZES[name])] for name, label in names])

    lines += ["", "## Operators", ""]
    rows = sorted(result.operators, key=lambda row: (row.operator, row.status))
    lines += _table(["operator", "count", "status"],
                    [[row.operator, row.count, row.status] for row in rows])
    lines += ["", "{} operations: {} on the Edge TPU, {} on the CPU; {} Edge TPU subgraph(s).".format(
        result.total_operations, result.operations_on_edgetpu, result.operations_on_cpu,
        result.edgetpu_subgraphs), ""]
    lines += _table(["operator", "TFLite count (this run)", "count in the seed's TF 1.15 model"], [
        [name, quantization["operators"].get(name, 0), SEED_OPERATORS.get(name, 0)]
        for name in sorted(set(quantization["operators"]) | set(SEED_OPERATORS))])

    lines += ["", "## Parameter memory", ""]
    memory = [("On-chip memory used for caching model parameters", result.on_chip_memory_used_bytes),
              ("On-chip memory remaining for caching model parameters",
               result.on_chip_memory_remaining_bytes),
              ("Off-chip memory used for streaming uncached model parameters",
               result.off_chip_memory_bytes)]
    lines += _table(["line", "value"], [
        [label, format_size(value) if value is not None else "–"] for label, value in memory])

    lines += ["", "## Quantization", ""]
    lines += _table(["tensor", "dtype", "shape", "scale", "zero point"], [
        [side, quantization[side]["dtype"], "x".join(str(d) for d in quantization[side]["shape"]),
         quantization[side]["scale"], quantization[side]["zero_point"]]
        for side in ("input", "output")])
    lines += ["", "Calibrated with {} train faces.".format(quantization["calibration_samples"])]

    lines += ["", "## Calibration faces", ""]
    reasons = ["photos", "cropped", "no_face", "margin_outside_image", "unreadable", "not_tried"]
    lines += _table(["split"] + reasons, [
        [split] + [crops[split].get(reason, 0) for reason in reasons] for split in sorted(crops)])

    lines += ["", "## Toolchain", ""]
    lines += _table(["component", "version"], [[key, toolchain[key]] for key in sorted(toolchain)])
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("report", __doc__)
    for option, text in (("--model", "the Keras .h5"), ("--tflite", "the quantized .tflite"),
                         ("--quantization", "the quantization JSON"),
                         ("--compile-dir", "the compile stage's folder"),
                         ("--crops", "the crop metrics JSON"), ("--fidelity", "the fidelity JSON"),
                         ("--fidelity-plots", "the fidelity plots folder"),
                         ("--toolchain", "toolchain.yaml"), ("--out-md", "report.md to write"),
                         ("--out-html", "report.html to write"),
                         ("--metrics", "metrics JSON to write"), ("--plots", "plot data folder")):
        parser.add_argument(option, required=True, help=text)
    args = parser.parse_args(argv)
    result = CompileResult.from_dict(artifacts.read_json(
        os.path.join(args.compile_dir, RESULT_FILE), made_by="compile"))
    quantization = artifacts.read_json(args.quantization, made_by="quantize")
    crops = artifacts.read_json(args.crops, made_by="crop_faces")
    with open(args.toolchain, "r", encoding="utf-8") as handle:
        toolchain = yaml.safe_load(handle)
    edgetpu_model = edgetpu_model_path(result, args.compile_dir)
    sizes = {"keras_h5": file_size(args.model), "tflite": file_size(args.tflite),
             "edgetpu_tflite": file_size(edgetpu_model) if edgetpu_model else None}
    fidelity = artifacts.read_json(args.fidelity, made_by="fidelity")
    artifacts.write_text(args.out_md, render_markdown(sizes, result, quantization, crops,
                                                      toolchain))
    artifacts.write_text(args.out_html, render_html(
        sizes, result, quantization, crops, toolchain, fidelity=fidelity,
        embeddings_png=os.path.join(args.fidelity_plots, EMBEDDINGS_PNG)))
    artifacts.write_json(args.metrics, collect_metrics(sizes, result, quantization, crops))
    artifacts.write_text(os.path.join(args.plots, OPERATORS_PLOT), operators_csv(result))
    artifacts.write_text(os.path.join(args.plots, SIZES_PLOT), sizes_csv(sizes))
    log.info("Wrote %s, %s, %s and the plot data in %s", args.out_md, args.out_html,
             args.metrics, args.plots)


if __name__ == "__main__":
    entry.start("report", main)
