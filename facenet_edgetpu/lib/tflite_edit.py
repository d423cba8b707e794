"""Edits of a float TFLite model's flatbuffer, with TensorFlow 2.x's own schema tools.

- `activation_tensors`: the tensors calibration needs ranges for (float32, computed, used);
- `exposing`: the same model with those tensors also listed as outputs, so an interpreter keeps
  each of them instead of reusing its memory for a later tensor;
- `with_ranges`: the model with recorded min/max written into each tensor's quantization
  parameters: what the quantizer reads (lib/converter.py).

TensorFlow 2.x only (`tensorflow.lite.tools.flatbuffer_utils`); the stages that use it run in
the modern image under every runner configuration (docs/containers.md).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence, Tuple

from facenet_edgetpu.core.errors import PipelineError

FLOAT32 = 0  # TensorType.FLOAT32 of the TFLite schema


class ModelEditError(PipelineError, ValueError):
    """The model cannot be edited here; the message says why and what to do."""


def _schema() -> Tuple[Any, Any]:
    try:
        from tensorflow.lite.python import schema_py_generated
        from tensorflow.lite.tools import flatbuffer_utils
    except ImportError:
        import tensorflow as tf

        raise ModelEditError(
            "TensorFlow {} cannot edit TFLite flatbuffers (TF 2.x can): run this stage in the "
            "modern image (params.yaml runner.stages, docs/containers.md)".format(
                tf.__version__)) from None
    return flatbuffer_utils, schema_py_generated


def _as_object(model: bytes) -> Any:
    flatbuffer_utils, _ = _schema()
    return flatbuffer_utils.convert_bytearray_to_object(bytearray(model))


def _as_bytes(model_object: Any) -> bytes:
    flatbuffer_utils, _ = _schema()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model_object))


def activation_tensors(model: bytes) -> Dict[int, str]:
    """{index: name} of the main subgraph's float32 tensors that operators read or write and
    that hold no constant data (the input, intermediate results and the output)."""
    graph = _as_object(model)
    if not graph.subgraphs:
        raise ModelEditError("the model has no subgraph")
    buffers = graph.buffers
    subgraph = graph.subgraphs[0]
    used = sorted({int(index) for operator in subgraph.operators
                   for index in list(operator.inputs) + list(operator.outputs) if index >= 0})
    found = {}
    for index in used:
        tensor = subgraph.tensors[index]
        data = buffers[tensor.buffer].data if tensor.buffer < len(buffers) else None
        if tensor.type == FLOAT32 and not (data is not None and len(data) > 0):
            found[index] = tensor.name.decode("utf-8")
    names = list(found.values())
    if len(set(names)) != len(names):
        raise ModelEditError("two activation tensors share a name: ranges are keyed by name")
    return found


def exposing(model: bytes, indices: Sequence[int]) -> bytes:
    """The model with `indices` appended to the main subgraph's outputs (existing ones kept)."""
    graph = _as_object(model)
    subgraph = graph.subgraphs[0]
    outputs = [int(index) for index in subgraph.outputs]
    subgraph.outputs = outputs + [int(index) for index in indices if index not in outputs]
    return _as_bytes(graph)


def with_ranges(model: bytes, ranges: Mapping[str, Tuple[float, float]]) -> bytes:
    """The model with min/max written into the quantization parameters of the tensors named in
    `ranges`; every name must be a tensor of the model."""
    _, schema = _schema()
    graph = _as_object(model)
    tensors = {tensor.name.decode("utf-8"): tensor for tensor in graph.subgraphs[0].tensors}
    missing = sorted(set(ranges) - set(tensors))
    if missing:
        raise ModelEditError("the ranges name {} tensor(s) the model lacks, e.g. {!r}: they were "
                             "recorded on another model".format(len(missing), missing[0]))
    for name, (low, high) in sorted(ranges.items()):
        tensor = tensors[name]
        tensor.quantization = tensor.quantization or schema.QuantizationParametersT()
        tensor.quantization.min = [float(low)]
        tensor.quantization.max = [float(high)]
    return _as_bytes(graph)
