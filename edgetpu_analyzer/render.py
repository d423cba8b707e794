"""Render a CompileResult in the compiler's own layouts: its stdout and its `.log` file.

Layouts follow published compiler output (facts sheet section 7.3): compiler 2.0 prints
"On-chip memory available" and no "remaining" line; compiler 16 wraps the run in the
timeout-timer lines and ends with "Compilation succeeded!". The operator table uses the
compiler's column widths: operator left-justified in 31 columns, count in 11 (facts sheet
section 5, checked on 409 rows of committed logs). A predicted result always starts with
PREDICTION_MARKER so it cannot be mistaken for compiler output.
"""
from __future__ import annotations

from typing import List, Optional

from edgetpu_analyzer.result import (
    PREDICTION_MARKER, CompileResult, OperatorRow, format_size)

OPERATOR_COLUMN = 31
COUNT_COLUMN = 11
PARTIAL_MAPPING_PARAGRAPH = (
    "Model successfully compiled but not all operations are supported by the Edge TPU. A "
    "percentage of the model will instead run on the CPU, which is slower. If possible, "
    "consider updating your model to use only operations supported by the Edge TPU. For "
    "details, visit g.co/coral/model-reqs.")
SEE_LOG_LINE = "See the operation log file for individual operation details."


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def render_operator_table(rows: List[OperatorRow]) -> List[str]:
    """The table header, a blank line and one line per row, as the compiler prints them."""
    lines = ["Operator".ljust(OPERATOR_COLUMN) + "Count".ljust(COUNT_COLUMN) + "Status", ""]
    for row in rows:
        lines.append(row.operator.ljust(OPERATOR_COLUMN) + str(row.count).ljust(COUNT_COLUMN)
                     + row.status)
    return lines


def _size(value: Optional[int]) -> str:
    return format_size(value or 0)


def render_compiler_stdout(result: CompileResult, show_operations: bool = True,
                           timeout_sec: int = 180) -> str:
    """What the compiler prints for this result (`-s` adds the operator table)."""
    lines = [PREDICTION_MARKER] if result.predicted else []
    lines.append("Edge TPU Compiler version {}".format(result.compiler_version))
    child_process = _major(result.compiler_version) >= 16
    if result.fatal_error is not None:
        # Parse failures happen before the child process starts (ge#845) [OBS].
        in_child = child_process and "Compilation failed" in result.fatal_error
        if in_child:
            lines.append("Started a compilation timeout timer of {} seconds.".format(timeout_sec))
        lines.extend(result.fatal_error.split("\n"))
        if in_child:
            lines += ["Compilation child process completed within timeout period.",
                      "Compilation failed!"]
        return "\n".join(lines) + "\n"

    if child_process:
        lines.append("Started a compilation timeout timer of {} seconds.".format(timeout_sec))
    lines += ["", "Model compiled successfully in {} ms.".format(result.compile_time_ms or 0), ""]
    lines += [
        "Input model: {}".format(result.input_model),
        "Input size: {}".format(_size(result.input_size_bytes)),
        "Output model: {}".format(result.output_model),
        "Output size: {}".format(_size(result.output_size_bytes)),
    ]
    if result.on_chip_memory_available_bytes is not None:
        lines.append("On-chip memory available for caching model parameters: {}".format(
            _size(result.on_chip_memory_available_bytes)))
    lines.append("On-chip memory used for caching model parameters: {}".format(
        _size(result.on_chip_memory_used_bytes)))
    if result.on_chip_memory_available_bytes is None:
        lines.append("On-chip memory remaining for caching model parameters: {}".format(
            _size(result.on_chip_memory_remaining_bytes)))
    lines += [
        "Off-chip memory used for streaming uncached model parameters: {}".format(
            _size(result.off_chip_memory_bytes)),
        "Number of Edge TPU subgraphs: {}".format(result.edgetpu_subgraphs or 0),
        "Total number of operations: {}".format(result.total_operations or 0),
        "Operation log: {}".format(result.operation_log),
    ]
    if result.operations_on_cpu:
        lines += ["", PARTIAL_MAPPING_PARAGRAPH,
                  "Number of operations that will run on Edge TPU: {}".format(
                      result.operations_on_edgetpu),
                  "Number of operations that will run on CPU: {}".format(
                      result.operations_on_cpu)]
    if show_operations and result.operators:
        lines.append("")
        lines += render_operator_table(result.operators)
    else:
        lines.append(SEE_LOG_LINE)
    if child_process:
        lines += ["Compilation child process completed within timeout period.",
                  "Compilation succeeded!"]
    return "\n".join(lines) + "\n"


def render_operation_log(result: CompileResult) -> str:
    """The `<model>_edgetpu.log` file the compiler writes next to its output model."""
    lines = [PREDICTION_MARKER] if result.predicted else []
    lines += ["Edge TPU Compiler version {}".format(result.compiler_version),
              "Input: {}".format(result.input_model),
              "Output: {}".format(result.output_model),
              ""]
    lines += render_operator_table(result.operators)
    return "\n".join(lines) + "\n"
