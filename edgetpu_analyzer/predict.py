"""Predict what `edgetpu_compiler` will print for a `.tflite` model, without the compiler.

The prediction applies the compiler's published rules (tables in rules.py, evidence tags in
comments there) in the order the real compiler's output suggests (facts sheet section 5):

1. whole-model refusals: an operator code or version the compiler's built-in TFLite does not
   know ("Didn't find op for builtin opcode ..."), an unresolvable custom operator, or
   dynamic-size tensors;
2. per operator, in execution order, the first failing check wins: tensor rank (only the 3
   innermost dimensions may exceed 1, so batch must be 1) -> data types (uint8/int8, int8 only
   for runtime >= 12) -> operation supported for the target runtime -> operation version ->
   constant weights -> documented limitations;
3. partitioning: one Edge TPU subgraph (without -a); a mappable operator that reads, through
   an operator on the CPU, a tensor computed by the Edge TPU part reports "More than one
   subgraph is not supported";
4. parameter memory (memory.py): mapped operators' parameters as the Edge TPU stores them,
   cached an operator at a time into an assumed on-chip capacity (an estimate; see the notes
   in the result).

Example:
    result = predict_file("models/facenet_keras.tflite", "16.0", min_runtime_version=12)
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Set, Tuple

from tflite.utils import BUILTIN_OPCODE2NAME

from edgetpu_analyzer import rules
from edgetpu_analyzer.memory import constant_buffers, estimate_memory, parameter_blocks
from edgetpu_analyzer.operator_checks import Verdict, operator_verdict
from edgetpu_analyzer.result import (
    STATUS_MAPPED, STATUS_MORE_THAN_ONE_SUBGRAPH, CompileResult, ExecutedOperator, OperatorRow,
    format_size, group_rows)
from edgetpu_analyzer.tflite_reader import ModelInfo, OperatorInfo, read_model

PREDICTOR_NAME = "edgetpu_analyzer"
_CODES_BY_NAME = {name: code for code, name in BUILTIN_OPCODE2NAME.items()}

# Inputs that fix an output's shape; when they are computed at run time the TFLite interpreter
# marks the output dynamic, and the compiler stops with the static-size error (ge#829, ge#831;
# Conv2DTranspose / Dense-on-3-D with a dynamic batch: tf#57905, Bahar-BM/dense_3D_inputs)
# [OBS]; which operators do this is read from TFLite's kernels [INF].
SHAPE_INPUTS = {
    "RESHAPE": (1,), "TRANSPOSE_CONV": (0,), "TILE": (1,), "FILL": (0,), "BROADCAST_TO": (1,),
    "PAD": (1,), "PADV2": (1,), "MIRROR_PAD": (1,), "SLICE": (1, 2),
    "STRIDED_SLICE": (1, 2, 3), "RESIZE_BILINEAR": (1,), "RESIZE_NEAREST_NEIGHBOR": (1,),
    "SPLIT_V": (1,), "EXPAND_DIMS": (1,), "RANGE": (0, 1, 2),
}
ALWAYS_DYNAMIC_OPERATORS = ("WHERE", "UNIQUE")

# The compiler's fatal messages (facts sheet section 6) [OBS].
_DYNAMIC_ERROR = ("ERROR: Attempting to use a delegate that only supports static-sized tensors "
                  "with a graph that has dynamic-sized tensors.")
_INTERPRETER_FAILED = ("Compilation failed: Model failed in Tflite interpreter. Please ensure "
                       "model can be loaded/run in Tflite interpreter.")


def resolve_runtime(profile: rules.CompilerProfile, min_runtime_version: Optional[int]) -> int:
    """The runtime the prediction targets: -m, or the compiler's default."""
    if min_runtime_version is None:
        return profile.default_runtime
    if not rules.LOWEST_RUNTIME_VERSION <= min_runtime_version <= profile.default_runtime:
        raise ValueError(
            "--min_runtime_version {} is outside what compiler {} targets ({} to {})".format(
                min_runtime_version, profile.version, rules.LOWEST_RUNTIME_VERSION,
                profile.default_runtime))
    return min_runtime_version


# ---------------------------------------------------------------------------------------------
# 1. Whole-model refusals


