"""Stage `float_reference`: run the float model on every face with TFLite's reference kernels.

For each preprocessed face (train and val) it records the float embedding and, for every
activation tensor of the float model, the face's minimum and maximum. The reference kernels
do not choose code by CPU features (lib/interpreter.py), so these float numbers are the same
bits on every x86-64 machine; they are the only float computation the later stages use:

- calibrate reduces the per-face ranges of the first `max_samples` train faces to the ranges the
  quantizer needs (so a calibration experiment costs seconds, not this whole pass);
- fidelity compares the int8 embeddings with these float ones.

The faces are shared among one worker process per available core; a face's numbers do not depend
on which worker ran it, so the output does not depend on the number of cores.

Outputs, in the folder `--out`: `reference.json` (the float model's sha256, the kernels, the
tensor names in column order), `minimum.npy` and `maximum.npy` (float32, faces x tensors),
`embeddings.npy` (float32, faces x embedding size), rows in the order of the preprocessed faces.

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu float_reference --model models/facenet_float.tflite \\
        --faces data/preprocessed --out data/float_reference
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.lib import interpreter, preprocessed
from facenet_edgetpu.lib.tflite_edit import activation_tensors, exposing

KERNELS = "TFLite reference kernels (OpResolverType.BUILTIN_REF, one thread per worker)"
FaceResult = Tuple[int, np.ndarray, np.ndarray, np.ndarray]

log = get_logger("float_reference")

_worker = {}  # type: Dict[str, Any]   # per worker process: its interpreter and inputs


def _start_worker(model_path: str, faces_path: str, tensors: Sequence[int]) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _worker["interpreter"] = interpreter.reference_interpreter(model_path)
    _worker["faces"] = np.load(faces_path, mmap_mode="r")
    _worker["tensors"] = list(tensors)


def _run_face(row: int) -> FaceResult:
    """(row, minimum per tensor, maximum per tensor, embedding) of one face."""
    found, tensors = _worker["interpreter"], _worker["tensors"]
    embedding = interpreter.run(found, np.array(_worker["faces"][row:row + 1]))
    lows = np.empty(len(tensors), np.float32)
    highs = np.empty(len(tensors), np.float32)
    for column, index in enumerate(tensors):
        values = found.get_tensor(index)
        lows[column], highs[column] = values.min(), values.max()
    return row, lows, highs, np.asarray(embedding[0], np.float32)


def run_faces(model_path: str, faces_path: str, tensors: Sequence[int], rows: int,
              workers: int) -> List[FaceResult]:
    """Every face's result, in row order, computed by `workers` processes."""
    results = []  # type: List[FaceResult]
    bar = tqdm(total=rows, desc="reference kernels", unit="face", leave=False)
    try:
        if workers <= 1:
            _start_worker(model_path, faces_path, tensors)
            for row in range(rows):
                results.append(_run_face(row))
                bar.update(1)
        else:
            # spawn, not fork: the parent has TensorFlow loaded, which does not survive a fork
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                    workers, mp_context=context, initializer=_start_worker,
                    initargs=(model_path, faces_path, list(tensors))) as pool:
                for result in pool.map(_run_face, range(rows)):
                    results.append(result)
                    bar.update(1)
    finally:
        bar.close()
    return results


def record(model_path: str, faces_dir: str, workers: Optional[int] = None
           ) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
    """(reference.json content, arrays by file name) for every preprocessed face."""
    faces = preprocessed.load(faces_dir)
    with open(model_path, "rb") as handle:
        model = handle.read()
    tensors = activation_tensors(model)
    indices = sorted(tensors)
    workers = max(1, min(workers or interpreter.available_cores(), len(faces.entries)))
    with tempfile.TemporaryDirectory(prefix="float-reference-") as scratch:
        exposed = os.path.join(scratch, "exposed.tflite")
        artifacts.write_bytes(exposed, exposing(model, indices))
        with timed(log, "{} faces through the reference kernels, {} worker(s)".format(
                len(faces.entries), workers)):
            results = run_faces(exposed, os.path.join(faces_dir, preprocessed.ARRAY_FILE),
                                indices, len(faces.entries), workers)
    if [row for row, _, _, _ in results] != list(range(len(faces.entries))):
        raise PipelineError("the reference run lost faces: expected {} rows".format(
            len(faces.entries)))
    arrays = {"minimum.npy": np.stack([r[1] for r in results]),
              "maximum.npy": np.stack([r[2] for r in results]),
              "embeddings.npy": np.stack([r[3] for r in results])}
    info = {"float_model_sha256": artifacts.sha256_of(model_path), "kernels": KERNELS,
            "faces": len(faces.entries), "tensors": [tensors[index] for index in indices]}
    return info, arrays


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("float_reference", __doc__)
    parser.add_argument("--model", required=True, help="the float .tflite (float_model)")
    parser.add_argument("--faces", required=True, help="the preprocessed faces folder")
    parser.add_argument("--out", required=True, help="the folder to write")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    info, arrays = record(args.model, args.faces)
    with artifacts.staged_dir(args.out) as temp:
        artifacts.write_json(os.path.join(temp, "reference.json"), info)
        for name, array in sorted(arrays.items()):
            with open(os.path.join(temp, name), "wb") as handle:
                np.save(handle, np.ascontiguousarray(array, dtype="<f4"), allow_pickle=False)
    log.info("wrote %s: %d faces x %d tensors", args.out, info["faces"], len(info["tensors"]))


if __name__ == "__main__":
    entry.start("float_reference", main)
