"""Build the representative (calibration) dataset from the train crops.

Each crop is resized to the model's input size and pre-whitened exactly as the seed does
(`facenet_edgetpu/lib/faces.py`), then stored as one float32 array, data/calibration.npy, of shape
N x height x width x 3. The array is filled in place on disk (a memory map), and the
quantize stage memory-maps it too, so no stage holds a second full copy.

Example:
    python -m facenet_edgetpu.representative_dataset
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np
from tqdm import tqdm

from facenet_edgetpu.stages.crop_faces import FACES_DIR, MANIFEST
from facenet_edgetpu.core import artifacts
from facenet_edgetpu.lib import faces
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lib.keras_h5 import model_input_size
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, inputs, section

CALIBRATION_PATH = "data/calibration.npy"

SCHEMA = {
    "max_samples": Field(int, low=1, high=100000),
    # The seed fed OpenCV's BGR order; the Keras FaceNet was trained on RGB images.
    "channels": Field(str, choices=faces.CHANNEL_ORDERS),
}

log = get_logger("representative_dataset")


def calibration_crops(manifest: List[Dict], max_samples: int) -> List[str]:
    """The train crops to calibrate with, in crop order; val crops are never used."""
    return [entry["crop"] for entry in manifest if entry["split"] == "train"][:max_samples]


def write_dataset(crop_paths: List[str], faces_dir: str, size: Tuple[int, int], channels: str,
                  path: str) -> Tuple[int, ...]:
    """Preprocess every crop into one .npy file at `path`; return the array's shape."""
    shape = (len(crop_paths),) + tuple(size) + (3,)
    with artifacts.staged_file(path) as temp:
        array = np.lib.format.open_memmap(temp, mode="w+", dtype=np.float32, shape=shape)
        for index, crop in enumerate(tqdm(crop_paths, desc="prewhiten", unit="face", leave=False)):
            image = faces.read_image(os.path.join(faces_dir, crop), channels)
            array[index] = faces.model_input(image, size)
        array.flush()
        del array
    return shape


def main() -> None:
    params = section("representative_dataset", SCHEMA)
    model_path = inputs()["model"]
    size = model_input_size(model_path)
    manifest = artifacts.read_json(os.path.join(FACES_DIR, MANIFEST))
    crops = calibration_crops(manifest, params["max_samples"])
    if not crops:
        raise PipelineError("{} lists no train crops: run crop_faces first".format(
            os.path.join(FACES_DIR, MANIFEST)))
    with timed(log, "Preprocessing {} train crops to {}x{}".format(len(crops), size[0], size[1])):
        shape = write_dataset(crops, FACES_DIR, size, params["channels"], CALIBRATION_PATH)
    log.info("Wrote %s, float32 %s", CALIBRATION_PATH, "x".join(str(d) for d in shape))


if __name__ == "__main__":
    main()