def registration_error(model: ModelInfo, profile: rules.CompilerProfile) -> Optional[str]:
    """The error for the first operator code the compiler's TFLite cannot register, or None.

    TFLite registers operator codes in file order and stops at the first failure (ge#631,
    ge#845, libedgetpu#71 show one ERROR line) [OBS]. The "An older version..." sentence is
    printed by compiler 16 (same issues) [OBS]; older compilers print the short form
    (tf#43288, compiler 14.1) [OBS].
    """
    highest_code = rules.max_known_builtin_code(profile, _CODES_BY_NAME)
    for code in model.operator_codes:
        if code.name == "CUSTOM":
            continue
        if code.builtin_code > highest_code:
            first = ("ERROR: Op builtin_code out of range: {}. Are you using old TFLite binary "
                     "with newer model?".format(code.builtin_code))  # ge#862 [OBS]
        else:
            release = rules.op_version_release(code.name, code.version, code.builtin_code)
            if release is not None and release <= profile.bundled_tflite:
                continue
            first = "ERROR: Didn't find op for builtin opcode '{}' version '{}'".format(
                code.name, code.version)
            if profile.major >= 16:
                first += (". An older version of this builtin might be supported. Are you "
                          "using an old TFLite binary with a newer model?")
        return "\n".join([first, "", "ERROR: Registration failed.", "",
                          "Invalid model: {}".format(os.path.basename(model.path)),
                          "Model could not be parsed"])
    return None


def custom_operator_error(model: ModelInfo) -> Optional[str]:
    """The interpreter's error for the first custom operator it cannot resolve (jiri-kula
    README, compiler 16) [OBS]."""
    for op in model.operators:
        if op.name == "CUSTOM" and op.custom_code not in rules.KNOWN_CUSTOM_OPERATORS:
            return "\n".join([
                "ERROR: Encountered unresolved custom op: {}.".format(op.custom_code),
                "ERROR: Node number {} ({}) failed to prepare.".format(op.index, op.custom_code),
                _INTERPRETER_FAILED])
    return None


def dynamic_tensor_reasons(model: ModelInfo) -> List[str]:
    """Why the interpreter would see dynamic-size tensors (empty when all sizes are static).

    A -1 only in the batch dimension of the shape signature is not counted: Keras models
    converted with TF 2 always carry it, and the official Coral TF2 retraining tutorials
    compile such models with compiler 16 [DOC/INF].
    """
    reasons = []
    for tensor in model.tensors:
        signature = tensor.shape_signature or ()
        if any(dim < 0 for dim in signature[1:]):
            reasons.append("tensor {!r} has shape signature {}".format(
                tensor.name, list(signature)))
    for op in model.operators:
        if op.name in ALWAYS_DYNAMIC_OPERATORS:
            reasons.append("operator #{} {} has a data-dependent output size".format(
                op.index, op.name))
        for position in SHAPE_INPUTS.get(op.name, ()):
            if position < len(op.inputs) and op.inputs[position] >= 0:
                if not model.tensors[op.inputs[position]].is_constant:
                    reasons.append("operator #{} {} takes its shape from a computed tensor".format(
                        op.index, op.name))
                    break
    return reasons


def fatal_error(model: ModelInfo, profile: rules.CompilerProfile) -> Optional[str]:
    """The compiler's error text when it would refuse the model, else None."""
    error = registration_error(model, profile) or custom_operator_error(model)
    if error:
        return error
    if dynamic_tensor_reasons(model):
        return "\n".join([_DYNAMIC_ERROR, _INTERPRETER_FAILED])
    return None


# ---------------------------------------------------------------------------------------------
# 2. Per-operator checks: operator_checks.operator_verdict
# 3. Partitioning


# (status, why; "" when mapped): a Verdict once partitioning has settled every status.
Placement = Tuple[str, str]


def partition(model: ModelInfo, verdicts: List[Verdict],
              multiple_subgraphs: bool = False) -> List[Placement]:
    """Final (status, reason) per operator under the single-subgraph rule.

    Documented: the compiler makes one Edge TPU custom op (MI, quoted in ge#663) [DOC];
    ge#461: what cannot join it reports "More than one subgraph is not supported" [MAINT].
    Which operators cannot join is a matter of data flow, not of execution order: a mappable
    operator stays out only when one of its inputs comes, through an operator on the CPU, from
    the Edge TPU part, so that one custom op would have to wait for its own output. In
    clsandoval/coral_tpu `model_edgetpu.log` (compiler 16, an SSD with an FPN) the upsampling
    PACKs cut the top-down path, yet the later extra layers and the box/class heads that read
    only the backbone stay mapped (CONV_2D 58 mapped, 14 not; RESHAPE 6 mapped, 4 not) [OBS].
    A CPU operator that does not depend on the Edge TPU part (the float-input QUANTIZE) runs
    before it and cuts nothing (seed 001) [OBS]. An unmappable operator keeps its own reason
    (all logs) [OBS]; a QUANTIZE too (the YOLOv8 320x320 log of MRezqalla/GoalBuddy) [OBS].
    With -a (`multiple_subgraphs`) every mappable operator maps (ge#461 [MAINT]; R-e-d-a-X
    logs compiled with -a have no "More than one subgraph" row) [OBS].
    """
    from_edgetpu: Set[int] = set()  # tensors computed from the Edge TPU part
    cut_by: Dict[int, OperatorInfo] = {}  # such tensors passed through a CPU op: which
    final: List[Placement] = []
    for op, (status, reason) in zip(model.operators, verdicts):
        inputs = set(op.inputs)
        cutters = [cut_by[index] for index in op.inputs if index in cut_by]
        if status is None and (multiple_subgraphs or not cutters):
            final.append((STATUS_MAPPED, ""))
            from_edgetpu.update(op.outputs)
            continue
        if status is None:
            status = STATUS_MORE_THAN_ONE_SUBGRAPH
            reason = "depends on operator #{} {}, which stays on the CPU after Edge TPU " \
                "operators".format(cutters[0].index, cutters[0].name)
        final.append((status, reason))
        if cutters:
            cut_by.update((index, cutters[0]) for index in op.outputs)
        elif inputs & from_edgetpu:
            cut_by.update((index, op) for index in op.outputs)
        if inputs & from_edgetpu:
            from_edgetpu.update(op.outputs)
    return final


