"""Stage `report`: the pipeline's report, from the outputs of the other stages.

Reads the compile result (real or predicted), models/quantization.json, the crop and fidelity
metrics, the embeddings plot, toolchain.yaml and the model files' sizes; builds the report's
content once (`facenet_edgetpu.report.build`) and writes

    --out-md      the report as Markdown (reports/report.md)
    --out-html    the same report as one self-contained HTML page (reports/report.html)
    --metrics     the figures `dvc metrics diff` compares (reports/metrics.json)
    --plots       operators.csv and sizes.csv for `dvc plots` (reports/plots)

Every path comes from the command line (dvc.yaml); the same inputs give the same bytes.

Example:
    python -m facenet_edgetpu.stages.report --compile-dir models/edgetpu \\
        --quantization models/quantization.json --crops reports/crop_metrics.json \\
        --fidelity reports/fidelity.json --fidelity-plots reports/fidelity \\
        --toolchain toolchain.yaml --tflite models/facenet_keras.tflite \\
        --model models/facenet_keras.h5 --out-md reports/report.md \\
        --out-html reports/report.html --metrics reports/metrics.json --plots reports/plots
"""
from __future__ import annotations

import argparse
import os
from typing import Dict, List, Optional

import yaml

from edgetpu_analyzer.result import CompileResult
from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger
from facenet_edgetpu.lib import records
from facenet_edgetpu.report import build, metrics, render
from facenet_edgetpu.report.model import Embeddings

OPERATORS_CSV = "operators.csv"   # in --plots
SIZES_CSV = "sizes.csv"           # in --plots

log = get_logger("report")


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m facenet_edgetpu report", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    inputs = parser.add_argument_group("inputs")
    for flag, meaning in (
            ("--compile-dir", "the compile stage's folder (compile_result.json, compiled model)"),
            ("--quantization", "quantization.json of the quantize stage"),
            ("--crops", "crop_metrics.json of the crop_faces stage"),
            ("--fidelity", "fidelity.json of the fidelity stage"),
            ("--fidelity-plots", "the fidelity stage's plot folder (embeddings.png)"),
            ("--toolchain", "toolchain.yaml"),
            ("--tflite", "the full-integer TFLite model"),
            ("--model", "the Keras .h5 model")):
        inputs.add_argument(flag, required=True, help=meaning)
    outputs = parser.add_argument_group("outputs")
    for flag, meaning in (("--out-md", "the Markdown report"), ("--out-html", "the HTML report"),
                          ("--metrics", "the DVC metrics file"),
                          ("--plots", "the folder for the DVC plot data")):
        outputs.add_argument(flag, required=True, help=meaning)
    return parser.parse_args(argv)


def read_toolchain(path: str) -> Dict[str, Dict[str, str]]:
    """toolchain.yaml as {stage: {component: version}}."""
    rewrite = "run `python -m facenet_edgetpu toolchain` (make repro does it)"
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise PipelineError("{} not found: {}".format(path, rewrite)) from None
    except yaml.YAMLError as error:
        raise PipelineError("{} is not valid YAML ({}): {} to write it again".format(
            path, str(error).splitlines()[0], rewrite)) from None
    if not isinstance(data, dict) or not all(
            isinstance(stage, str) and isinstance(section, dict) and all(
                isinstance(key, str) and isinstance(value, str) for key, value in section.items())
            for stage, section in data.items()):
        raise PipelineError("{} must map each stage to its components and their versions as "
                            "text: {} to write it again".format(path, rewrite))
    return data


def read_compile_result(compile_dir: str) -> CompileResult:
    """The compile stage's result in `compile_dir`; RecordError when missing or malformed."""
    path = os.path.join(compile_dir, records.COMPILE_RESULT_FILE)
    data = artifacts.read_json(path, "compile")
    try:
        return CompileResult.from_dict(data)
    except (TypeError, ValueError) as error:
        raise records.RecordError("{}: not a compile result ({}); rerun the stage that writes "
                                  "it (dvc repro compile)".format(path, error)) from None


def file_size(path: str, stage: str) -> int:
    if not os.path.isfile(path):
        raise PipelineError("{} not found: rerun the stage that writes it (dvc repro {})".format(
            path, stage))
    return os.path.getsize(path)


def edgetpu_model_size(result: CompileResult, compile_dir: str) -> Optional[int]:
    """Bytes of the compiled model inside the compile folder; None for a prediction."""
    if result.predicted or not result.output_model:
        return None
    return file_size(os.path.join(compile_dir, os.path.basename(result.output_model)), "compile")


def read_embeddings(plots_dir: str, markdown_path: str) -> Embeddings:
    path = os.path.join(plots_dir, records.EMBEDDINGS_PNG)
    try:
        with open(path, "rb") as handle:
            png = handle.read()
    except OSError as error:
        raise PipelineError("cannot read {} ({}): rerun the stage that writes it (dvc repro "
                            "fidelity)".format(path, error.strerror)) from None
    link = os.path.relpath(path, os.path.dirname(os.path.abspath(markdown_path)) or ".")
    return build.embeddings(png, link.replace(os.sep, "/"), path)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    result = read_compile_result(args.compile_dir)
    quantization = records.Quantization.load(args.quantization)
    crops = records.CropMetrics.load(args.crops)
    sizes = {"keras_h5": file_size(args.model, "fetch_inputs"),
             "tflite": file_size(args.tflite, "quantize"),
             "edgetpu_tflite": edgetpu_model_size(result, args.compile_dir)}
    report = build.build_report(
        result, quantization, crops, records.Fidelity.load(args.fidelity),
        read_toolchain(args.toolchain), sizes, read_embeddings(args.fidelity_plots, args.out_md))
    artifacts.write_text(args.out_md, render.render_markdown(report))
    artifacts.write_text(args.out_html, render.render_html(report))
    artifacts.write_json(args.metrics, metrics.collect_metrics(sizes, result, quantization, crops))
    os.makedirs(args.plots, exist_ok=True)
    artifacts.write_text(os.path.join(args.plots, OPERATORS_CSV), metrics.operators_csv(result))
    artifacts.write_text(os.path.join(args.plots, SIZES_CSV), metrics.sizes_csv(sizes))
    log.info("Wrote %s, %s, %s and the plot data in %s", args.out_md, args.out_html,
             args.metrics, args.plots)


if __name__ == "__main__":
    entry.start("report", main)
