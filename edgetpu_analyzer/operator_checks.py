"""The compiler's per-operator checks: which status one operator gets before partitioning.

`operator_verdict` runs CHECKS in order and the first that fails decides the status (one row
per operator; the order follows real compiler logs, facts sheet section 5):

1. rank: a dimension > 1 outside the 3 innermost (batch > 1 included) of a data tensor;
2. the float -> 8-bit QUANTIZE that feeds the Edge TPU part stays on the CPU;
3. data types: data tensors must be uint8/int8, constant side inputs 8-bit or integer;
4. int8 needs runtime 12;
5. the operation is an Edge TPU operation for the target runtime;
6. the mapper accepts the operator version;
7. weights are constant;
8. activation sizes (tensors without a static shape, very long innermost rows);
9. documented per-operation limitations (LIMITATIONS, a table by operator name).

Evidence for each constant is in rules.py.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from edgetpu_analyzer import rules
from edgetpu_analyzer.result import (
    STATUS_OPERATION_NOT_SUPPORTED, STATUS_OTHERWISE_SUPPORTED, STATUS_PARAM_NOT_CONSTANT,
    STATUS_UNSUPPORTED_DATA_TYPE, STATUS_UNSUPPORTED_RANK, STATUS_VERSION_NOT_SUPPORTED)
from edgetpu_analyzer.tflite_reader import ModelInfo, OperatorInfo, TensorInfo

Verdict = Tuple[Optional[str], str]   # (status, or None when the operator can be mapped; why)
Check = Callable[["OperatorContext"], Optional[Verdict]]
MAPPABLE: Verdict = (None, "")


class OperatorContext:
    """One operator with its tensors, the compiler profile and the target runtime."""

    def __init__(self, op: OperatorInfo, model: ModelInfo, profile: rules.CompilerProfile,
                 runtime: int) -> None:
        self.op = op
        self.model = model
        self.profile = profile
        self.runtime = runtime
        self.inputs = [model.tensors[i] if i >= 0 else None for i in op.inputs]
        self.outputs = [model.tensors[i] for i in op.outputs]

    def input(self, position: int) -> Optional[TensorInfo]:
        return self.inputs[position] if position < len(self.inputs) else None

    def data_tensors(self) -> List[TensorInfo]:
        """Outputs and computed inputs, leaving out parameter operands (filters, biases) and
        index operands, which the compiler does not hold to the activation rules."""
        skipped = set(rules.PARAMETER_OPERANDS.get(self.op.name, ())) | set(
            rules.INDEX_OPERANDS.get(self.op.name, ()))
        computed = [tensor for position, tensor in enumerate(self.inputs)
                    if tensor is not None and not tensor.is_constant and position not in skipped]
        return computed + self.outputs

    def constants(self) -> List[TensorInfo]:
        return [tensor for tensor in self.inputs if tensor is not None and tensor.is_constant]

    def constant_ints(self, position: int) -> Optional[List[int]]:
        index = self.op.inputs[position] if position < len(self.op.inputs) else -1
        return self.model.constant_ints(index) if index >= 0 else None


def describe(tensor: TensorInfo) -> str:
    return "{!r} {} {}".format(tensor.name, tensor.dtype, list(tensor.shape))


def uses_outer_dimensions(shape: Tuple[int, ...]) -> bool:
    """True when a dimension outside the 3 innermost is larger than 1 (MI requirement 4)."""
    return len(shape) > 3 and any(dim > 1 for dim in shape[:-3])


def effectively_1d(shape: Tuple[int, ...]) -> bool:
    return all(dim == 1 for dim in shape[:-1])


def normalized_axes(values: List[int], rank: int) -> Set[int]:
    return {value + rank if value < 0 else value for value in values}


# --- checks 1-8 -----------------------------------------------------------------------------

def check_rank(ctx: OperatorContext) -> Optional[Verdict]:
    # Before data types: fp16 DEQUANTIZE of 4-D weights gets the rank status while the
    # convolutions reading them get the data-type status (MaxwellHogan yolov5n-fp16 log) [OBS].
    for tensor in ctx.data_tensors():
        if uses_outer_dimensions(tensor.shape):
            return STATUS_UNSUPPORTED_RANK, "tensor {} has a dimension > 1 outside the 3 " \
                "innermost".format(describe(tensor))
    return None


def check_float_input_quantize(ctx: OperatorContext) -> Optional[Verdict]:
    first = ctx.input(0)
    if ctx.op.name == "QUANTIZE" and first is not None and first.dtype in (
            "FLOAT32", "FLOAT16") and all(
                t.dtype in rules.EDGETPU_TENSOR_TYPES for t in ctx.outputs):
        return STATUS_OTHERWISE_SUPPORTED, "quantizes a float tensor; runs on the CPU"
    return None


def check_data_types(ctx: OperatorContext) -> Optional[Verdict]:
    for tensor in ctx.data_tensors():
        if tensor.dtype not in rules.EDGETPU_TENSOR_TYPES:
            return STATUS_UNSUPPORTED_DATA_TYPE, "tensor {} is not uint8/int8".format(
                describe(tensor))
    for tensor in ctx.constants():
        if tensor.dtype not in rules.CONSTANT_PARAMETER_TYPES:
            return STATUS_UNSUPPORTED_DATA_TYPE, "constant {} is not an 8-bit or integer " \
                "parameter".format(describe(tensor))
    return None


def check_int8_runtime(ctx: OperatorContext) -> Optional[Verdict]:
    if ctx.runtime < rules.INT8_MIN_RUNTIME:
        for tensor in ctx.data_tensors() + ctx.constants():
            if tensor.dtype == "INT8":
                return STATUS_UNSUPPORTED_DATA_TYPE, "int8 tensor {} needs runtime {} or " \
                    "later (targeting {})".format(describe(tensor), rules.INT8_MIN_RUNTIME,
                                                  ctx.runtime)
    return None


def check_operation_supported(ctx: OperatorContext) -> Optional[Verdict]:
    name = ctx.op.name
    if name == "CUSTOM":
        return STATUS_OPERATION_NOT_SUPPORTED, "custom operator {}".format(ctx.op.custom_code)
    lowest_runtime = rules.SUPPORTED_OPERATIONS.get(name)
    if lowest_runtime is None:
        return STATUS_OPERATION_NOT_SUPPORTED, "{} is not an Edge TPU operation".format(name)
    if ctx.runtime < lowest_runtime:
        return STATUS_OPERATION_NOT_SUPPORTED, "{} needs runtime {} or later (targeting " \
            "{})".format(name, lowest_runtime, ctx.runtime)
    return None


def check_version(ctx: OperatorContext) -> Optional[Verdict]:
    highest = rules.MAPPER_VERSION_LIMITS.get(ctx.profile.major, {}).get(ctx.op.name)
    if highest is not None and ctx.op.version > highest:
        return STATUS_VERSION_NOT_SUPPORTED, "{} version {} (compiler {} maps up to {})".format(
            ctx.op.name, ctx.op.version, ctx.profile.version, highest)
    return None


def check_constant_weights(ctx: OperatorContext) -> Optional[Verdict]:
    if ctx.op.name not in rules.WEIGHTED_OPERATORS:
        return None
    weights, data = ctx.input(1), ctx.input(0)
    if weights is not None and weights.is_constant:
        return None
    if ctx.op.name == "FULLY_CONNECTED" and data is not None and data.is_constant:
        # A constant matrix times a computed one is mapped as the transposed product.
        return None
    return STATUS_PARAM_NOT_CONSTANT, "weights of {} are computed at run time".format(
        ctx.op.name)


def check_activation_sizes(ctx: OperatorContext) -> Optional[Verdict]:
    for tensor in ctx.data_tensors():
        if not tensor.shape:
            # The outputs of TFLite_Detection_PostProcess have no static shape; the 8 QUANTIZE
            # reading them report this status, not "More than one subgraph" (clsandoval/
            # coral_tpu SSD log, compiler 16) [OBS].
            return OTHERWISE, "tensor {} has no static shape".format(describe(tensor))
        row = tensor.shape[-1] * (tensor.shape[-2] if len(tensor.shape) > 1 else 1)
        if row > rules.ACTIVATION_ROW_MAX_ELEMENTS:
            return OTHERWISE, "tensor {} holds {} elements in its two innermost dimensions " \
                "(limit about {})".format(describe(tensor), row,
                                          rules.ACTIVATION_ROW_MAX_ELEMENTS)
    return None


def check_limitations(ctx: OperatorContext) -> Optional[Verdict]:
    limitation = LIMITATIONS.get(ctx.op.name)
    return limitation(ctx) if limitation else None


CHECKS: Tuple[Check, ...] = (
    check_rank, check_float_input_quantize, check_data_types, check_int8_runtime,
    check_operation_supported, check_version, check_constant_weights, check_activation_sizes,
    check_limitations)


def operator_verdict(op: OperatorInfo, model: ModelInfo, profile: rules.CompilerProfile,
                     runtime: int) -> Verdict:
    """The operator's own status, before partitioning (None = mappable)."""
    ctx = OperatorContext(op, model, profile, runtime)
    for check in CHECKS:
        verdict = check(ctx)
        if verdict is not None:
            return verdict
    return MAPPABLE


