"""Small Keras models converted to TFLite as the tests need them: one conversion helper for the
predictor, compile-stage, report and publishing tests."""
from __future__ import annotations

import numpy as np


def convert(model, io_type="int8", quantize=True):
    """`model` as TFLite bytes: full-integer quantized (calibrated on 4 samples uniform in
    [-1, 1], seed 0) with `io_type` input and output (None: float I/O), or float when
    `quantize` is False."""
    import tensorflow as tf
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        shape = tuple(dim or 1 for dim in model.input_shape)

        def representative():
            rng = np.random.default_rng(0)
            for _ in range(4):
                yield [rng.uniform(-1, 1, shape).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type is not None:
            converter.inference_input_type = getattr(tf, io_type)
            converter.inference_output_type = getattr(tf, io_type)
    return converter.convert()
