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
3. partitioning: one Edge TPU subgraph; once an operator that depends on the Edge TPU part
   stays on the CPU, every later mappable operator reports "More than one subgraph is not
   supported";
4. parameter memory: constant bytes read by mapped operators against an assumed on-chip
   capacity (an estimate; see the notes in the result).

Example:
    result = predict_file("models/facenet_keras.tflite", "16.0", min_runtime_version=12)
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Set, Tuple

from tflite.utils import BUILTIN_OPCODE2NAME

from edgetpu_analyzer import rules
from edgetpu_analyzer.result import (
    STATUS_MAPPED, STATUS_MORE_THAN_ONE_SUBGRAPH, STATUS_OPERATION_NOT_SUPPORTED,
    STATUS_OTHERWISE_SUPPORTED, STATUS_PARAM_NOT_CONSTANT, STATUS_UNSUPPORTED_DATA_TYPE,
    STATUS_UNSUPPORTED_RANK, STATUS_VERSION_NOT_SUPPORTED, CompileResult, ExecutedOperator,
    format_size, group_rows)
from edgetpu_analyzer.tflite_reader import ModelInfo, OperatorInfo, TensorInfo, read_model

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
# 2. Per-operator checks

Verdict = Tuple[Optional[str], str]   # (status, or None when the operator can be mapped; why)


def _describe(tensor: TensorInfo) -> str:
    return "{!r} {} {}".format(tensor.name, tensor.dtype, list(tensor.shape))


def _uses_outer_dimensions(shape: Tuple[int, ...]) -> bool:
    """True when a dimension outside the 3 innermost is larger than 1 (MI requirement 4)."""
    return len(shape) > 3 and any(dim > 1 for dim in shape[:-3])


def _effectively_1d(shape: Tuple[int, ...]) -> bool:
    return all(dim == 1 for dim in shape[:-1])


def _tensors(model: ModelInfo, indices) -> List[TensorInfo]:
    return [model.tensors[index] for index in indices if index >= 0]


def operator_verdict(op: OperatorInfo, model: ModelInfo, profile: rules.CompilerProfile,
                     runtime: int) -> Verdict:
    """The operator's own status, before partitioning (None = mappable)."""
    inputs = _tensors(model, op.inputs)
    activations = [t for t in inputs if not t.is_constant] + _tensors(model, op.outputs)
    constants = [t for t in inputs if t.is_constant]

    # Rank before data type: fp16 DEQUANTIZE of 4-D weights gets the rank status
    # (MaxwellHogan yolov5n-fp16 log) [OBS]. Batch > 1 is caught here too (ge#30) [OBS].
    for tensor in activations:
        if _uses_outer_dimensions(tensor.shape):
            return STATUS_UNSUPPORTED_RANK, "tensor {} has a dimension > 1 outside the 3 " \
                "innermost".format(_describe(tensor))

    # A float -> 8-bit QUANTIZE at the model input stays on the CPU with the generic
    # limitation status (seed 001, nrf20 README, ge#342) [OBS].
    if op.name == "QUANTIZE" and inputs and inputs[0].dtype in ("FLOAT32", "FLOAT16") and all(
            t.dtype in rules.EDGETPU_TENSOR_TYPES for t in _tensors(model, op.outputs)):
        return STATUS_OTHERWISE_SUPPORTED, "quantizes a float model input; runs on the CPU"
    for tensor in activations:
        if tensor.dtype not in rules.EDGETPU_TENSOR_TYPES:
            return STATUS_UNSUPPORTED_DATA_TYPE, "tensor {} is not uint8/int8".format(
                _describe(tensor))
    for tensor in constants:
        if tensor.dtype not in rules.CONSTANT_PARAMETER_TYPES:
            return STATUS_UNSUPPORTED_DATA_TYPE, "constant {} is not an 8-bit or integer " \
                "parameter".format(_describe(tensor))
    if runtime < rules.INT8_MIN_RUNTIME:
        for tensor in activations + constants:
            if tensor.dtype == "INT8":
                return STATUS_UNSUPPORTED_DATA_TYPE, "int8 tensor {} needs runtime {} or " \
                    "later (targeting {})".format(_describe(tensor), rules.INT8_MIN_RUNTIME,
                                                  runtime)

    if op.name == "CUSTOM":
        return STATUS_OPERATION_NOT_SUPPORTED, "custom operator {}".format(op.custom_code)
    lowest_runtime = rules.SUPPORTED_OPERATIONS.get(op.name)
    if lowest_runtime is None:
        return STATUS_OPERATION_NOT_SUPPORTED, "{} is not an Edge TPU operation".format(op.name)
    if runtime < lowest_runtime:
        return STATUS_OPERATION_NOT_SUPPORTED, "{} needs runtime {} or later (targeting " \
            "{})".format(op.name, lowest_runtime, runtime)

    highest_version = rules.MAPPER_VERSION_LIMITS.get(profile.major, {}).get(op.name)
    if highest_version is not None and op.version > highest_version:
        return STATUS_VERSION_NOT_SUPPORTED, "{} version {} (compiler {} maps up to {})".format(
            op.name, op.version, profile.version, highest_version)

    if op.name in rules.WEIGHTED_OPERATORS:
        weights = op.inputs[1] if len(op.inputs) > 1 else -1
        if weights < 0 or not model.tensors[weights].is_constant:
            return STATUS_PARAM_NOT_CONSTANT, "weights of {} are computed at run time".format(
                op.name)

    limitation = _limitation(op, model, profile, runtime)
    if limitation is not None:
        return limitation
    return None, ""