# --- 9. documented limitations, by operator -------------------------------------------------

OTHERWISE = STATUS_OTHERWISE_SUPPORTED


def _fused_activation(ctx: OperatorContext) -> Optional[Verdict]:
    if ctx.op.options.get("fused_activation", 0) != 0:
        return OTHERWISE, "{} with a fused activation".format(ctx.op.name)  # MI, C
    return None


def _convolution(ctx: OperatorContext) -> Optional[Verdict]:
    dilation = (ctx.op.options.get("dilation_h", 1), ctx.op.options.get("dilation_w", 1))
    weights = ctx.input(1)
    kernel = weights.shape[1:3] if weights is not None and len(weights.shape) == 4 else (2, 2)
    # Only dimensions the kernel spans count: compiler 16 maps 3x1 convolutions with dilation
    # (2, 1) and (4, 1) (fredriktegnell/edgetpu-tcn `quantized_model_edgetpu.log`) [OBS].
    spanned = {factor for factor, size in zip(dilation, kernel) if size > 1}
    if len(spanned) > 1:
        return OTHERWISE, "dilation differs in x and y {}".format(dilation)  # MI, R
    if ctx.op.name == "DEPTHWISE_CONV_2D" and ctx.runtime <= 12 and max(dilation) > 1:
        return OTHERWISE, "dilated depthwise convolution needs runtime 13"  # MI, R
    return None


