"""Read the parts of a `.tflite` file that the Edge TPU rules need, with the `tflite` package.

The `tflite` PyPI package is TensorFlow's flatbuffer schema compiled to Python; it does no
validation, so a truncated or foreign file would fail deep inside it (IndexError, struct.error,
a numpy ValueError) or, worse, give garbage. `read_model` checks the file identifier, the
table and vector bounds it touches, and tensor indices, and turns every failure into one
`ModelReadError` with a one-line message. Weight bytes are never copied: buffer sizes come
from the vector lengths, and constants are read as numpy views only when a rule needs them.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import numpy as np

import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

if TYPE_CHECKING:
    # numpy.typing exists from numpy 1.20; the Python 3.7 image has 1.18, so annotations only.
    import numpy.typing as npt

    BufferView = npt.NDArray[np.uint8]

_TFLITE_IDENTIFIER = b"TFL3"

# TensorType enum value -> name (INT8, UINT8, FLOAT32, ...), from the schema module itself.
TENSOR_TYPE_NAMES = {
    value: name for name, value in vars(tflite.TensorType).items() if not name.startswith("_")
}

_CONSTANT_DTYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32, "INT64": np.int64,
                    "INT16": np.int16, "FLOAT32": np.float32}


class ModelReadError(ValueError):
    """The file is missing, empty, not a TFLite flatbuffer, or damaged."""


@dataclass
class TensorInfo:
    index: int
    name: str
    shape: Tuple[int, ...]
    shape_signature: Optional[Tuple[int, ...]]
    dtype: str
    buffer_index: int
    constant_bytes: int          # bytes of constant data (0 for activations)
    zero_point: int = 0

    @property
    def is_constant(self) -> bool:
        return self.constant_bytes > 0


@dataclass
class OperatorInfo:
    index: int
    name: str                    # builtin name, or "CUSTOM"
    builtin_code: int
    version: int
    custom_code: Optional[str]
    inputs: Tuple[int, ...]      # -1 marks an omitted optional input
    outputs: Tuple[int, ...]
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class OperatorCodeInfo:
    name: str
    builtin_code: int
    version: int
    custom_code: Optional[str]


@dataclass
class ModelInfo:
    path: str
    file_size: int
    operator_codes: List[OperatorCodeInfo]
    tensors: List[TensorInfo]
    operators: List[OperatorInfo]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    subgraph_count: int
    metadata: Dict[str, bytes]
    _buffer_views: List[Optional[BufferView]] = field(default_factory=list, repr=False)

    def constant_array(self, tensor_index: int) -> Optional[npt.NDArray[Any]]:
        """The constant value of a tensor as a flat numpy view, or None if it is not constant
        or of a type the rules never read."""
        if tensor_index < 0:
            return None
        tensor = self.tensors[tensor_index]
        dtype = _CONSTANT_DTYPES.get(tensor.dtype)
        view = self._buffer_views[tensor.buffer_index] if tensor.is_constant else None
        if view is None or dtype is None:
            return None
        if view.size % np.dtype(dtype).itemsize:
            raise ModelReadError("{}: constant tensor {!r} has a buffer of {} bytes, not a "
                                 "whole number of {} values".format(
                                     self.path, tensor.name, view.size, tensor.dtype))
        return view.view(np.dtype(dtype).newbyteorder("<"))

    def constant_ints(self, tensor_index: int) -> Optional[List[int]]:
        values = self.constant_array(tensor_index)
        return None if values is None else [int(value) for value in values]

    @property
    def min_runtime_version(self) -> Optional[str]:
        """The converter's `min_runtime_version` metadata (TFLite release), if present."""
        raw = self.metadata.get("min_runtime_version")
        if raw is None:
            return None
        return raw.split(b"\0", 1)[0].decode("ascii", "replace") or None