def _normalized_axes(values: List[int], rank: int) -> Set[int]:
    return {value + rank if value < 0 else value for value in values}


def _limitation(op: OperatorInfo, model: ModelInfo, profile: rules.CompilerProfile,
                runtime: int) -> Optional[Verdict]:
    """Documented per-operation limits (MI table, facts sheet section 2)."""
    options = op.options
    name = op.name
    inputs = op.inputs
    first_shape = model.tensors[inputs[0]].shape if inputs and inputs[0] >= 0 else ()
    rank = len(first_shape)
    otherwise = STATUS_OTHERWISE_SUPPORTED

    if name in rules.NO_FUSED_ACTIVATION and options.get("fused_activation", 0) != 0:
        return otherwise, "{} with a fused activation".format(name)  # MI, C
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dilation = (options.get("dilation_h", 1), options.get("dilation_w", 1))
        if dilation[0] != dilation[1]:
            return otherwise, "dilation differs in x and y {}".format(dilation)  # MI, R
        if name == "DEPTHWISE_CONV_2D" and runtime <= 12 and max(dilation) > 1:
            return otherwise, "dilated depthwise convolution needs runtime 13"  # MI, R
    if name == "FULLY_CONNECTED":
        if options.get("weights_format", 0) != 0:
            return otherwise, "non-default weights format"  # MI, C
        output = model.tensors[op.outputs[0]].shape if op.outputs else ()
        if not _effectively_1d(output):
            return rules.two_d_output_status(profile), "output {} is not 1-D".format(
                list(output))  # MI, C; ge#27
    if name == "SOFTMAX":
        if not _effectively_1d(first_shape):
            return rules.two_d_output_status(profile), "input {} is not 1-D".format(
                list(first_shape))  # MI, C
        if first_shape and first_shape[-1] > rules.SOFTMAX_MAX_ELEMENTS:
            return otherwise, "more than {} elements".format(rules.SOFTMAX_MAX_ELEMENTS)
    if name == "CONCATENATION":
        constant_inputs = [i for i in inputs if i >= 0 and model.tensors[i].is_constant]
        if constant_inputs:
            # Only 2 inputs, and the constant must be all zeros (zero padding) (MI, C).
            values = model.constant_array(constant_inputs[0])
            zero = model.tensors[constant_inputs[0]].zero_point
            if len(inputs) != 2 or values is None or any(int(v) != zero for v in values):
                return otherwise, "constant input that is not a zero pad of 2 inputs"
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = model.constant_ints(inputs[1]) if len(inputs) > 1 else None
        if axes is None:
            return otherwise, "reduction axes are not constant"
        axes_set = _normalized_axes(axes, rank)
        if name == "MEAN" and runtime <= 12 and rank >= 3:
            if not axes_set <= {rank - 3, rank - 2}:
                return otherwise, "MEAN over axes {} (runtime <= 12: x/y only)".format(
                    sorted(axes_set))  # MI, C
        if rank == 4 and 0 in axes_set:
            return otherwise, "{} over the batch dimension".format(name)  # MI, R
    if name == "PAD":
        paddings = model.constant_ints(inputs[1]) if len(inputs) > 1 else None
        if paddings is None:
            return otherwise, "paddings are not constant"
        padded = {dim for dim in range(len(paddings) // 2)
                  if paddings[2 * dim] or paddings[2 * dim + 1]}
        if runtime <= 12 and rank >= 3 and not padded <= {rank - 3, rank - 2}:
            return otherwise, "PAD along dimensions {} (runtime <= 12: x/y only)".format(
                sorted(padded))  # MI, C
        if rank == 4 and 0 in padded:
            return otherwise, "PAD of the batch dimension"  # MI, R
    if name == "SPLIT":
        axis = model.constant_ints(inputs[0]) if inputs else None
        shape = model.tensors[inputs[1]].shape if len(inputs) > 1 else ()
        if axis and len(shape) == 4 and _normalized_axes(axis, 4) == {0}:
            return otherwise, "SPLIT along the batch dimension"  # MI, R
    if name == "STRIDED_SLICE":
        strides = model.constant_ints(inputs[3]) if len(inputs) > 3 else None
        if strides is None or any(stride != 1 for stride in strides):
            return otherwise, "strides {} are not all 1".format(strides)  # MI, C
        if options.get("ellipsis_mask", 0) or options.get("new_axis_mask", 0):
            return otherwise, "ellipsis or new-axis mask"  # MI, C
    if name == "SQUEEZE" and runtime <= 12 and op.outputs:
        output = model.tensors[op.outputs[0]].shape

        def strip_leading_ones(shape):
            shape = list(shape)
            while shape and shape[0] == 1:
                shape.pop(0)
            return shape

        if strip_leading_ones(first_shape) != strip_leading_ones(output):
            return otherwise, "SQUEEZE needing a relayout (runtime <= 12)"  # MI, C
    if name == "PRELU":
        alpha = inputs[1] if len(inputs) > 1 else -1
        if alpha < 0 or not model.tensors[alpha].is_constant:
            return STATUS_PARAM_NOT_CONSTANT, "PRELU alpha is computed at run time"
        if not _effectively_1d(model.tensors[alpha].shape):
            return otherwise, "PRELU alpha is not 1-D"  # ge#460
    return None


# ---------------------------------------------------------------------------------------------
# 3. Partitioning


def partition(model: ModelInfo, verdicts: List[Verdict]) -> List[Verdict]:
    """Final (status, reason) per operator under the single-subgraph rule.

    Documented: from the first unsupported operator onward everything runs on the CPU (MI,
    quoted in ge#663) [DOC]; ge#461: ops after it "(except quantize)" report "More than one
    subgraph is not supported" [MAINT]; an unmappable op keeps its own reason (all logs) [OBS].
    A CPU operator that does not depend on the Edge TPU part (the float-input QUANTIZE) runs
    before it and does not cut it (seed 001: QUANTIZE on CPU, everything after mapped) [OBS].
    """
    downstream_of_edgetpu = set()  # type: Set[int]
    cut_by = None  # type: Optional[OperatorInfo]
    final = []  # type: List[Verdict]
    for op, (status, reason) in zip(model.operators, verdicts):
        depends_on_edgetpu = any(index in downstream_of_edgetpu for index in op.inputs)
        if status is None:
            if cut_by is None:
                final.append((STATUS_MAPPED, ""))
            else:
                final.append((STATUS_MORE_THAN_ONE_SUBGRAPH,
                              "runs after operator #{} {}, which stays on the CPU".format(
                                  cut_by.index, cut_by.name)))
            downstream_of_edgetpu.update(op.outputs)
            continue
        final.append((status, reason))
        if depends_on_edgetpu:
            downstream_of_edgetpu.update(op.outputs)
            if cut_by is None:
                cut_by = op
    return final


# ---------------------------------------------------------------------------------------------
# 4. Parameter memory


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def estimate_memory(parameter_bytes: int) -> Tuple[int, int, int]:
    """(on-chip used, on-chip remaining, off-chip) bytes for this many mapped parameter bytes."""
    if parameter_bytes <= 0:
        return 0, 0, 0   # nothing mapped: the compiler prints 0.00B three times (ge#222)
    capacity = rules.ASSUMED_ON_CHIP_CAPACITY_BYTES
    granule = rules.ON_CHIP_GRANULARITY_BYTES
    if parameter_bytes <= capacity:
        used = min(_round_up(parameter_bytes, granule), capacity)
        return used, capacity - used, 0
    used = capacity // granule * granule
    return used, capacity - used, parameter_bytes - used


def _parameter_bytes(op: OperatorInfo, model: ModelInfo) -> Dict[int, int]:
    """Constant bytes the operator reads, keyed by buffer (shared buffers count once)."""
    return {model.tensors[i].buffer_index: model.tensors[i].constant_bytes
            for i in op.inputs if i >= 0 and model.tensors[i].is_constant}


# ---------------------------------------------------------------------------------------------


def edgetpu_name(model_path: str) -> str:
    """`x.tflite` -> `x_edgetpu.tflite`, as the compiler names its output."""
    base = model_path[:-len(".tflite")] if model_path.endswith(".tflite") else model_path
    return base + "_edgetpu.tflite"


def predict(model: ModelInfo, compiler_version: str = rules.DEFAULT_COMPILER_VERSION,
            min_runtime_version: Optional[int] = None,
            display_path: Optional[str] = None) -> CompileResult:
    """Predict the compile result of `model` for one compiler release and target runtime.

    `display_path` is the model path as the compiler would print it (default: model.path).
    Raises ValueError for an unknown compiler version or an impossible runtime.
    """
    profile = rules.compiler_profile(compiler_version)
    runtime = resolve_runtime(profile, min_runtime_version)
    shown = display_path or model.path
    result = CompileResult(
        compiler_version=profile.version, predicted=True, input_model=shown,
        output_model=edgetpu_name(shown), operation_log=edgetpu_name(shown)[:-len(".tflite")]
        + ".log", input_size_bytes=model.file_size, min_runtime_version=runtime)
    result.notes.append(
        "Predicted by {} from the compiler's published rules for edgetpu_compiler {} with "
        "--min_runtime_version {}; not compiler output.".format(
            PREDICTOR_NAME, profile.version, runtime))

    error = fatal_error(model, profile)
    if error is not None:
        result.fatal_error = error
        result.output_model = result.operation_log = ""
        reasons = dynamic_tensor_reasons(model)
        if reasons and error.startswith(_DYNAMIC_ERROR):
            result.notes.append("Dynamic-size tensors: " + "; ".join(reasons[:3]))
        return result

    verdicts = [operator_verdict(op, model, profile, runtime) for op in model.operators]
    final = partition(model, verdicts)
    mapped_buffers = {}  # type: Dict[int, int]
    for op, (status, reason) in zip(model.operators, final):
        parameters = _parameter_bytes(op, model)
        if status == STATUS_MAPPED:
            mapped_buffers.update(parameters)
        result.execution_order.append(ExecutedOperator(
            index=op.index, operator=op.name, version=op.version, status=status,
            reason=reason or None, parameter_bytes=sum(parameters.values())))
    result.operators = group_rows((op.operator, op.status) for op in result.execution_order)

    result.total_operations = len(model.operators)
    result.operations_on_edgetpu = sum(
        1 for op in result.execution_order if op.status == STATUS_MAPPED)
    result.operations_on_cpu = result.total_operations - result.operations_on_edgetpu
    result.edgetpu_subgraphs = 1 if result.operations_on_edgetpu else 0

    parameter_bytes = sum(mapped_buffers.values())
    used, remaining, off_chip = estimate_memory(parameter_bytes)
    result.on_chip_memory_used_bytes = used
    result.on_chip_memory_remaining_bytes = remaining
    result.off_chip_memory_bytes = off_chip
    if profile.memory_available_line:
        result.on_chip_memory_available_bytes = used + remaining
    result.output_size_bytes = model.file_size
    low, high = rules.OBSERVED_ON_CHIP_CAPACITY_RANGE_MIB
    result.notes.append(
        "Memory lines are estimates: {} of constant parameters read by mapped operators, split "
        "against an assumed on-chip capacity of {} (median of 11 published compiler outputs; "
        "they range {:.2f}-{:.2f} MiB). Expect the on-chip and off-chip figures to be off by "
        "about 1 MiB, more when the compiler pads weights.".format(
            format_size(parameter_bytes), format_size(rules.ASSUMED_ON_CHIP_CAPACITY_BYTES),
            low, high))
    result.notes.append(
        "Output size is the input size: real compiled models differ by -1% to +30% "
        "(seed 000: 22.71MiB -> 22.43MiB; ge#60: 8.11MiB -> 9.47MiB).")
    if result.operations_on_cpu and any(
            op.status == STATUS_MORE_THAN_ONE_SUBGRAPH for op in result.execution_order):
        result.notes.append(
            "'More than one subgraph is not supported' follows the documented rule (every "
            "mappable operator after the first CPU operator that depends on the Edge TPU part); "
            "for branchy graphs the compiler may map independent branches (unverified).")
    if model.subgraph_count > 1:
        result.notes.append(
            "The model has {} subgraphs (control flow); only the main subgraph is predicted and "
            "its control-flow operators stay on the CPU.".format(model.subgraph_count))
    result.notes.append(
        "Not predicted: size limits behind 'otherwise supported' for very large tensors, and "
        "'Compilation failed due to large activation tensors'.")
    return result


def execution_order_from_table(model: ModelInfo, rows) -> List[ExecutedOperator]:
    """The model's operators in execution order, with the status a real compiler's table
    implies: known when every operator of that type shares one status (and the counts agree),
    None otherwise. Used to give real compile results the order predictions have."""
    statuses = {}  # type: Dict[str, Set[str]]
    listed = {}  # type: Dict[str, int]
    for row in rows:
        statuses.setdefault(row.operator, set()).add(row.status)
        listed[row.operator] = listed.get(row.operator, 0) + row.count
    present = {}  # type: Dict[str, int]
    for op in model.operators:
        present[op.name] = present.get(op.name, 0) + 1
    order = []
    for op in model.operators:
        known = statuses.get(op.name, set())
        single = len(known) == 1 and listed.get(op.name) == present[op.name]
        order.append(ExecutedOperator(
            index=op.index, operator=op.name, version=op.version,
            status=next(iter(known)) if single else None,
            parameter_bytes=sum(_parameter_bytes(op, model).values())))
    return order


def predict_file(path: str, compiler_version: str = rules.DEFAULT_COMPILER_VERSION,
                 min_runtime_version: Optional[int] = None,
                 display_path: Optional[str] = None) -> CompileResult:
    """Read `path` (ModelReadError when it is not a usable .tflite) and predict its result."""
    return predict(read_model(path), compiler_version, min_runtime_version, display_path)
