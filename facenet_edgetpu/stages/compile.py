"""Compile stage: the quantized .tflite -> a folder with the Edge TPU compile result.

When `edgetpu_compiler` is installed (params `compile.compiler`: a name on PATH or a path), the
stage runs it, parses what it printed and keeps its outputs. The compiler is x86-64 Linux only,
so elsewhere the stage predicts the result with `edgetpu_analyzer` for the compiler release in
`compile.predict_compiler_version`. Either way the output folder holds, named after the input:

- `compile_result.json`: the result structure (`"predicted": true` for a prediction);
- `compiler_stdout.txt`: what the compiler printed (stdout and stderr), or the predicted text;
- `facenet_keras_edgetpu.log`: the operation log in the compiler's `.log` layout;
- `facenet_keras_edgetpu.tflite`: the compiled model, only when the real compiler ran.

Predicted text files start with a line saying they are a prediction. The directory appears
whole or not at all; when the compiler fails (non-zero exit, timeout, "Compilation failed"),
is predicted to refuse the model, or maps less than `compile.min_mapped_fraction` of the
operations (the compiler reports partial mapping as success), the stage fails with the
reason and leaves no output behind.

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu compile --model models/facenet_keras.tflite --out models/edgetpu
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import Any, Dict, List, Optional, Sequence

from edgetpu_analyzer.compiler import (
    CompilerUnusableError, compiler_major, find_compiler, query_compiler_version,
    run_with_time_limit)
from edgetpu_analyzer.parse import CompilerOutputError, parse_compiler_stdout, parse_operation_log
from edgetpu_analyzer.predict import execution_order_from_table, predict_file
from edgetpu_analyzer.render import render_compiler_stdout, render_operation_log
from edgetpu_analyzer.result import CompileResult
from edgetpu_analyzer.tflite_reader import ModelReadError, read_model
from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, section

RESULT_FILE = "compile_result.json"
STDOUT_FILE = "compiler_stdout.txt"

SCHEMA = {
    "compiler": Field(str, low=1),
    "min_runtime_version": Field(int, low=10, high=14),
    "show_operations": Field(bool),
    "timeout_sec": Field(int, low=1),
    "predict_compiler_version": Field(str, low=1),
    "min_mapped_fraction": Field(float, low=0.0, high=1.0),
}

# `--timeout_sec` exists from compiler 16 on (facts sheet section 8); older ones reject it.
TIMEOUT_FLAG_SINCE_MAJOR = 16
# Compiler 16 stops itself after --timeout_sec; give it this long to report before killing it.
TIMEOUT_GRACE_SEC = 30

log = get_logger("compile")


class CompileStageError(PipelineError):
    """The compile stage cannot produce a trustworthy result; the message says why."""


def output_names(model_path: str) -> Dict[str, str]:
    """File names inside the output directory, derived from the input model's basename."""
    base = os.path.splitext(os.path.basename(model_path))[0]
    return {
        "result": RESULT_FILE,
        "stdout": STDOUT_FILE,
        "log": base + "_edgetpu.log",
        "model": base + "_edgetpu.tflite",
    }


def usable_compiler(compiler: str) -> Optional[str]:
    """The compiler's path and version check, with errors that say what to set; None when the
    default name is simply not installed (then the stage predicts)."""
    try:
        return find_compiler(compiler)
    except CompilerUnusableError as error:
        raise CompileStageError(_set_compiler_hint(compiler, error)) from error


def _set_compiler_hint(compiler: str, error: Exception) -> str:
    return ("params.yaml compile.compiler is {!r}, and {}. Set compile.compiler to the path of "
            "edgetpu_compiler, or to its name (edgetpu_compiler) to run it from PATH or predict "
            "its output where it is not installed.".format(compiler, error))


def compiler_command(compiler_path: str, version: str, model_name: str, min_runtime_version: int,
                     show_operations: bool, timeout_sec: int) -> List[str]:
    """The compiler command line; `--timeout_sec` only for compilers that know it."""
    command = [compiler_path, "--min_runtime_version", str(min_runtime_version)]
    if show_operations:
        command.append("--show_operations")
    if compiler_major(version) >= TIMEOUT_FLAG_SINCE_MAJOR:
        command += ["--timeout_sec", str(timeout_sec)]
    command.append(model_name)
    return command


def wall_clock_limit(version: str, timeout_sec: int) -> int:
    """How long to wait for the compiler process before killing it."""
    if compiler_major(version) >= TIMEOUT_FLAG_SINCE_MAJOR:
        return timeout_sec + TIMEOUT_GRACE_SEC
    return timeout_sec


def _failure_summary(text: str, limit: int = 12) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[-limit:]) or "(no output)"


