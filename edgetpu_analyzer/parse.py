"""Parse what `edgetpu_compiler` prints, and the operation log it writes, into a CompileResult.

Handles the stdout of compilers 2.x, 14.1, 15.0 and 16.0: compiler 2.0 prints "On-chip memory
available" before "used" and no "remaining" line; 16.0 adds the timeout-timer lines and
"Compilation succeeded!". Row order and spacing do not matter; blog annotations after a value
(as in the seed documents) are ignored. Lines before the version line are skipped, so the
first line of a predicted artifact (PREDICTION_MARKER) is read as "this is a prediction".

Example:
    result = parse_compiler_stdout(open("compiler_stdout.txt").read())
"""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

from edgetpu_analyzer.compiler import VERSION_LINE as _VERSION
from edgetpu_analyzer.result import (
    PREDICTION_MARKER, STATUS_MAPPED, CompileResult, OperatorRow, size_from_text)


class CompilerOutputError(ValueError):
    """The text is not (complete) edgetpu_compiler output."""


_SIZE = r"(\d+(?:\.\d+)?)\s*(B|KiB|MiB|GiB)"
_SIZE_LINES = {
    "input_size_bytes": re.compile(r"^\s*Input size:\s*" + _SIZE),
    "output_size_bytes": re.compile(r"^\s*Output size:\s*" + _SIZE),
    "on_chip_memory_available_bytes": re.compile(
        r"^\s*On-chip memory available for caching model parameters:\s*" + _SIZE),
    "on_chip_memory_used_bytes": re.compile(
        r"^\s*On-chip memory used for caching model parameters:\s*" + _SIZE),
    "on_chip_memory_remaining_bytes": re.compile(
        r"^\s*On-chip memory remaining for caching model parameters:\s*" + _SIZE),
    "off_chip_memory_bytes": re.compile(
        r"^\s*Off-chip memory used for streaming uncached model parameters:\s*" + _SIZE),
}
_INT_LINES = {
    "edgetpu_subgraphs": re.compile(r"^\s*Number of Edge TPU subgraphs:\s*(\d+)"),
    "total_operations": re.compile(r"^\s*Total number of operations:\s*(\d+)"),
    "operations_on_edgetpu": re.compile(
        r"^\s*Number of operations that will run on Edge TPU:\s*(\d+)"),
    "operations_on_cpu": re.compile(r"^\s*Number of operations that will run on CPU:\s*(\d+)"),
}
_TEXT_LINES = {
    "input_model": re.compile(r"^\s*Input model:\s*(\S.*?)\s*$"),
    "output_model": re.compile(r"^\s*Output model:\s*(\S.*?)\s*$"),
    "operation_log": re.compile(r"^\s*Operation log:\s*(\S.*?)\s*$"),
}
_COMPILED = re.compile(r"^\s*Models? compiled successfully in\s+(\d+)\s*ms")
_TABLE_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$")
_TABLE_ROW = re.compile(r"^\s*([A-Za-z][\w.-]*)\s+(\d+)\s+(\S.*?)\s*$")
_ERROR_LINE = re.compile(
    r"^\s*(ERROR:.*|Compilation failed.*|Internal compiler error.*|Invalid model:.*"
    r"|Model could not be parsed.*|Model not quantized.*|Compilation timeout.*"
    r"|(?:libc\+\+abi: )?terminating with uncaught exception.*)$")
_FINAL_STATUS = re.compile(r"^\s*Compilation (failed|succeeded)!?\s*$")


# Counts and times have a few digits, sizes a few before the point; the compiler never prints
# more than this many. A longer number is not compiler output (and would fail to convert:
# Python 3.11+ refuses to convert more than 4300 digits, a float overflows past 308).
_MAX_DIGITS = 18


def _check_digits(number: str, line: str) -> str:
    if len(number.split(".")[0]) > _MAX_DIGITS:
        raise CompilerOutputError(
            "not edgetpu_compiler output: a number of {} digits in the line {!r}".format(
                len(number.split(".")[0]), line.strip()[:80]))
    return number


def _integer(number: str, line: str) -> int:
    return int(_check_digits(number, line))


def _size(number: str, unit: str, line: str) -> int:
    return size_from_text(_check_digits(number, line), unit)


def _lines(text: str) -> List[str]:
    if not isinstance(text, str):
        raise CompilerOutputError("expected text, got {}".format(type(text).__name__))
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _find_version(lines: List[str], what: str) -> Tuple[str, int]:
    for number, line in enumerate(lines):
        match = _VERSION.search(line)
        if match:
            return match.group(1), number
    first = next((line.strip() for line in lines if line.strip()), "")
    raise CompilerOutputError(
        "not edgetpu_compiler {}: no 'Edge TPU Compiler version' line (first line: {!r})".format(
            what, first[:80]))


def _is_predicted(lines: List[str], version_line: int) -> bool:
    marker = PREDICTION_MARKER.split(":")[0]
    return any(line.startswith(marker) for line in lines[:version_line + 1])


def compiler_version_from_text(text: str) -> str:
    """The version from `edgetpu_compiler --version` (or any of its outputs)."""
    version, _ = _find_version(_lines(text), "output")
    return version