# Which fields of which option tables the rules use: builtin options type -> (class, getters).
_OPTION_READERS = {
    "Conv2DOptions": ("fused_activation", "stride_w", "stride_h", "dilation_w", "dilation_h"),
    "DepthwiseConv2DOptions": ("fused_activation", "stride_w", "stride_h", "dilation_w",
                               "dilation_h", "depth_multiplier"),
    "Pool2DOptions": ("fused_activation",),
    "ConcatenationOptions": ("fused_activation", "axis"),
    "FullyConnectedOptions": ("fused_activation", "weights_format", "keep_num_dims"),
    "StridedSliceOptions": ("ellipsis_mask", "new_axis_mask"),
    "ReshapeOptions": ("new_shape",),
    "TransposeConvOptions": ("fused_activation",),
}
_GETTERS = {
    "fused_activation": "FusedActivationFunction",
    "stride_w": "StrideW",
    "stride_h": "StrideH",
    "dilation_w": "DilationWFactor",
    "dilation_h": "DilationHFactor",
    "depth_multiplier": "DepthMultiplier",
    "axis": "Axis",
    "weights_format": "WeightsFormat",
    "keep_num_dims": "KeepNumDims",
    "ellipsis_mask": "EllipsisMask",
    "new_axis_mask": "NewAxisMask",
}
_OPTIONS_TYPE_NAMES = {
    value: name for name, value in vars(tflite.BuiltinOptions).items() if not name.startswith("_")
}


def _read_options(operator: Any) -> Dict[str, Any]:
    type_name = _OPTIONS_TYPE_NAMES.get(operator.BuiltinOptionsType())
    if type_name not in _OPTION_READERS:
        return {}
    wanted = _OPTION_READERS[type_name]
    table = operator.BuiltinOptions()
    if table is None:
        return {}
    options = getattr(tflite, type_name)()
    options.Init(table.Bytes, table.Pos)
    values: Dict[str, Any] = {}
    for key in wanted:
        if key == "new_shape":
            values[key] = [int(options.NewShape(j)) for j in range(options.NewShapeLength())]
        elif hasattr(options, _GETTERS[key]):
            values[key] = int(getattr(options, _GETTERS[key])())
    return values


def _buffer_views(model: Any, data: bytes) -> List[Optional[BufferView]]:
    views: List[Optional[BufferView]] = []
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        offset = buffer.Offset()
        if offset > 1:
            # Models over 2 GB keep buffers after the flatbuffer, addressed by offset/size.
            size = buffer.Size()
            if offset + size > len(data):
                raise ModelReadError("buffer {} lies beyond the end of the file".format(index))
            views.append(np.frombuffer(data, dtype=np.uint8, count=size, offset=offset))
        elif buffer.DataIsNone() or buffer.DataLength() == 0:
            views.append(None)
        else:
            # A view, not a copy; numpy raises ValueError when the vector runs past the end.
            views.append(buffer.DataAsNumpy())
    return views


def _shape(tensor: Any) -> Tuple[int, ...]:
    return tuple(int(tensor.Shape(j)) for j in range(tensor.ShapeLength()))


def _shape_signature(tensor: Any) -> Optional[Tuple[int, ...]]:
    if tensor.ShapeSignatureIsNone():
        return None
    return tuple(int(tensor.ShapeSignature(j)) for j in range(tensor.ShapeSignatureLength()))


def _zero_point(tensor: Any) -> int:
    quantization = tensor.Quantization()
    if quantization is None or quantization.ZeroPointLength() == 0:
        return 0
    return int(quantization.ZeroPoint(0))