def count_edgetpu_subgraphs(model: ModelInfo, statuses: List[str]) -> int:
    """Edge TPU custom ops: groups of mapped operators connected by tensors (one without -a)."""
    group_of: Dict[int, int] = {}  # tensor -> group
    parent: Dict[int, int] = {}
    for op, status in zip(model.operators, statuses):
        if status != STATUS_MAPPED:
            continue
        parent[op.index] = op.index
        for tensor in op.inputs:
            if tensor in group_of:
                root, other = _find(parent, group_of[tensor]), _find(parent, op.index)
                parent[root] = other
        for tensor in op.outputs:
            group_of[tensor] = op.index
    return len({_find(parent, index) for index in parent})


def _find(parent: Dict[int, int], index: int) -> int:
    while parent[index] != index:
        parent[index] = parent[parent[index]]
        index = parent[index]
    return index


# 4. Parameter memory: memory.py


# ---------------------------------------------------------------------------------------------


def edgetpu_name(model_path: str) -> str:
    """`x.tflite` -> `x_edgetpu.tflite`, as the compiler names its output."""
    base = model_path[:-len(".tflite")] if model_path.endswith(".tflite") else model_path
    return base + "_edgetpu.tflite"


def predict(model: ModelInfo, compiler_version: str = rules.DEFAULT_COMPILER_VERSION,
            min_runtime_version: Optional[int] = None,
            display_path: Optional[str] = None,
            multiple_subgraphs: bool = False) -> CompileResult:
    """Predict the compile result of `model` for one compiler release and target runtime.

    `compiler_version` may be any well-formed version: the nearest release whose rules are
    known is imitated (rules.resolve_compiler) and the result says which. `display_path` is
    the model path as the compiler would print it (default: model.path). `multiple_subgraphs`
    is the compiler's -a. Raises ValueError for a malformed version or an impossible runtime.
    """
    profile, version_note = rules.resolve_compiler(compiler_version)
    runtime = resolve_runtime(profile, min_runtime_version)
    shown = display_path or model.path
    result = CompileResult(
        compiler_version=profile.version, predicted=True, input_model=shown,
        output_model=edgetpu_name(shown), operation_log=edgetpu_name(shown)[:-len(".tflite")]
        + ".log", input_size_bytes=model.file_size, min_runtime_version=runtime,
        requested_compiler_version=str(compiler_version).strip())
    result.notes.append(
        "Predicted by {} from the compiler's published rules for edgetpu_compiler {} with "
        "--min_runtime_version {}{}; not compiler output.".format(
            PREDICTOR_NAME, profile.version, runtime,
            " and --enable_multiple_subgraphs" if multiple_subgraphs else ""))
    if version_note:
        result.notes.append(version_note + ".")

    error = fatal_error(model, profile)
    if error is not None:
        result.fatal_error = error
        result.output_model = result.operation_log = ""
        reasons = dynamic_tensor_reasons(model)
        if reasons and error.startswith(_DYNAMIC_ERROR):
            result.notes.append("Dynamic-size tensors: " + "; ".join(reasons[:3]))
        return result

    verdicts = [operator_verdict(op, model, profile, runtime) for op in model.operators]
    final = partition(model, verdicts, multiple_subgraphs)
    _fill_operations(result, model, final)
    _fill_memory(result, profile, parameter_blocks(model, [status for status, _ in final]))
    _add_notes(result, model)
    return result