def parse_operator_table(lines: List[str]) -> Optional[List[OperatorRow]]:
    """Rows of the last "Operator  Count  Status" table in `lines`; None when there is none.

    Rows are read until the first line that is neither blank nor a row, so text after the
    table (shell prompts, annotations) is ignored.
    """
    rows: Optional[List[OperatorRow]] = None
    reading: Optional[List[OperatorRow]] = None  # the table being read; None outside tables
    for line in lines:
        if _TABLE_HEADER.match(line):
            rows = reading = []
            continue
        if reading is None or not line.strip():
            continue
        match = _TABLE_ROW.match(line)
        if not match:
            reading = None
            continue
        reading.append(OperatorRow(match.group(1), _integer(match.group(2), line), match.group(3)))
    return rows


def parse_compiler_stdout(text: str) -> CompileResult:
    """Parse the stdout (optionally merged with stderr) of one `edgetpu_compiler` run.

    A run that failed gives a result with `fatal_error` set to the compiler's error lines.
    Raises CompilerOutputError for text that is not compiler output or is cut short.
    """
    lines = _lines(text)
    version, version_line = _find_version(lines, "output")
    result = CompileResult(compiler_version=version, predicted=_is_predicted(lines, version_line))
    body = lines[version_line + 1:]

    compiled_at = None
    errors = []  # type: List[str]
    final_status_at, final_status = None, None
    for number, line in enumerate(body):
        match = _COMPILED.match(line)
        if match:
            if line.lstrip().startswith("Models "):
                raise CompilerOutputError(
                    "co-compiled output (several models in one run) is not supported; "
                    "compile one model per run")
            compiled_at = number
            result.compile_time_ms = _integer(match.group(1), line)
            continue
        for key, pattern in _SIZE_LINES.items():
            match = pattern.match(line)
            if match:
                setattr(result, key, _size(match.group(1), match.group(2), line))
        for key, pattern in _INT_LINES.items():
            match = pattern.match(line)
            if match:
                setattr(result, key, _integer(match.group(1), line))
        for key, pattern in _TEXT_LINES.items():
            match = pattern.match(line)
            if match:
                setattr(result, key, match.group(1))
        match = _FINAL_STATUS.match(line)
        if match:
            final_status_at, final_status = number, match.group(1)
        if _ERROR_LINE.match(line):
            errors.append(line.strip())

    failed_after_success = (final_status == "failed" and compiled_at is not None
                            and final_status_at is not None and final_status_at > compiled_at)
    if compiled_at is None or failed_after_success:
        if not errors:
            raise CompilerOutputError(
                "edgetpu_compiler output is incomplete: it has neither "
                "'Model compiled successfully' nor an error message")
        result.fatal_error = "\n".join(errors)
        return result
    total = result.total_operations
    if total is None:
        raise CompilerOutputError(
            "edgetpu_compiler output is incomplete: no 'Total number of operations' line")

    rows = parse_operator_table(body)
    result.operators = rows or []
    _fill_operation_counts(result, body, total)
    return result


def _fill_operation_counts(result: CompileResult, body: List[str], total: int) -> None:
    """Derive the Edge TPU / CPU counts the compiler leaves out when everything maps
    (`total`: the "Total number of operations" line)."""
    mapped_in_table = sum(row.count for row in result.operators if row.status == STATUS_MAPPED)
    if result.operations_on_edgetpu is None:
        partial = any("not all operations are supported" in line for line in body)
        if result.operators:
            result.operations_on_edgetpu = mapped_in_table
        elif not partial:
            result.operations_on_edgetpu = total
    if result.operations_on_cpu is None and result.operations_on_edgetpu is not None:
        result.operations_on_cpu = total - result.operations_on_edgetpu
    if result.operators:
        listed = sum(row.count for row in result.operators)
        if listed != total:
            result.notes.append(
                "operator table lists {} operations but the summary says {}".format(
                    listed, total))


def parse_operation_log(text: str) -> CompileResult:
    """Parse the `<model>_edgetpu.log` file: version, input/output paths and operator table.

    The log has no memory or size lines, so those fields stay None; the operation counts are
    derived from the table.
    """
    lines = _lines(text)
    version, version_line = _find_version(lines, "operation log")
    result = CompileResult(compiler_version=version, predicted=_is_predicted(lines, version_line))
    body = lines[version_line + 1:]
    for line in body:
        match = re.match(r"^\s*Input:\s*(\S.*?)\s*$", line)
        if match:
            result.input_model = match.group(1)
        match = re.match(r"^\s*Output:\s*(\S.*?)\s*$", line)
        if match:
            result.output_model = match.group(1)
    rows = parse_operator_table(body)
    if rows is None:
        raise CompilerOutputError(
            "edgetpu_compiler operation log has no 'Operator  Count  Status' table")
    result.operators = rows
    result.total_operations = sum(row.count for row in rows)
    result.operations_on_edgetpu = sum(row.count for row in rows if row.status == STATUS_MAPPED)
    result.operations_on_cpu = result.total_operations - result.operations_on_edgetpu
    return result