def _decode(raw: Optional[bytes]) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def _parse(path: str, data: bytes) -> ModelInfo:
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() < 1:
        raise ModelReadError("the model has no subgraph")
    views = _buffer_views(model, data)

    codes = []
    for index in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(index)
        builtin = int(code.BuiltinCode())
        name = BUILTIN_OPCODE2NAME.get(builtin, "BUILTIN_{}".format(builtin))
        codes.append(OperatorCodeInfo(name, builtin, int(code.Version()),
                                      _decode(code.CustomCode()) or None))

    subgraph = model.Subgraphs(0)
    tensors = []
    for index in range(subgraph.TensorsLength()):
        tensor = subgraph.Tensors(index)
        buffer_index = int(tensor.Buffer())
        if not 0 <= buffer_index < max(len(views), 1):
            raise ModelReadError("tensor {} refers to buffer {} of {}".format(
                index, buffer_index, len(views)))
        view = views[buffer_index] if views else None
        tensors.append(TensorInfo(
            index=index, name=_decode(tensor.Name()), shape=_shape(tensor),
            shape_signature=_shape_signature(tensor),
            dtype=TENSOR_TYPE_NAMES.get(tensor.Type(), "TYPE_{}".format(tensor.Type())),
            buffer_index=buffer_index,
            constant_bytes=0 if view is None or tensor.IsVariable() else int(view.size),
            zero_point=_zero_point(tensor)))

    def checked(indices: List[int], what: str) -> Tuple[int, ...]:
        for value in indices:
            if not -1 <= value < len(tensors):
                raise ModelReadError("{} refers to tensor {} of {}".format(
                    what, value, len(tensors)))
        return tuple(indices)

    operators = []
    for index in range(subgraph.OperatorsLength()):
        operator = subgraph.Operators(index)
        code_index = int(operator.OpcodeIndex())
        if not 0 <= code_index < len(codes):
            raise ModelReadError("operator {} refers to operator code {} of {}".format(
                index, code_index, len(codes)))
        code = codes[code_index]
        what = "operator {} ({})".format(index, code.name)
        operators.append(OperatorInfo(
            index=index, name=code.name, builtin_code=code.builtin_code, version=code.version,
            custom_code=code.custom_code,
            inputs=checked([int(operator.Inputs(j)) for j in range(operator.InputsLength())],
                           what),
            outputs=checked([int(operator.Outputs(j)) for j in range(operator.OutputsLength())],
                            what),
            options=_read_options(operator)))

    metadata = {}
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        buffer_index = int(entry.Buffer())
        view = views[buffer_index] if 0 <= buffer_index < len(views) else None
        if view is not None:
            metadata[_decode(entry.Name())] = view[:64].tobytes()

    return ModelInfo(
        path=path, file_size=len(data), operator_codes=codes, tensors=tensors,
        operators=operators,
        inputs=checked([int(subgraph.Inputs(j)) for j in range(subgraph.InputsLength())],
                       "subgraph inputs"),
        outputs=checked([int(subgraph.Outputs(j)) for j in range(subgraph.OutputsLength())],
                        "subgraph outputs"),
        subgraph_count=int(model.SubgraphsLength()), metadata=metadata,
        _buffer_views=views)


def read_model(path: str) -> ModelInfo:
    """Read a `.tflite` file; any problem raises ModelReadError with a one-line reason."""
    if not os.path.exists(path):
        raise ModelReadError("{}: no such file".format(path))
    if os.path.isdir(path):
        raise ModelReadError("{}: is a directory, not a .tflite file".format(path))
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ModelReadError("{}: cannot read: {}".format(path, error.strerror or error)) from error
    return read_model_bytes(data, path)


def read_model_bytes(data: bytes, path: str = "<bytes>") -> ModelInfo:
    """Like read_model, for a model already in memory."""
    if not data:
        raise ModelReadError("{}: the file is empty".format(path))
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelReadError(
            "{}: not a TFLite model (no 'TFL3' flatbuffer identifier at byte 4)".format(path))
    try:
        return _parse(path, data)
    except ModelReadError as error:
        raise ModelReadError("{}: damaged TFLite file: {}".format(path, error)) from error
    except (IndexError, struct.error, ValueError, TypeError, AttributeError,
            OverflowError, UnicodeDecodeError) as error:
        raise ModelReadError("{}: damaged or truncated TFLite file ({}: {})".format(
            path, type(error).__name__, str(error)[:120] or "no detail")) from error
