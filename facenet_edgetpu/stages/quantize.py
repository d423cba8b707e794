"""Stage `quantize`: full-integer post-training quantization of the calibrated float model.

Reads the float TFLite model that carries the recorded activation ranges (stage calibrate) and
quantizes it with TensorFlow's quantizer (lib/converter.py): weights per channel, activations
from the recorded ranges, input and output of type `quantize.io_type` (uint8, the seed's
choice, or int8), and no float operator left (the stage fails if one is). Since no kernel runs
here and the ranges are the same bits everywhere, the model's bytes are the same on every
machine with the same toolchain.

Outputs:
    --out       the quantized model (.tflite);
    --report    quantization JSON (records.Quantization): the input and output tensors as the
                interpreter reads them back (name, dtype, shape, scale, zero point), operator
                counts and versions, size and sha256, the number of calibration faces, and how
                the float model was made (converter, Lambda layer sources). Sorted keys, no
                timestamps.

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu quantize --calibrated models/facenet_calibrated.tflite \\
        --ranges models/calibration_ranges.json --float-report models/float_model.json \\
        --out models/facenet_keras.tflite --report models/quantization.json
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict, List, Sequence

from edgetpu_analyzer.tflite_reader import ModelInfo, read_model_bytes
from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, section
from facenet_edgetpu.lib import interpreter, records
from facenet_edgetpu.lib.converter import IO_TYPES, quantize_calibrated
from facenet_edgetpu.lib.tf_compat import graph_mode, tensorflow

SCHEMA = {
    "io_type": Field(str, choices=IO_TYPES, optional=True, default="uint8"),
}
QUANTIZED_TYPES = ("UINT8", "INT8", "INT32", "INT16", "INT64")  # int32: biases, shapes

log = get_logger("quantize")


class QuantizeError(PipelineError):
    """The quantizer's result is not a full-integer model; the message says what is wrong."""


def float_operators(model: ModelInfo) -> List[str]:
    """Operators that still read or write a float tensor: a full-integer model has none."""
    found = []
    for operator in model.operators:
        types = {model.tensors[i].dtype for i in operator.inputs + operator.outputs if i >= 0}
        if types - set(QUANTIZED_TYPES):
            found.append("{} #{} ({})".format(operator.name, operator.index,
                                              ", ".join(sorted(types))))
    return found


def operator_histogram(model: ModelInfo) -> Dict[str, Dict[str, object]]:
    """{"counts": name -> count, "versions": name -> sorted versions}; a custom operator is
    named "CUSTOM:<code>"."""
    counts = {}  # type: Dict[str, int]
    versions = {}  # type: Dict[str, set]
    for operator in model.operators:
        name = operator.name if operator.custom_code is None else \
            "CUSTOM:" + operator.custom_code
        counts[name] = counts.get(name, 0) + 1
        versions.setdefault(name, set()).add(operator.version)
    return {"counts": counts, "versions": {k: sorted(v) for k, v in versions.items()}}


def quantization_record(quantized: bytes, io_type: str, ranges: records.CalibrationRanges,
                        float_model: records.FloatModel) -> records.Quantization:
    """The content of quantization.json (no timestamps: same inputs, same file)."""
    tf = tensorflow()
    model = read_model_bytes(quantized)
    histogram = operator_histogram(model)
    found = interpreter.interpreter(model_content=quantized)
    details = interpreter.single_io(found, "the quantized model")
    return records.Quantization(
        calibration_samples=len(ranges.faces),
        converter="{} (TensorFlow {}) from recorded ranges".format(
            "calibrator.calibrate_and_quantize" if graph_mode(tf) else "mlir_quantize",
            tf.__version__),
        io_type=io_type,
        input=records.TensorDetails(**interpreter.tensor_record(details[0])),
        output=records.TensorDetails(**interpreter.tensor_record(details[1])),
        lambda_layers=float_model.lambda_layers,
        operator_count=len(model.operators),
        operators=histogram["counts"],                    # type: ignore[arg-type]
        operator_versions=histogram["versions"],          # type: ignore[arg-type]
        tensorflow_version=tf.__version__,
        tflite_bytes=len(quantized), tflite_sha256=hashlib.sha256(quantized).hexdigest(),
        float_model_sha256=ranges.float_model_sha256)


def quantize(calibrated_path: str, io_type: str) -> bytes:
    """The full-integer model; QuantizeError when a float operator is left."""
    with open(calibrated_path, "rb") as handle:
        calibrated = handle.read()
    with timed(log, "full-integer quantization ({} in/out) of {}".format(
            io_type, calibrated_path)):
        quantized = quantize_calibrated(calibrated, io_type)
    left = float_operators(read_model_bytes(quantized))
    if left:
        raise QuantizeError("the quantizer left {} operator(s) on float tensors ({}{}): the "
                            "Edge TPU needs a full-integer model; check that every activation "
                            "has a recorded range (models/calibration_ranges.json)".format(
                                len(left), ", ".join(left[:5]), ", ..." if len(left) > 5 else ""))
    return quantized


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("quantize", __doc__)
    parser.add_argument("--calibrated", required=True, help="the calibrated float .tflite")
    parser.add_argument("--ranges", required=True, help="the ranges JSON (calibrate)")
    parser.add_argument("--float-report", required=True, help="the float model JSON")
    parser.add_argument("--out", required=True, help="the quantized .tflite to write")
    parser.add_argument("--report", required=True, help="the quantization JSON to write")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    params = section("quantize", SCHEMA)
    ranges = records.CalibrationRanges.load(args.ranges)
    float_model = records.FloatModel.load(args.float_report)
    quantized = quantize(args.calibrated, params["io_type"])
    record = quantization_record(quantized, params["io_type"], ranges, float_model)
    artifacts.write_bytes(args.out, quantized)
    record.save(args.report)
    log.info("wrote %s (%d bytes, sha256 %s, %d operators) and %s; input scale %g zero point %d",
             args.out, record.tflite_bytes, record.tflite_sha256[:12], record.operator_count,
             args.report, record.input.scale, record.input.zero_point)


if __name__ == "__main__":
    entry.start("quantize", main)
