"""Preprocess every crop for the model: the representative dataset and the evaluation faces.

Each crop (train and val, in manifest order) is resized to the model's input size and
pre-whitened exactly as the seed does (`facenet_edgetpu/lib/faces.py`), then stored in the
output folder as one float32 array `faces.npy` (N x height x width x 3, written one face at a
time, so memory does not grow with the number of faces), beside `faces.json`, the manifest
entries of its rows. Later stages memory-map the array. Calibration takes its first
`representative_dataset.max_samples` train rows (stage calibrate); the val rows are only ever
used for evaluation.

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu representative_dataset --faces data/faces \
        --model models/facenet_keras.h5 --out data/preprocessed
"""
from __future__ import annotations

import os
from typing import List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import section
from facenet_edgetpu.lib import faces, preprocessed
from facenet_edgetpu.lib.keras_h5 import model_input_size
from facenet_edgetpu.lib.manifest import manifest_path, read_manifest, split_entries

SCHEMA = {
    "channels": faces.CHANNELS_FIELD,
}


# Little-endian float32, whatever the machine: the file's bytes (and so its DVC hash) are the same
# everywhere.
NPY_DTYPE = np.dtype("<f4")

log = get_logger("representative_dataset")


def write_dataset(crop_paths: List[str], faces_dir: str, size: Tuple[int, int], channels: str,
                  path: str) -> Tuple[int, ...]:
    """Preprocess every crop into one .npy file at `path`; return the array's shape.

    The header goes first, then one face at a time: memory stays at one face whatever the
    number of faces, and a full disk fails the write() with ENOSPC, which the entry reports.
    (Filling a writable memory map instead dies of SIGBUS on a full disk, with no message.)
    """
    shape = (len(crop_paths),) + tuple(size) + (3,)
    with artifacts.staged_file(path) as temp:
        with open(temp, "wb") as handle:
            np.lib.format.write_array_header_1_0(handle, {
                "descr": np.lib.format.dtype_to_descr(NPY_DTYPE), "fortran_order": False,
                "shape": shape})
            for crop in tqdm(crop_paths, desc="prewhiten", unit="face", leave=False):
                image = faces.read_image(os.path.join(faces_dir, crop), channels)
                row = faces.model_input(image, size)  # exactly `size` x 3, as float32
                handle.write(np.ascontiguousarray(row, dtype=NPY_DTYPE).tobytes())
    return shape


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("representative_dataset", __doc__)
    parser.add_argument("--faces", required=True, help="the crop folder (crop_faces)")
    parser.add_argument("--model", required=True, help="the Keras .h5 (for its input size)")
    parser.add_argument("--out", required=True, help="the folder to write (faces.npy, .json)")
    args = parser.parse_args(argv)
    params = section("representative_dataset", SCHEMA, partial=True)
    size = model_input_size(args.model)
    manifest = read_manifest(args.faces)
    if not split_entries(manifest, "train"):
        raise PipelineError("{} lists no train crops: run crop_faces first".format(
            manifest_path(args.faces)))
    with timed(log, "Preprocessing {} crops to {}x{}".format(len(manifest), size[0], size[1])):
        with artifacts.staged_dir(args.out) as temp:
            shape = write_dataset([item["crop"] for item in manifest], args.faces, size,
                                  params["channels"], os.path.join(temp, preprocessed.ARRAY_FILE))
            artifacts.write_json(os.path.join(temp, preprocessed.INDEX_FILE), manifest)
    log.info("Wrote %s: float32 %s", args.out, "x".join(str(d) for d in shape))


if __name__ == "__main__":
    entry.start("representative_dataset", main)
