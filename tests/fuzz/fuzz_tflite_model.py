"""Fuzz the flatbuffer reader behind `edgetpu-predict` and the prediction made from what it
reads: `tflite_reader.read_model_bytes`, then `predict` for every compiler release, rendered
as the command renders it (compiler text and JSON). The documented error is `ModelReadError`;
any other exception is a finding.

Run: python -m tests.fuzz.fuzz_tflite_model <corpus dir> [libFuzzer options]
"""
from __future__ import annotations

import json
import os
from typing import Dict

from tests.fuzz.harness import REPO, fuzz_main

# The generated `tflite` schema code and `flatbuffers` are the reader too: their branches guide.
INSTRUMENTED = ("edgetpu_analyzer.predict", "tflite", "flatbuffers")
SOURCES = tuple(os.path.join(REPO, "edgetpu_analyzer", name)
                for name in ("tflite_reader.py", "predict.py"))


def one_input(data: bytes) -> None:
    from edgetpu_analyzer import predict, render, rules, tflite_reader

    try:
        model = tflite_reader.read_model_bytes(data, "fuzzed.tflite")
        for profile in rules.COMPILER_PROFILES:
            result = predict.predict(model, profile.version)
            render.render_compiler_stdout(result, show_operations=True)
            json.dumps(result.to_dict(), sort_keys=True)
    except tflite_reader.ModelReadError:
        pass


def seeds() -> Dict[str, bytes]:
    """Tiny real models from the TF converter: full-integer (int8 and uint8 input/output) with
    the operators whose options the reader reads, and a float model."""
    import numpy as np
    import tensorflow as tf

    layers = tf.keras.layers

    def convert(model: tf.keras.Model, io_type=None, quantize: bool = True) -> bytes:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            def representative():
                rng = np.random.default_rng(0)
                for _ in range(2):
                    yield [rng.uniform(-1, 1, (1,) + model.input_shape[1:]).astype(np.float32)]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if io_type is not None:
                converter.inference_input_type = converter.inference_output_type = io_type
        return converter.convert()

    def convolutions() -> tf.keras.Model:
        inputs = layers.Input((8, 8, 3), batch_size=1)
        x = layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
        y = layers.DepthwiseConv2D(3, padding="same")(x)
        x = layers.MaxPooling2D()(layers.Concatenate()([x, y]))
        x = layers.Reshape((4, 32))(x)
        return tf.keras.Model(inputs, layers.Dense(2)(layers.Flatten()(x)))

    def branches() -> tf.keras.Model:
        inputs = layers.Input((4, 4, 2), batch_size=1)
        a = layers.Conv2D(2, 1)(inputs)
        b = layers.AveragePooling2D(1)(inputs)
        x = layers.LeakyReLU()(layers.Add()([a, b]))
        return tf.keras.Model(inputs, layers.Conv2DTranspose(2, 2, strides=2)(x))

    def operators_with_limits() -> tf.keras.Model:
        """Operators the predictor has per-operator rules for (predict._limitation): PAD,
        PRELU, RESIZE_BILINEAR, STRIDED_SLICE, SPLIT, CONCATENATION, MEAN, REDUCE_MAX,
        SQUEEZE, FULLY_CONNECTED, SOFTMAX."""
        inputs = layers.Input((6, 6, 4), batch_size=1)
        x = layers.PReLU()(layers.ZeroPadding2D(1)(inputs))
        x = layers.Cropping2D(1)(layers.UpSampling2D(interpolation="bilinear")(x))
        x = layers.Concatenate()(layers.Lambda(lambda t: tf.split(t, 2, axis=-1))(x))
        peak = layers.Lambda(lambda t: tf.reduce_max(t, axis=[1, 2]))(x)
        mean = layers.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2]))(x)
        x = layers.Reshape((1, 4))(layers.Add()([peak, mean]))
        x = layers.Lambda(lambda t: tf.squeeze(t, axis=1))(x)
        return tf.keras.Model(inputs, layers.Softmax()(layers.Dense(3)(x)))

    tf.keras.backend.clear_session()
    return {
        "int8 operators with limits": convert(operators_with_limits(), tf.int8),
        "int8 convolutions": convert(convolutions(), tf.int8),
        "uint8 branches": convert(branches(), tf.uint8),
        "float input branches": convert(branches()),
        "float model": convert(convolutions(), quantize=False),
    }


if __name__ == "__main__":
    fuzz_main(INSTRUMENTED, one_input)
