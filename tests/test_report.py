"""The report stage's pure parts: metrics for `dvc metrics diff`, plot data, Markdown."""
from __future__ import annotations

from edgetpu_analyzer.result import (
    STATUS_MAPPED, STATUS_MORE_THAN_ONE_SUBGRAPH, CompileResult, OperatorRow)
from facenet_edgetpu.stages import report

QUANTIZATION = {
    "operators": {"CONV_2D": 3, "QUANTIZE": 1},
    "calibration_samples": 7,
    "input": {"dtype": "uint8", "shape": [1, 160, 160, 3], "scale": 0.03, "zero_point": 141},
    "output": {"dtype": "uint8", "shape": [1, 128], "scale": 0.02, "zero_point": 128},
}
CROPS = {"train": {"photos": 9, "cropped": 7, "no_face": 2},
         "val": {"photos": 3, "cropped": 3}}
SIZES = {"keras_h5": 2 * 1048576, "tflite": 1048576, "edgetpu_tflite": None}


def partial_result(predicted=True):
    return CompileResult(
        compiler_version="16.0.384591198", predicted=predicted, min_runtime_version=12,
        total_operations=4, operations_on_edgetpu=2, operations_on_cpu=2, edgetpu_subgraphs=1,
        on_chip_memory_used_bytes=1024, on_chip_memory_remaining_bytes=0,
        off_chip_memory_bytes=2048,
        operators=[OperatorRow("QUANTIZE", 1, STATUS_MAPPED),
                   OperatorRow("CONV_2D", 1, STATUS_MAPPED),
                   OperatorRow("CONV_2D", 2, STATUS_MORE_THAN_ONE_SUBGRAPH)])


def test_metrics_keep_one_number_per_operator_and_status():
    metrics = report.collect_metrics(SIZES, partial_result(), QUANTIZATION, CROPS)
    assert metrics["operators"] == {
        "CONV_2D": {STATUS_MAPPED: 1, STATUS_MORE_THAN_ONE_SUBGRAPH: 2},
        "QUANTIZE": {STATUS_MAPPED: 1}}
    assert metrics["compile"]["mapped_fraction"] == 0.5
    assert metrics["compile"]["operations_on_cpu"] == 2
    assert metrics["size_bytes"] == {"keras_h5": 2 * 1048576, "tflite": 1048576}
    assert metrics["crops"] == {"train": 7, "val": 3}
    assert metrics["tflite_operators"] == 4 and metrics["calibration_samples"] == 7


def test_plot_data_is_sorted_and_compares_with_the_seed():
    assert report.operators_csv(partial_result()).splitlines() == [
        "operator,count",
        '"CONV_2D ({})",1'.format(STATUS_MAPPED),
        '"CONV_2D ({})",2'.format(STATUS_MORE_THAN_ONE_SUBGRAPH),
        '"QUANTIZE ({})",1'.format(STATUS_MAPPED)]
    sizes = report.sizes_csv(SIZES).splitlines()
    assert sizes[0] == "artifact,mib"
    assert "tflite (this run),1.000" in sizes and "keras_h5 (this run),2.000" in sizes
    assert "edgetpu_tflite (seed),22.426" in sizes
    assert not any(line.startswith("edgetpu_tflite (this run)") for line in sizes)


def test_markdown_marks_a_prediction_and_not_a_real_result():
    toolchain = {"tensorflow": "2.15.1", "edgetpu_compiler": "predicted"}
    predicted = report.render_markdown(SIZES, partial_result(True), QUANTIZATION, CROPS, toolchain)
    assert "**PREDICTED" in predicted and "not compiler output" in predicted
    assert "| CONV_2D | 2 | {} |".format(STATUS_MORE_THAN_ONE_SUBGRAPH) in predicted
    assert "| tensorflow | 2.15.1 |" in predicted
    real = report.render_markdown(SIZES, partial_result(False), QUANTIZATION, CROPS, toolchain)
    assert "PREDICTED" not in real and "Compile result: **compiled**" in real
