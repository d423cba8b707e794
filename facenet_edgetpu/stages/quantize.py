"""Stage `quantize`: full-integer post-training quantization of the Keras model to TFLite.

Reads the Keras h5 model (Lambda layers saved by old Pythons are translated by
`facenet_edgetpu.lib.keras_loader`; `quantize.lambda_functions` supplies any it cannot translate)
and the representative dataset (float32 .npy, N x H x W x C, already resized and pre-whitened). The model is built with batch size 1 (the Edge TPU needs a
static batch) and converted with

    optimizations = [DEFAULT], supported ops = [TFLITE_BUILTINS_INT8] only,
    inference input and output type = `quantize.io_type` (uint8, the seed's choice, or int8),

so conversion fails rather than leave a float operator behind. Under TF 2.x the TF2 converter
(`TFLiteConverter.from_keras_model`) is used; under TF 1.15 (graph mode) the v1 converter
(`tf.compat.v1.lite.TFLiteConverter.from_session`), as `from_keras_model_file` does internally.

Outputs:
    --out       the quantized model (.tflite)
    --report    quantization JSON: `input` and `output`: the tensors as written (name, dtype,
                                  shape, scale, zero_point, read back with tf.lite.Interpreter), the
                                  operator counts and versions (from the flatbuffer), the file
                                  size and sha256, the number of calibration samples and the
                                  source used for every Lambda layer. Sorted keys, no timestamps.

Two conversions of the same inputs give byte-identical files (checked across processes).

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu quantize --model models/facenet_keras.h5 \
        --calibration data/calibration.npy --out models/facenet_keras.tflite \
        --report models/quantization.json
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence

import numpy as np

from edgetpu_analyzer.tflite_reader import read_model_bytes
from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, section
from facenet_edgetpu.lib.lambda_params import LAMBDA_FUNCTIONS_FIELD, check_lambda_functions
from facenet_edgetpu.lib.keras_loader import model_lambda_layers
from facenet_edgetpu.lib.tf_compat import graph_mode, load_keras_model, tensorflow

IO_TYPES = ("uint8", "int8")

SCHEMA = {
    "io_type": Field(str, choices=IO_TYPES, optional=True, default="uint8"),
    "lambda_functions": LAMBDA_FUNCTIONS_FIELD,
}

# Every TensorFlow attribute path the TF 1.15 code path uses (relative to `tensorflow`), for a
# test against the TF 1.15 API; `facenet_edgetpu.lib.keras_loader.TF_API` lists the loader's.
TF1_API = (
    "__version__",
    "executing_eagerly",
    "uint8",
    "int8",
    "compat.v1.keras.backend.clear_session",
    "compat.v1.keras.backend.set_learning_phase",
    "compat.v1.keras.backend.get_session",
    "compat.v1.lite.TFLiteConverter.from_session",
    "lite.Optimize.DEFAULT",
    "lite.OpsSet.TFLITE_BUILTINS_INT8",
    "lite.RepresentativeDataset",
    "lite.Interpreter",
)
# The TF 2.x path, for completeness.
TF2_API = (
    "__version__",
    "executing_eagerly",
    "uint8",
    "int8",
    "keras.backend.clear_session",
    "lite.TFLiteConverter.from_keras_model",
    "lite.Optimize.DEFAULT",
    "lite.OpsSet.TFLITE_BUILTINS_INT8",
    "lite.RepresentativeDataset",
    "lite.Interpreter",
)

log = get_logger("quantize")


class QuantizeError(PipelineError):
    """The inputs of the stage are unusable; the message says what to fix."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def load_calibration(path: str) -> np.ndarray:
    """Memory-map the representative dataset and check its layout (N x H x W x C float32)."""
    if not os.path.exists(path):
        raise QuantizeError("calibration data {} not found: run the representative_dataset "
                            "stage first (dvc repro representative_dataset).".format(path))
    try:
        samples = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        raise QuantizeError("{} is not a .npy array file: {}".format(path, error))
    if samples.dtype != np.float32 or samples.ndim != 4 or samples.shape[0] < 1:
        raise QuantizeError(
            "{} must hold float32 samples shaped N x H x W x C with N >= 1, found {} {}".format(
                path, samples.dtype, "x".join(str(n) for n in samples.shape)))
    return samples