def _fully_connected(ctx: OperatorContext) -> Optional[Verdict]:
    if ctx.op.options.get("weights_format", 0) != 0:
        return OTHERWISE, "non-default weights format"  # MI, C
    data = ctx.input(0)
    if data is not None and data.is_constant and \
            data.constant_bytes > rules.FC_CONSTANT_INPUT_MAX_BYTES:
        return OTHERWISE, "constant input matrix of {} bytes".format(data.constant_bytes)
    output = ctx.outputs[0].shape if ctx.outputs else ()
    transposed_product = data is not None and data.is_constant
    if not effectively_1d(output) and not (
            transposed_product and rules.maps_batched_rows(ctx.profile)):
        return rules.two_d_output_status(ctx.profile), "output {} is not 1-D".format(
            list(output))  # MI, C; ge#27
    return None


def _softmax(ctx: OperatorContext) -> Optional[Verdict]:
    first = ctx.input(0)
    shape = first.shape if first is not None else ()
    if not effectively_1d(shape) and not rules.maps_batched_rows(ctx.profile):
        return rules.two_d_output_status(ctx.profile), "input {} is not 1-D".format(
            list(shape))  # MI, C
    if shape and shape[-1] > rules.SOFTMAX_MAX_ELEMENTS:
        return OTHERWISE, "more than {} elements".format(rules.SOFTMAX_MAX_ELEMENTS)
    return None


def _concatenation(ctx: OperatorContext) -> Optional[Verdict]:
    fused = _fused_activation(ctx)
    if fused:
        return fused
    constant_inputs = [i for i in ctx.op.inputs if i >= 0 and ctx.model.tensors[i].is_constant]
    if constant_inputs:
        # Only 2 inputs, and the constant must be all zeros (zero padding) (MI, C).
        values = ctx.model.constant_array(constant_inputs[0])
        zero = ctx.model.tensors[constant_inputs[0]].zero_point
        if len(ctx.op.inputs) != 2 or values is None or any(int(v) != zero for v in values):
            return OTHERWISE, "constant input that is not a zero pad of 2 inputs"
    return None


