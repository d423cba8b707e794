"""Parsing real edgetpu_compiler output (tests/data, sources in tests/data/SOURCES.md)."""
import os

import pytest

from edgetpu_analyzer.parse import (
    CompilerOutputError, compiler_version_from_text, parse_compiler_stdout, parse_operation_log)
from edgetpu_analyzer.render import render_compiler_stdout, render_operation_log
from edgetpu_analyzer.result import (
    PREDICTION_MARKER, STATUS_MAPPED, STATUS_MORE_THAN_ONE_SUBGRAPH, STATUS_OTHERWISE_SUPPORTED,
    STATUS_UNSUPPORTED_DATA_TYPE, CompileResult, OperatorRow, format_size, size_from_text)

DATA = os.path.join(os.path.dirname(__file__), "data")
MIB = 1024 * 1024


def read(name):
    with open(os.path.join(DATA, name), encoding="utf-8") as handle:
        return handle.read()


def table(result):
    return {(row.operator, row.status): row.count for row in result.operators}


FACENET_SEED_TABLE = {
    ("QUANTIZE", STATUS_MAPPED): 33, ("MEAN", STATUS_MAPPED): 1, ("MAX_POOL_2D", STATUS_MAPPED): 3,
    ("ADD", STATUS_MAPPED): 21, ("FULLY_CONNECTED", STATUS_MAPPED): 1,
    ("CONCATENATION", STATUS_MAPPED): 23, ("CONV_2D", STATUS_MAPPED): 132,
}


@pytest.mark.parametrize("name", ["seed000_facenet_v15_stdout.txt",
                                  "seed000_facenet_v15_stdout_annotated.txt"])
def test_seed_facenet_v15_parses_to_214_mapped_operations(name):
    result = parse_compiler_stdout(read(name))
    assert result.compiler_version == "15.0.340273435"
    assert result.predicted is False and result.succeeded
    assert result.compile_time_ms == 8222
    assert (result.input_model, result.output_model, result.operation_log) == (
        "facenet_keras.tflite", "facenet_keras_edgetpu.tflite", "facenet_keras_edgetpu.log")
    assert result.input_size_bytes == round(22.71 * MIB)
    assert result.output_size_bytes == round(22.43 * MIB)
    assert result.on_chip_memory_used_bytes == round(7.04 * MIB)
    assert result.on_chip_memory_remaining_bytes == round(1.25 * 1024)
    assert result.on_chip_memory_available_bytes is None
    assert result.off_chip_memory_bytes == round(15.06 * MIB)
    assert result.edgetpu_subgraphs == 1
    assert (result.total_operations, result.operations_on_edgetpu,
            result.operations_on_cpu) == (214, 214, 0)
    assert table(result) == FACENET_SEED_TABLE
    assert result.mapped_fraction() == 1.0
    assert result.notes == []


def test_seed_mobilenet_integer_quant_v2_0_leaves_quantize_and_dequantize_on_cpu():
    result = parse_compiler_stdout(read("seed001_mobilenet_v2_integer_quant_v2.0_stdout.txt"))
    assert result.compiler_version == "2.0.267685300"
    # Compiler 2.0 prints "available" and "used", no "remaining".
    assert result.on_chip_memory_available_bytes == round(6.91 * MIB)
    assert result.on_chip_memory_used_bytes == round(2.71 * MIB)
    assert result.on_chip_memory_remaining_bytes is None
    assert result.off_chip_memory_bytes == 0
    assert (result.total_operations, result.operations_on_edgetpu,
            result.operations_on_cpu) == (72, 70, 2)
    assert table(result) == {
        ("ADD", STATUS_MAPPED): 10, ("QUANTIZE", STATUS_OTHERWISE_SUPPORTED): 1,
        ("PAD", STATUS_MAPPED): 5, ("CONV_2D", STATUS_MAPPED): 35,
        ("DEPTHWISE_CONV_2D", STATUS_MAPPED): 17,
        ("DEQUANTIZE", STATUS_UNSUPPORTED_DATA_TYPE): 1, ("MEAN", STATUS_MAPPED): 1,
        ("FULLY_CONNECTED", STATUS_MAPPED): 1, ("SOFTMAX", STATUS_MAPPED): 1}
    assert [row.operator for row in result.cpu_rows()] == ["QUANTIZE", "DEQUANTIZE"]


def test_seed_mobilenet_full_integer_v2_0_maps_everything_without_count_lines():
    result = parse_compiler_stdout(read("seed001_mobilenet_v2_full_integer_quant_v2.0_stdout.txt"))
    assert (result.total_operations, result.operations_on_edgetpu,
            result.operations_on_cpu) == (72, 72, 0)
    assert table(result)[("QUANTIZE", STATUS_MAPPED)] == 2
    assert sum(row.count for row in result.operators) == 72


def test_v16_partial_output_without_table_keeps_summary_counts():
    result = parse_compiler_stdout(read("v16_android_partial_stdout.txt"))
    assert result.compiler_version == "16.0.384591198" and result.succeeded
    assert (result.total_operations, result.operations_on_edgetpu,
            result.operations_on_cpu) == (267, 264, 3)
    assert result.operators == []
    assert result.on_chip_memory_remaining_bytes == round(3.29 * MIB)


def test_v16_refusal_and_failure_give_fatal_error():
    refused = parse_compiler_stdout(read("v16_transpose_conv_v4_refused_stdout.txt"))
    assert not refused.succeeded
    assert "Didn't find op for builtin opcode 'TRANSPOSE_CONV' version '4'" in refused.fatal_error
    assert "Model could not be parsed" in refused.fatal_error
    failed = parse_compiler_stdout(read("v16_dynamic_tensors_failed_stdout.txt"))
    assert failed.fatal_error.splitlines() == [
        "ERROR: Attempting to use a delegate that only supports static-sized tensors with a "
        "graph that has dynamic-sized tensors.",
        "Compilation failed: Model failed in Tflite interpreter. Please ensure model can be "
        "loaded/run in Tflite interpreter.",
        "Compilation failed!"]


