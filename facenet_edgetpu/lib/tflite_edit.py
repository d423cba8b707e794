"""Edits of a float TFLite model's flatbuffer, with the TFLite schema TensorFlow 2.x installs.

- `activation_tensors`: the tensors calibration needs ranges for (float32, computed, used);
- `exposing`: the same model with those tensors also listed as outputs, so an interpreter keeps
  each of them instead of reusing its memory for a later tensor;
- `with_ranges`: the model with recorded min/max written into each tensor's quantization
  parameters: what the quantizer reads (lib/converter.py).

TensorFlow 2.x only: the edits use the TFLite schema module that TensorFlow installs
(`tensorflow/lite/python/schema_py_generated.py`, plain Python over the `flatbuffers` package,
so the schema always matches the toolchain's converter). It is loaded from its file without
importing the `tensorflow` package, which would cost about 3 s of every calibration experiment.
The stages that use it run in the modern image under every runner configuration
(docs/containers.md).
"""
from __future__ import annotations

import functools
import importlib.util
import os
from typing import Any, Dict, Mapping, Sequence, Tuple

import flatbuffers

from facenet_edgetpu.core.errors import PipelineError

FLOAT32 = 0  # TensorType.FLOAT32 of the TFLite schema
FILE_IDENTIFIER = b"TFL3"


class ModelEditError(PipelineError, ValueError):
    """The model cannot be edited here; the message says why and what to do."""


@functools.lru_cache(maxsize=None)
def _schema() -> Any:
    """TensorFlow's generated TFLite schema module (object API: ModelT and friends)."""
    found = importlib.util.find_spec("tensorflow")
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        path = os.path.join(folder, "lite", "python", "schema_py_generated.py")
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("tflite_schema_of_tensorflow", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)  # type: ignore[union-attr]
            return module
    import tensorflow as tf

    raise ModelEditError(
        "TensorFlow {} cannot edit TFLite flatbuffers (TF 2.x can): run this stage in the "
        "modern image (params.yaml runner.stages, docs/containers.md)".format(
            tf.__version__))


def _as_object(model: bytes) -> Any:
    """The model as the schema's object tree (tensorflow.lite.tools.flatbuffer_utils does the
    same; that module imports all of TensorFlow)."""
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model), 0))


def _as_bytes(model_object: Any) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model_object.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


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
    schema = _schema()
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
