"""Estimate the compiler's parameter-memory lines: on-chip used, remaining, off-chip streamed.

The compiler caches the parameters of Edge TPU operators in on-chip SRAM and streams the rest
from the host on every inference. The estimate has two parts (evidence in rules.py):

1. the bytes each mapped operator's parameters take on the Edge TPU: weight matrices are
   stored with their inner (input) dimension padded to a multiple of 64 and with 16 bytes per
   output channel (bias and requantization data); other constants as they are;
2. their placement, a whole operator at a time in execution order, into an assumed on-chip
   capacity: an operator that no longer fits is streamed (off-chip), later smaller ones may
   still be cached.

Example:
    used, remaining, off_chip = estimate_memory(parameter_blocks(model, statuses))
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Set, Tuple

from edgetpu_analyzer import rules
from edgetpu_analyzer.result import STATUS_MAPPED
from edgetpu_analyzer.tflite_reader import ModelInfo, OperatorInfo


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def constant_buffers(op: OperatorInfo, model: ModelInfo) -> Dict[int, int]:
    """Constant bytes the operator reads as stored in the .tflite file, keyed by buffer
    (shared buffers count once)."""
    return {model.tensors[i].buffer_index: model.tensors[i].constant_bytes
            for i in op.inputs if i >= 0 and model.tensors[i].is_constant}


def _weights_on_edgetpu(op: OperatorInfo, model: ModelInfo) -> Dict[int, int]:
    """Bytes of a weighted operator's filter and bias as the Edge TPU stores them."""
    filter_index = op.inputs[1] if len(op.inputs) > 1 else -1
    weights = model.tensors[filter_index]
    channels = weights.shape[0] if weights.shape else 0
    inner = weights.constant_bytes // channels if channels else 0
    if op.name == "DEPTHWISE_CONV_2D" and weights.shape:
        channels, inner = weights.shape[-1], weights.constant_bytes // max(weights.shape[-1], 1)
    else:
        inner = _round_up(inner, rules.WEIGHT_INNER_ALIGNMENT)
    stored = {weights.buffer_index: channels * (inner + rules.WEIGHT_BYTES_PER_CHANNEL)}
    for index in op.inputs[2:]:
        tensor = model.tensors[index] if index >= 0 else None
        if tensor is not None and tensor.is_constant and tensor.dtype in ("INT8", "UINT8"):
            stored[tensor.buffer_index] = tensor.constant_bytes
    return stored


def parameter_blocks(model: ModelInfo, statuses: Sequence[str]) -> List[int]:
    """Bytes of Edge TPU parameter memory per mapped operator, in execution order."""
    seen: Set[int] = set()
    blocks = []
    for op, status in zip(model.operators, statuses):
        if status != STATUS_MAPPED:
            continue
        filter_index = op.inputs[1] if len(op.inputs) > 1 else -1
        weighted = op.name in rules.WEIGHTED_OPERATORS and filter_index >= 0 and \
            model.tensors[filter_index].is_constant
        stored = _weights_on_edgetpu(op, model) if weighted else constant_buffers(op, model)
        size = sum(value for buffer, value in stored.items() if buffer not in seen)
        seen.update(stored)
        if size:
            blocks.append(_round_up(size, rules.ON_CHIP_GRANULARITY_BYTES))
    return blocks


def estimate_memory(blocks: Sequence[int],
                    capacity: int = rules.ASSUMED_ON_CHIP_CAPACITY_BYTES) -> Tuple[int, int, int]:
    """(on-chip used, on-chip remaining, off-chip) bytes for these parameter blocks (when
    nothing maps at all, the compiler prints 0.00B three times instead: ge#222)."""
    used = off_chip = 0
    for block in blocks:
        if used + block <= capacity:
            used += block
        else:
            off_chip += block
    return used, capacity - used, off_chip