def test_operation_log_keeps_repeated_operators_with_different_statuses():
    result = parse_operation_log(read("v16_yolov8n_full_integer_quant_edgetpu.log"))
    assert result.compiler_version == "16.0.384591198"
    assert result.output_model.endswith("yolov8n_full_integer_quant_edgetpu.tflite")
    rows = table(result)
    assert rows[("CONV_2D", STATUS_MAPPED)] == 63
    assert rows[("CONV_2D", STATUS_MORE_THAN_ONE_SUBGRAPH)] == 1
    assert len([row for row in result.operators if row.operator == "CONCATENATION"]) == 3
    assert result.total_operations == sum(row.count for row in result.operators) == 256
    assert result.operations_on_edgetpu == 233


def test_row_order_and_spacing_do_not_matter():
    text = read("seed000_facenet_v15_stdout.txt")
    head, rows = text.split("Operator                       Count      Status\n\n")
    shuffled = "\n".join("  {}\t {}   {}".format(*line.split(None, 2))
                         for line in reversed(rows.strip().splitlines()))
    result = parse_compiler_stdout(head + "Operator   Count  Status\n" + shuffled + "\n")
    assert table(result) == FACENET_SEED_TABLE


def test_search_delegate_trace_uses_the_final_successful_attempt():
    success = read("v16_android_partial_stdout.txt").split("\n", 1)[1]
    text = ("Edge TPU Compiler version 16.0.384591198\nSearching for valid delegate with step 10\n"
            "Try to compile segment with 300 ops\nStarted a compilation timeout timer of 180 "
            "seconds.\nCompilation timeout. This is usually caused by large activations.\n"
            "Compilation failed! \nTry to compile segment with 267 ops\n" + success)
    result = parse_compiler_stdout(text)
    assert result.succeeded and result.total_operations == 267


@pytest.mark.parametrize("text", ["", "\n\n", "hello world\n", "\x00\xff garbage \x07",
                                  "Operator   Count  Status\nCONV_2D 3 Mapped to Edge TPU\n"])
def test_text_that_is_not_compiler_output_is_refused(text):
    with pytest.raises(CompilerOutputError, match="not edgetpu_compiler"):
        parse_compiler_stdout(text)


def test_truncated_compiler_output_is_refused():
    text = read("seed000_facenet_v15_stdout.txt")
    with pytest.raises(CompilerOutputError, match="incomplete"):
        parse_compiler_stdout(text[:60])   # cut right after "Model compiled..."
    with pytest.raises(CompilerOutputError, match="incomplete"):
        parse_compiler_stdout("Edge TPU Compiler version 15.0.340273435\n\n")
    with pytest.raises(CompilerOutputError, match="no 'Operator"):
        parse_operation_log("Edge TPU Compiler version 16.0.384591198\nInput: a.tflite\n")
    with pytest.raises(CompilerOutputError):
        parse_compiler_stdout(b"Edge TPU Compiler version 16.0")  # bytes, not text


def test_version_query_output():
    assert compiler_version_from_text("Edge TPU Compiler version 16.0.384591198\n") == \
        "16.0.384591198"
    with pytest.raises(CompilerOutputError):
        compiler_version_from_text("command not found")


def test_rendered_result_parses_back_to_the_same_structure():
    original = parse_compiler_stdout(read("seed000_facenet_v15_stdout.txt"))
    again = parse_compiler_stdout(render_compiler_stdout(original))
    assert again.to_dict() == original.to_dict()
    rendered = render_compiler_stdout(original)
    assert rendered == read("seed000_facenet_v15_stdout.txt")
    older = parse_compiler_stdout(read("seed001_mobilenet_v2_integer_quant_v2.0_stdout.txt"))
    assert render_compiler_stdout(older) == read(
        "seed001_mobilenet_v2_integer_quant_v2.0_stdout.txt")


def test_predicted_text_is_recognised_as_a_prediction():
    result = CompileResult(compiler_version="16.0.384591198", predicted=True,
                           input_model="m.tflite", output_model="m_edgetpu.tflite",
                           operators=[OperatorRow("CONV_2D", 2, STATUS_MAPPED)])
    log_text = render_operation_log(result)
    assert log_text.splitlines()[0] == PREDICTION_MARKER
    parsed = parse_operation_log(log_text)
    assert parsed.predicted and parsed.operators == result.operators
    assert not parse_operation_log(read("v16_yolov8n_full_integer_quant_edgetpu.log")).predicted


def test_result_json_round_trip():
    original = parse_compiler_stdout(read("seed001_mobilenet_v2_integer_quant_v2.0_stdout.txt"))
    data = original.to_dict()
    assert data["format"] == "edgetpu-compile-result/1"
    assert data["mapped_fraction"] == round(70 / 72.0, 6)
    assert CompileResult.from_dict(data) == original
    with pytest.raises(ValueError):
        CompileResult.from_dict({"operators": []})


@pytest.mark.parametrize("num_bytes,text", [
    (0, "0.00B"), (92, "92.00B"), (1023, "1023.00B"), (1280, "1.25KiB"),
    (round(7.04 * MIB), "7.04MiB"), (23845848, "22.74MiB")])
def test_sizes_are_formatted_like_the_compiler(num_bytes, text):
    assert format_size(num_bytes) == text
    number, unit = text[:-3], text[-3:]
    if unit.endswith("B") and not unit.endswith("iB"):
        number, unit = text[:-1], "B"
    assert format_size(size_from_text(number, unit)) == text