def _reduction(ctx: OperatorContext) -> Optional[Verdict]:
    first = ctx.input(0)
    rank = len(first.shape) if first is not None else 0
    axes = ctx.constant_ints(1)
    if axes is None:
        return OTHERWISE, "reduction axes are not constant"
    axes_set = normalized_axes(axes, rank)
    if ctx.op.name == "MEAN" and ctx.runtime <= 12 and rank >= 3:
        if not axes_set <= {rank - 3, rank - 2}:
            return OTHERWISE, "MEAN over axes {} (runtime <= 12: x/y only)".format(
                sorted(axes_set))  # MI, C
    if rank == 4 and 0 in axes_set:
        return OTHERWISE, "{} over the batch dimension".format(ctx.op.name)  # MI, R
    return None


def _pad(ctx: OperatorContext) -> Optional[Verdict]:
    first = ctx.input(0)
    rank = len(first.shape) if first is not None else 0
    paddings = ctx.constant_ints(1)
    if paddings is None:
        return OTHERWISE, "paddings are not constant"
    padded = {dim for dim in range(len(paddings) // 2)
              if paddings[2 * dim] or paddings[2 * dim + 1]}
    if ctx.runtime <= 12 and rank >= 3 and not padded <= {rank - 3, rank - 2}:
        return OTHERWISE, "PAD along dimensions {} (runtime <= 12: x/y only)".format(
            sorted(padded))  # MI, C
    if rank == 4 and 0 in padded:
        return OTHERWISE, "PAD of the batch dimension"  # MI, R
    return None


def _transpose(ctx: OperatorContext) -> Optional[Verdict]:
    first = ctx.input(0)
    elements = 1
    for dim in first.shape if first is not None else ():
        elements *= dim
    if elements > rules.TRANSPOSE_MAX_ELEMENTS:
        return OTHERWISE, "TRANSPOSE of {} elements (limit about {})".format(
            elements, rules.TRANSPOSE_MAX_ELEMENTS)
    return None


def _split(ctx: OperatorContext) -> Optional[Verdict]:
    axis = ctx.constant_ints(0)
    data = ctx.input(1)
    if axis and data is not None and normalized_axes(axis, len(data.shape)) == {0}:
        return rules.SPLIT_OUTERMOST_STATUS, "SPLIT along the outermost dimension"
    return None


def _strided_slice(ctx: OperatorContext) -> Optional[Verdict]:
    strides = ctx.constant_ints(3)
    if strides is None or any(stride != 1 for stride in strides):
        return OTHERWISE, "strides {} are not all 1".format(strides)  # MI, C
    if ctx.op.options.get("ellipsis_mask", 0) or ctx.op.options.get("new_axis_mask", 0):
        return OTHERWISE, "ellipsis or new-axis mask"  # MI, C
    return None


def _squeeze(ctx: OperatorContext) -> Optional[Verdict]:
    first = ctx.input(0)
    if ctx.runtime > 12 or first is None or not ctx.outputs:
        return None

    def strip_leading_ones(shape: Sequence[int]) -> List[int]:
        shape = list(shape)
        while shape and shape[0] == 1:
            shape.pop(0)
        return shape

    if strip_leading_ones(first.shape) != strip_leading_ones(ctx.outputs[0].shape):
        return OTHERWISE, "SQUEEZE needing a relayout (runtime <= 12)"  # MI, C
    return None


def _prelu(ctx: OperatorContext) -> Optional[Verdict]:
    alpha = ctx.input(1)
    if alpha is None or not alpha.is_constant:
        return STATUS_PARAM_NOT_CONSTANT, "PRELU alpha is computed at run time"
    if not effectively_1d(alpha.shape):
        return OTHERWISE, "PRELU alpha is not 1-D"  # ge#460
    return None


LIMITATIONS: Dict[str, Check] = {
    "AVERAGE_POOL_2D": _fused_activation,
    "MAX_POOL_2D": _fused_activation,
    "CONCATENATION": _concatenation,
    "CONV_2D": _convolution,
    "DEPTHWISE_CONV_2D": _convolution,
    "FULLY_CONNECTED": _fully_connected,
    "SOFTMAX": _softmax,
    "MEAN": _reduction,
    "SUM": _reduction,
    "REDUCE_MAX": _reduction,
    "REDUCE_MIN": _reduction,
    "PAD": _pad,
    "SPLIT": _split,
    "STRIDED_SLICE": _strided_slice,
    "TRANSPOSE": _transpose,
    "SQUEEZE": _squeeze,
    "PRELU": _prelu,
}
