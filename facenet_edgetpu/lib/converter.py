"""The two TensorFlow conversions of the pipeline, the same under TF 1.15 and TF 2.x.

1. `float_tflite`: the Keras model to a float TFLite model, no optimizations (stage float_model).
2. `quantize_calibrated`: a float TFLite model whose activation tensors already carry their
   recorded min/max (stage calibrate writes them) to a full-integer model (stage quantize).

Splitting the converter's one call in two is what makes the quantized bytes independent of the
CPU: the converter would calibrate by running the float model with TFLite's optimized kernels,
which pick AVX-512, AVX2 or AVX code at run time and sum in different orders. Here the ranges
come from the reference kernels (stage float_reference), and the quantizer only reads them:

- TF 2.x: `mlir_quantize`, then the dedup of read-only buffers, exactly as
  `TFLiteConverter._quantize` does after its own calibration (TF 2.15 lite/python/lite.py);
- TF 1.15: the calibrator's `calibrate_and_quantize` fed no sample: its QuantizeModel uses the
  min/max already present in the model's tensors (TF 1.15 calibration_wrapper.cc).
"""
from __future__ import annotations

import warnings
from typing import Any

from facenet_edgetpu.lib.tf_compat import graph_mode, tensorflow

IO_TYPES = ("uint8", "int8")

# Every TensorFlow attribute path the TF 1.15 path uses (relative to `tensorflow`), checked
# against the TF 1.15 wheel by tests/test_production_image.py.
TF1_API = (
    "__version__",
    "executing_eagerly",
    "uint8",
    "int8",
    "compat.v1.keras.backend.get_session",
    "compat.v1.lite.TFLiteConverter.from_session",
    "lite.python.optimize.calibrator.Calibrator",
    "lite.python.optimize.calibrator.Calibrator.calibrate_and_quantize",
)
# The TF 2.x path.
TF2_API = (
    "__version__",
    "executing_eagerly",
    "uint8",
    "int8",
    "lite.TFLiteConverter.from_keras_model",
    "lite.python.convert.mlir_quantize",
    "lite.python.convert.deduplicate_readonly_buffers",
)


class ConversionError(ValueError):
    """The converter refused the model; the message is TensorFlow's."""


def float_tflite(model: Any) -> bytes:
    """The Keras model as a float32 TFLite model (TF 1.15: the v1 converter on the Keras
    session, as `from_keras_model_file` does; TF 2.x: `from_keras_model`)."""
    tf = tensorflow()
    if graph_mode(tf):
        session = tf.compat.v1.keras.backend.get_session()
        converter = tf.compat.v1.lite.TFLiteConverter.from_session(
            session, model.inputs, model.outputs)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return bytes(converter.convert())


def quantize_calibrated(calibrated: bytes, io_type: str) -> bytes:
    """Full-integer quantization of a float model carrying min/max on its activation tensors;
    inputs and outputs of type `io_type` (uint8 or int8), no float operator left."""
    if io_type not in IO_TYPES:
        raise ValueError("io_type must be one of {}, got {!r}".format(IO_TYPES, io_type))
    tf = tensorflow()
    dtype = getattr(tf, io_type)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        if graph_mode(tf):
            from tensorflow.lite.python.optimize import calibrator

            content = bytes(calibrated)  # TF 1.15's calibrator keeps a pointer into this buffer
            quantizer = calibrator.Calibrator(content)
            return bytes(quantizer.calibrate_and_quantize(lambda: iter(()), dtype, dtype, False))
        from tensorflow.lite.python import convert

        quantized = convert.mlir_quantize(bytes(calibrated), False, input_data_type=dtype,
                                          output_data_type=dtype,
                                          enable_variable_quantization=False)
        return bytes(convert.deduplicate_readonly_buffers(quantized))