def _fill_operations(result: CompileResult, model: ModelInfo, final: List[Placement]) -> None:
    """Execution order, table and counts from the final verdicts."""
    for op, (status, reason) in zip(model.operators, final):
        result.execution_order.append(ExecutedOperator(
            index=op.index, operator=op.name, version=op.version, status=status,
            reason=reason or None,
            parameter_bytes=sum(constant_buffers(op, model).values())))
    result.operators = group_rows(
        (op.name, status) for op, (status, _) in zip(model.operators, final))
    result.total_operations = len(model.operators)
    result.operations_on_edgetpu = sum(
        1 for op in result.execution_order if op.status == STATUS_MAPPED)
    result.operations_on_cpu = result.total_operations - result.operations_on_edgetpu
    result.edgetpu_subgraphs = count_edgetpu_subgraphs(model, [status for status, _ in final])


def _fill_memory(result: CompileResult, profile: rules.CompilerProfile,
                 blocks: List[int]) -> None:
    # Nothing mapped: 0.00B three times (ge#222, ge#358) [OBS].
    used, remaining, off_chip = estimate_memory(blocks) if result.operations_on_edgetpu else (
        0, 0, 0)
    result.on_chip_memory_used_bytes = used
    result.on_chip_memory_remaining_bytes = remaining
    result.off_chip_memory_bytes = off_chip
    if profile.memory_available_line:
        result.on_chip_memory_available_bytes = used + remaining
    result.output_size_bytes = result.input_size_bytes
    low, high = rules.OBSERVED_ON_CHIP_CAPACITY_RANGE_MIB
    result.notes.append(
        "Memory lines are estimates: {} of Edge TPU parameters (weights padded as the compiler "
        "stores them), cached an operator at a time into an assumed on-chip capacity of {} "
        "(median of published outputs, which range {:.2f}-{:.2f} MiB); the rest is "
        "streamed.".format(format_size(sum(blocks)),
                           format_size(rules.ASSUMED_ON_CHIP_CAPACITY_BYTES), low, high))
    result.notes.append(
        "Output size is the input size: real compiled models differ by -1% to +30% "
        "(seed 000: 22.71MiB -> 22.43MiB; ge#60: 8.11MiB -> 9.47MiB).")


def _add_notes(result: CompileResult, model: ModelInfo) -> None:
    if any(op.status == STATUS_MORE_THAN_ONE_SUBGRAPH for op in result.execution_order):
        result.notes.append(
            "'More than one subgraph is not supported' marks mappable operators that read, "
            "through a CPU operator, a tensor computed by the Edge TPU part (data flow, as in "
            "published logs of branchy detectors); the compiler's -a would map them.")
    if model.subgraph_count > 1:
        result.notes.append(
            "The model has {} subgraphs (control flow); only the main subgraph is predicted and "
            "its control-flow operators stay on the CPU.".format(model.subgraph_count))
    result.notes.append(
        "Size limits behind 'otherwise supported' are predicted only where published logs show "
        "them (long innermost rows, large TRANSPOSEs, large constant FULLY_CONNECTED inputs); "
        "'Compilation failed due to large activation tensors' is not predicted.")


def execution_order_from_table(model: ModelInfo, rows: Iterable[OperatorRow]
                               ) -> List[ExecutedOperator]:
    """The model's operators in execution order, with the status a real compiler's table
    implies: known when every operator of that type shares one status (and the counts agree),
    None otherwise. Used to give real compile results the order predictions have."""
    statuses: Dict[str, Set[str]] = {}
    listed: Dict[str, int] = {}
    for row in rows:
        statuses.setdefault(row.operator, set()).add(row.status)
        listed[row.operator] = listed.get(row.operator, 0) + row.count
    present: Dict[str, int] = {}
    for op in model.operators:
        present[op.name] = present.get(op.name, 0) + 1
    order = []
    for op in model.operators:
        known = statuses.get(op.name, set())
        single = len(known) == 1 and listed.get(op.name) == present[op.name]
        order.append(ExecutedOperator(
            index=op.index, operator=op.name, version=op.version,
            status=next(iter(known)) if single else None,
            parameter_bytes=sum(constant_buffers(op, model).values())))
    return order


def predict_file(path: str, compiler_version: str = rules.DEFAULT_COMPILER_VERSION,
                 min_runtime_version: Optional[int] = None,
                 display_path: Optional[str] = None,
                 multiple_subgraphs: bool = False) -> CompileResult:
    """Read `path` (ModelReadError when it is not a usable .tflite) and predict its result."""
    return predict(read_model(path), compiler_version, min_runtime_version, display_path,
                   multiple_subgraphs)
