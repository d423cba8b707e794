"""Quantize a small Keras model the way the pipeline does, for tests/test_cross_cpu.py.

    python tests/cross_cpu_quantize.py OUT_DIR [--converter]

Everything is seeded: a small conv/batch-norm/concat/add/dense model and its calibration
samples. The pipeline's steps, through the stage code: fold batch norms and convert to float
(float_model), per-face ranges with the reference kernels (float_reference), their reduction
(calibrate), the quantizer (quantize). Writes OUT_DIR/pipeline.tflite; with --converter also
OUT_DIR/converter.tflite, the converter's one call with a representative dataset (what the
quantize stage did before the ranges were recorded separately).

The test runs this natively and under user-mode emulation of an older CPU and compares bytes.
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZE, SAMPLES = 16, 4


def build_model(tf):
    layers = tf.keras.layers
    inputs = layers.Input((SIZE, SIZE, 3), batch_size=1)

    def conv_bn(x, channels, kernel, name):
        x = layers.Conv2D(channels, kernel, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(name=name + "_bn")(x)
        return layers.Activation("relu", name=name + "_relu")(x)

    x = conv_bn(inputs, 16, 3, "stem")
    a = conv_bn(x, 8, 1, "branch_a")
    b = conv_bn(conv_bn(x, 8, 3, "branch_b1"), 8, 3, "branch_b2")
    up = layers.Conv2D(16, 1, padding="same", name="up")(layers.Concatenate()([a, b]))
    x = layers.Activation("relu")(layers.Add()([x, up]))
    x = layers.Dense(12, use_bias=False, name="embedding")(layers.GlobalAveragePooling2D()(x))
    model = tf.keras.Model(inputs, layers.BatchNormalization(name="embedding_bn")(x))
    rng = np.random.RandomState(1234)
    model.set_weights([
        rng.uniform(0.5, 1.5, w.shape).astype(np.float32) if w.ndim == 1 else
        (rng.uniform(-1, 1, w.shape) * np.sqrt(3.0 / np.prod(w.shape[:-1]))).astype(np.float32)
        for w in model.get_weights()])
    return model


def main(out_dir: str, converter_too: bool) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from facenet_edgetpu.lib.converter import float_tflite, quantize_calibrated
    from facenet_edgetpu.lib.keras_model import load_folded_keras_model
    from facenet_edgetpu.lib.tflite_edit import activation_tensors, exposing, with_ranges
    from facenet_edgetpu.stages.calibrate import reduce_ranges
    from facenet_edgetpu.stages.float_reference import run_faces

    os.makedirs(out_dir, exist_ok=True)
    samples = np.random.RandomState(99).uniform(-2, 2, (SAMPLES, SIZE, SIZE, 3)).astype("<f4")
    faces_path = os.path.join(out_dir, "faces.npy")
    np.save(faces_path, samples)
    h5 = os.path.join(out_dir, "small.h5")
    model = build_model(tf)
    model.save(h5)

    folded, _ = load_folded_keras_model(h5)
    float_model = float_tflite(folded)
    tensors = activation_tensors(float_model)
    exposed = os.path.join(out_dir, "exposed.tflite")
    with open(exposed, "wb") as handle:
        handle.write(exposing(float_model, sorted(tensors)))
    results = run_faces(exposed, faces_path, sorted(tensors), SAMPLES, workers=1)
    ranges = reduce_ranges(np.stack([r[1] for r in results]), np.stack([r[2] for r in results]),
                           range(SAMPLES), [tensors[i] for i in sorted(tensors)])
    with open(os.path.join(out_dir, "pipeline.tflite"), "wb") as handle:
        handle.write(quantize_calibrated(with_ranges(float_model, ranges), "uint8"))

    if converter_too:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([samples[i:i + 1]] for i in range(SAMPLES))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.uint8
        with open(os.path.join(out_dir, "converter.tflite"), "wb") as handle:
            handle.write(converter.convert())


if __name__ == "__main__":
    main(sys.argv[1], "--converter" in sys.argv[2:])
