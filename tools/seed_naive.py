"""The seed article's conversion as one script, for `make bench` to compare the pipeline with.

Nothing is cached: it loads the Keras h5 (through the project's loader, since the h5's Lambda
bytecode cannot be loaded otherwise on Python 3.8+), feeds the train crops through a
representative-dataset generator that preprocesses each face on the fly, and converts with the
TFLite converter in one call, as the seed does.

    python tools/seed_naive.py REPO OUT.tflite
"""
from __future__ import annotations

import os
import sys

import numpy as np


def main(repo: str, out: str) -> None:
    """Convert with the inputs of the pipeline copy `repo` (its h5, crops and params)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import tensorflow as tf

    from facenet_edgetpu.core.params import load_params
    from facenet_edgetpu.lib import faces
    from facenet_edgetpu.lib.manifest import read_manifest, split_entries
    from facenet_edgetpu.lib.keras_model import load_keras_model

    params = load_params(os.path.join(repo, "params.yaml"))
    model = load_keras_model(os.path.join(repo, params["inputs"]["model"]))
    faces_dir = os.path.join(repo, "data", "faces")
    crops = [entry["crop"] for entry in split_entries(read_manifest(faces_dir), "train")]
    crops = crops[:params["representative_dataset"]["max_samples"]]
    channels = params["representative_dataset"]["channels"]

    def representative_dataset():
        for crop in crops:
            image = faces.read_image(os.path.join(faces_dir, crop), channels)
            yield [faces.model_input(image, (160, 160))[np.newaxis]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    with open(out, "wb") as handle:
        handle.write(converter.convert())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tools/seed_naive.py REPO OUT.tflite")
    main(sys.argv[1], sys.argv[2])