def run_compiler(model_path: str, work_dir: str, params: Dict[str, Any],
                 compiler_path: str) -> CompileResult:
    """Compile `model_path` with the real compiler into `work_dir` (the staged output dir).

    The compiler runs in a scratch directory holding a copy of the model, so it prints and
    writes plain file names (as in the seed: "Input model: facenet_keras.tflite").
    """
    names = output_names(model_path)
    try:
        version = query_compiler_version(compiler_path)
    except CompilerUnusableError as error:
        raise CompileStageError(_set_compiler_hint(params["compiler"], error)) from error
    model_name = os.path.basename(model_path)
    command = compiler_command(compiler_path, version, model_name, params["min_runtime_version"],
                               params["show_operations"], params["timeout_sec"])
    limit = wall_clock_limit(version, params["timeout_sec"])
    scratch = tempfile.mkdtemp(prefix="edgetpu-compile-")
    try:
        shutil.copyfile(model_path, os.path.join(scratch, model_name))
        log.info("running %s", " ".join(command))
        try:
            returncode, text = run_with_time_limit(command, limit, cwd=scratch)
        except subprocess.TimeoutExpired:
            raise CompileStageError(
                "edgetpu_compiler {} did not finish within {} s and was stopped; raise "
                "compile.timeout_sec in params.yaml if the model is large".format(
                    version, limit)) from None
        except OSError as error:
            raise CompileStageError("cannot run {}: {}".format(compiler_path, error)) from error
        if returncode != 0:
            raise CompileStageError("edgetpu_compiler {} failed (exit status {}):\n{}".format(
                version, returncode, _failure_summary(text)))
        try:
            result = parse_compiler_stdout(text)
        except CompilerOutputError as error:
            raise CompileStageError("cannot read what edgetpu_compiler printed: {}\n{}".format(
                error, _failure_summary(text))) from error
        if not result.succeeded:
            raise CompileStageError("edgetpu_compiler {} failed:\n{}".format(
                version, result.fatal_error))
        result.min_runtime_version = params["min_runtime_version"]

        produced = {key: os.path.join(scratch, names[key]) for key in ("log", "model")}
        missing = [os.path.basename(path) for path in produced.values()
                   if not os.path.isfile(path)]
        if missing:
            raise CompileStageError("edgetpu_compiler reported success but did not write "
                                    "{}".format(", ".join(missing)))
        with open(produced["log"], "r", encoding="utf-8", errors="replace") as handle:
            log_text = handle.read()
        try:
            operation_log = parse_operation_log(log_text)
        except CompilerOutputError as error:
            raise CompileStageError("cannot read {}: {}".format(names["log"], error)) from error
        if not result.operators:
            # Without --show_operations the table is only in the .log file.
            result.operators = operation_log.operators
        attach_execution_order(result, model_path)
        # work_dir is already a staged directory: a plain copy cannot leave a partial result.
        shutil.copyfile(produced["model"], os.path.join(work_dir, names["model"]))
        artifacts.write_text(os.path.join(work_dir, names["log"]), log_text)
        artifacts.write_text(os.path.join(work_dir, names["stdout"]), text)
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def attach_execution_order(result: CompileResult, model_path: str) -> None:
    """Give a real result the model's operator order (statuses where the table implies them),
    so reports can draw the same operator strip as for predictions."""
    try:
        result.execution_order = execution_order_from_table(read_model(model_path),
                                                            result.operators)
    except ModelReadError as error:
        result.notes.append("Execution order unavailable: {}".format(error))


def predict_outputs(model_path: str, work_dir: str, params: Dict[str, Any]) -> CompileResult:
    """Predict the compile result and write the marked, predicted text artifacts."""
    names = output_names(model_path)
    try:
        result = predict_file(model_path, params["predict_compiler_version"],
                              params["min_runtime_version"],
                              display_path=os.path.basename(model_path))
    except (ModelReadError, ValueError) as error:
        raise CompileStageError("cannot predict the compile result: {}".format(error)) from error
    stdout_text = render_compiler_stdout(result, params["show_operations"],
                                         params["timeout_sec"])
    if not result.succeeded:
        raise CompileStageError(
            "edgetpu_compiler {} is predicted to refuse {}:\n{}".format(
                result.compiler_version, model_path, result.fatal_error))
    artifacts.write_text(os.path.join(work_dir, names["stdout"]), stdout_text)
    artifacts.write_text(os.path.join(work_dir, names["log"]), render_operation_log(result))
    return result


def check_mapped_fraction(result: CompileResult, min_mapped_fraction: float) -> None:
    """Fail when too few operations map; the compiler itself calls partial mapping success."""
    if min_mapped_fraction <= 0 or result.mapped_fraction() >= min_mapped_fraction:
        return
    on_cpu = ", ".join("{} x{} ({})".format(row.operator, row.count, row.status)
                       for row in result.cpu_rows()) or "see the operation log"
    raise CompileStageError(
        "{} of {} operations map to the Edge TPU ({:.1%}), below compile.min_mapped_fraction "
        "= {:.1%}{}. On the CPU: {}".format(
            result.operations_on_edgetpu, result.total_operations, result.mapped_fraction(),
            min_mapped_fraction, " (predicted)" if result.predicted else "", on_cpu))


def run(params: Dict[str, Any], model_path: str, output_dir: str) -> CompileResult:
    """Produce `output_dir` from `model_path`; on any failure remove it and raise."""
    try:
        if not os.path.isfile(model_path):
            raise CompileStageError("{} not found: run the quantize stage first".format(
                model_path))
        compiler_path = usable_compiler(params["compiler"])
        with artifacts.staged_dir(output_dir) as work_dir:
            if compiler_path:
                with timed(log, "compiling with {}".format(compiler_path)):
                    result = run_compiler(model_path, work_dir, params, compiler_path)
            else:
                log.info("%s not found: predicting the result of edgetpu_compiler %s",
                         params["compiler"], params["predict_compiler_version"])
                result = predict_outputs(model_path, work_dir, params)
            check_mapped_fraction(result, params["min_mapped_fraction"])
            artifacts.write_json(os.path.join(work_dir, RESULT_FILE), result.to_dict())
    except Exception:
        # A stale result from an earlier run would now describe a different model.
        artifacts.remove(output_dir)
        raise
    log.info("%s%d of %d operations on the Edge TPU, %d on the CPU -> %s",
             "predicted: " if result.predicted else "", result.operations_on_edgetpu,
             result.total_operations, result.operations_on_cpu, output_dir)
    return result


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("compile", __doc__)
    parser.add_argument("--model", required=True, help="the quantized .tflite model")
    parser.add_argument("--out", required=True, help="the folder of compile results to write")
    args = parser.parse_args(argv)
    run(section("compile", SCHEMA), args.model, args.out)


if __name__ == "__main__":
    entry.start("compile", main)
