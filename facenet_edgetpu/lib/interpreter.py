"""TFLite interpreter helpers: the one place the stages run .tflite models.

`reference_interpreter` runs TFLite's reference kernels: plain C++ loops, compiled once for
every x86-64 CPU, with no code chosen at run time from the CPU's features (unlike the optimized
kernels and XNNPACK, which pick AVX-512, AVX2 or AVX code and sum in different orders). Their
float results are therefore the same bits on every x86-64 machine, which is what calibration
and the float reference embeddings need. They are slow (about 1-2 s per FaceNet face).
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lib.tf_compat import tensorflow

# TF 2.x attribute paths this module uses (the reference kernels exist from TF 2.5 on; the
# stages that need them run in the modern image).
TF2_API = (
    "lite.Interpreter",
    "lite.experimental.OpResolverType.BUILTIN_REF",
)


class InterpreterError(PipelineError):
    """A model cannot be run as the stage needs it; the message says what to do."""


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def interpreter(model_path: Optional[str] = None, model_content: Optional[bytes] = None,
                num_threads: Optional[int] = None) -> Any:
    """An allocated tf.lite.Interpreter with TFLite's default (fast) kernels."""
    kwargs = {"model_path": model_path, "model_content": model_content}  # type: Dict[str, Any]
    if num_threads is not None:
        kwargs["num_threads"] = int(num_threads)
    found = tensorflow().lite.Interpreter(**kwargs)
    found.allocate_tensors()
    return found


def reference_interpreter(model_path: str) -> Any:
    """An allocated interpreter that runs TFLite's reference kernels, one thread."""
    tf = tensorflow()
    resolvers = getattr(getattr(tf.lite, "experimental", None), "OpResolverType", None)
    if resolvers is None:
        raise InterpreterError(
            "TensorFlow {} has no reference-kernel interpreter (TF 2.5 and later do): run this "
            "stage in the modern image (params.yaml runner.stages, docs/containers.md)".format(
                tf.__version__))
    found = tf.lite.Interpreter(model_path=model_path, num_threads=1,
                                experimental_op_resolver_type=resolvers.BUILTIN_REF)
    found.allocate_tensors()
    return found


def single_io(found: Any, what: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(input details, output details) of a model with one input and one output."""
    inputs, outputs = found.get_input_details(), found.get_output_details()
    if len(inputs) != 1 or len(outputs) < 1:
        raise InterpreterError("{} has {} input(s) and {} output(s); the pipeline handles "
                               "single-input, single-output models".format(
                                   what, len(inputs), len(outputs)))
    return inputs[0], outputs[0]


def run(found: Any, batch: np.ndarray) -> np.ndarray:
    """The first output for one batch-1 input already of the input tensor's dtype."""
    found.set_tensor(found.get_input_details()[0]["index"], batch)
    found.invoke()
    return np.array(found.get_tensor(found.get_output_details()[0]["index"]))


def quantization(details: Mapping[str, Any]) -> Tuple[float, int, np.dtype]:
    """(scale, zero point, dtype) of an interpreter tensor."""
    scale, zero_point = details["quantization"]
    return float(scale), int(zero_point), np.dtype(details["dtype"])


def tensor_record(details: Mapping[str, Any]) -> Dict[str, Any]:
    """An interpreter tensor as quantization.json records it."""
    scale, zero_point, dtype = quantization(details)
    return {"name": str(details["name"]), "dtype": dtype.name,
            "shape": [int(n) for n in details["shape"]], "scale": scale,
            "zero_point": zero_point}