def check_samples_fit(samples: np.ndarray, input_shape: Sequence[Optional[int]]) -> None:
    """The calibration samples must have the model input's shape (batch dimension aside)."""
    expected = tuple(input_shape[1:])
    found = tuple(samples.shape[1:])
    if len(expected) != len(found) or any(
            e is not None and e != f for e, f in zip(expected, found)):
        raise QuantizeError(
            "calibration samples are {} but the model input is {} (batch aside): rebuild the "
            "representative dataset for this model.".format(
                "x".join(map(str, found)), "x".join("?" if e is None else str(e)
                                                     for e in expected)))


def representative_dataset(samples: np.ndarray, progress: bool = True
                           ) -> Callable[[], Iterator[List[np.ndarray]]]:
    """A generator function yielding one sample at a time, batch 1: [array 1 x H x W x C].

    Each sample is copied out of the memory map on its own, so the whole set is never held
    twice in memory.
    """
    def generate() -> Iterator[List[np.ndarray]]:
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(samples), desc="calibration", unit="sample", disable=None,
                       leave=False)
        try:
            for index in range(len(samples)):
                yield [np.array(samples[index:index + 1], dtype=np.float32)]
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    return generate


# --------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------

def _configure(converter: Any, dataset: Callable, io_type: str) -> None:
    tf = tensorflow()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = tf.lite.RepresentativeDataset(dataset)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = getattr(tf, io_type)
    converter.inference_output_type = getattr(tf, io_type)


def _run(converter: Any) -> bytes:
    with warnings.catch_warnings():
        # TF warns for every integer inference_input_type that no input statistics were given;
        # with post-training quantization they come from the calibration, so this is noise.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return bytes(converter.convert())


def convert_tf2(model: Any, dataset: Callable, io_type: str) -> bytes:
    """TF 2.x: TFLiteConverter.from_keras_model."""
    tf = tensorflow()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    _configure(converter, dataset, io_type)
    return _run(converter)


def convert_tf1(model: Any, dataset: Callable, io_type: str) -> bytes:
    """TF 1.15 (graph mode): the v1 converter on the Keras session, like from_keras_model_file."""
    tf = tensorflow()
    session = tf.compat.v1.keras.backend.get_session()
    converter = tf.compat.v1.lite.TFLiteConverter.from_session(
        session, model.inputs, model.outputs)
    _configure(converter, dataset, io_type)
    return _run(converter)


def convert(model: Any, samples: np.ndarray, io_type: str, progress: bool = True) -> bytes:
    """Full-integer quantize `model` with `samples` as the representative dataset."""
    if io_type not in IO_TYPES:
        raise QuantizeError("io_type must be one of {}, got {!r}".format(IO_TYPES, io_type))
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise QuantizeError("the model has {} input(s) and {} output(s); this stage handles "
                            "single-input, single-output models".format(
                                len(model.inputs), len(model.outputs)))
    check_samples_fit(samples, model.input_shape)
    dataset = representative_dataset(samples, progress)
    if graph_mode():
        return convert_tf1(model, dataset, io_type)
    return convert_tf2(model, dataset, io_type)


# --------------------------------------------------------------------------------------------
# Reading the result back
# --------------------------------------------------------------------------------------------

def _tensor(details: Mapping[str, Any]) -> Dict[str, Any]:
    scale, zero_point = details["quantization"]
    return {
        "name": str(details["name"]),
        "dtype": np.dtype(details["dtype"]).name,
        "shape": [int(n) for n in details["shape"]],
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def tensor_details(tflite_model: bytes) -> Dict[str, Dict[str, Any]]:
    """{"input": ..., "output": ...}: the single input and output tensor of a TFLite model as the
    interpreter reports them (name, dtype, shape, scale, zero_point)."""
    interpreter = tensorflow().lite.Interpreter(model_content=bytes(tflite_model))
    found = {"input": interpreter.get_input_details(), "output": interpreter.get_output_details()}
    for side, details in found.items():
        if len(details) != 1:
            raise QuantizeError("the converted model has {} {} tensors; this stage handles "
                                "single-input, single-output models".format(len(details), side))
    return {side: _tensor(details[0]) for side, details in found.items()}


def operators(tflite_model: bytes) -> Dict[str, Dict[str, Any]]:
    """Operator counts and versions of the main subgraph: {"counts": {...}, "versions": {...}}.

    A builtin operator is named as in the TFLite schema (CONV_2D ...); a custom one as
    "CUSTOM:<code>".
    """
    counts = {}  # type: Dict[str, int]
    versions = {}  # type: Dict[str, set]
    for operator in read_model_bytes(bytes(tflite_model)).operators:
        name = operator.name if operator.custom_code is None else \
            "CUSTOM:" + operator.custom_code
        counts[name] = counts.get(name, 0) + 1
        versions.setdefault(name, set()).add(operator.version)
    return {"counts": counts, "versions": {k: sorted(v) for k, v in versions.items()}}


def quantization_report(tflite_model: bytes, io_type: str, calibration_samples: int,
                        lambda_layers: Sequence[Any] = ()) -> Dict[str, Any]:
    """The content of quantization.json (no timestamps: same inputs, same file)."""
    tf = tensorflow()
    ops = operators(tflite_model)
    report = {
        "calibration_samples": int(calibration_samples),
        "converter": "tf.compat.v1.lite.TFLiteConverter.from_session" if graph_mode(tf)
        else "tf.lite.TFLiteConverter.from_keras_model",
        "io_type": io_type,
        "lambda_layers": {item.layer: {"origin": item.origin, "source": item.source}
                          for item in lambda_layers if item.key == "function"},
        "operator_count": sum(ops["counts"].values()),
        "operators": ops["counts"],
        "operator_versions": ops["versions"],
        "tensorflow_version": tf.__version__,
        "tflite_bytes": len(tflite_model),
        "tflite_sha256": hashlib.sha256(tflite_model).hexdigest(),
    }
    report.update(tensor_details(tflite_model))
    return report


# --------------------------------------------------------------------------------------------
# The stage
# --------------------------------------------------------------------------------------------

def quantize(model_path: str, calibration_path: str, io_type: str,
             lambda_functions: Optional[Mapping[str, str]], tflite_path: str, report_path: str,
             progress: bool = True) -> Dict[str, Any]:
    """Convert, write the .tflite and the report (atomically), return the report."""
    lambda_functions = check_lambda_functions(lambda_functions or {})
    samples = load_calibration(calibration_path)
    log.info("calibration: %d samples of %s from %s", samples.shape[0],
             "x".join(map(str, samples.shape[1:])), calibration_path)
    lambdas = model_lambda_layers(model_path, lambda_functions)
    for origin in ("translated", "params"):
        chosen = sorted({item.source for item in lambdas if item.origin == origin and
                         item.key == "function"})
        if chosen:
            log.info("Lambda layers, source %s: %d layer(s) %s", origin,
                     sum(1 for item in lambdas if item.origin == origin), "; ".join(chosen))
    with timed(log, "loading {}".format(model_path)):
        model = load_keras_model(model_path, lambda_functions)
    with timed(log, "full-integer conversion ({} in/out, {} calibration samples)".format(
            io_type, samples.shape[0])):
        tflite_model = convert(model, samples, io_type, progress)
    report = quantization_report(tflite_model, io_type, samples.shape[0], lambdas)
    artifacts.write_bytes(tflite_path, tflite_model)
    artifacts.write_json(report_path, report)
    tensor = report["input"]
    log.info("wrote %s (%d bytes, sha256 %s, %d operators) and %s; input scale %g zero point %d",
             tflite_path, report["tflite_bytes"], report["tflite_sha256"][:12],
             report["operator_count"], report_path, tensor["scale"], tensor["zero_point"])
    return report


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("quantize", __doc__)
    parser.add_argument("--model", required=True, help="the Keras .h5 model")
    parser.add_argument("--calibration", required=True, help="the representative dataset (.npy)")
    parser.add_argument("--out", required=True, help="the quantized .tflite to write")
    parser.add_argument("--report", required=True, help="the quantization JSON to write")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    params = section("quantize", SCHEMA)
    quantize(args.model, args.calibration, params["io_type"], params["lambda_functions"],
             args.out, args.report)


if __name__ == "__main__":
    entry.start("quantize", main)
