"""Stage `calibrate`: the activation ranges of the representative dataset, written into the
float model for the quantizer.

The representative dataset is the first `representative_dataset.max_samples` train faces (in
crop order; val faces never calibrate). Each activation tensor's range is the minimum and
maximum over those faces of what the reference run recorded (stage float_reference), so this
stage runs no model: a calibration experiment (`dvc exp run -S
representative_dataset.max_samples=10`) costs seconds.

Outputs:
    --ranges  every tensor's range, sorted by tensor name, with the faces used (records.
              CalibrationRanges): a small text file kept in git, so `git diff` shows which
              tensors moved when the calibration changes;
    --out     the float model with those ranges in its tensors' quantization parameters,
              which the quantize stage turns into the full-integer model.

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu calibrate --model models/facenet_float.tflite \\
        --reference data/float_reference --faces data/preprocessed \\
        --ranges models/calibration_ranges.json --out models/facenet_calibrated.tflite
"""
from __future__ import annotations

import os
from typing import Dict, List, Sequence, Tuple

import numpy as np

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger
from facenet_edgetpu.core.params import Field, section
from facenet_edgetpu.lib import preprocessed, records
from facenet_edgetpu.lib.tflite_edit import with_ranges

# Read from the representative_dataset section: that is where users look for the size of the
# representative dataset (`dvc exp run -S representative_dataset.max_samples=N`).
SCHEMA = {
    "max_samples": Field(int, low=1, high=100000),
}
REFERENCE_INFO = "reference.json"

log = get_logger("calibrate")


class CalibrationError(PipelineError):
    """The reference run does not fit the model or the faces; the message says what to rerun."""


def calibration_rows(faces: preprocessed.PreprocessedFaces, max_samples: int) -> List[int]:
    """Rows of the representative dataset: the first `max_samples` train faces."""
    rows = faces.rows_of("train")[:max_samples]
    if not rows:
        raise CalibrationError("the preprocessed faces hold no train face to calibrate with: "
                               "add train photos and rerun crop_faces")
    return rows


def reduce_ranges(minimum: np.ndarray, maximum: np.ndarray, rows: Sequence[int],
                  names: Sequence[str]) -> Dict[str, Tuple[float, float]]:
    """name -> (min, max) over `rows` of the per-face ranges (exact: min and max only)."""
    lows = minimum[list(rows)].min(axis=0)
    highs = maximum[list(rows)].max(axis=0)
    return {name: (float(low), float(high)) for name, low, high in zip(names, lows, highs)}


def read_reference(folder: str, model_path: str) -> Tuple[dict, np.ndarray, np.ndarray]:
    """(reference.json, minimum, maximum) of a reference run made on `model_path`."""
    info = artifacts.read_json(os.path.join(folder, REFERENCE_INFO), "float_reference")
    arrays = []
    for name in ("minimum.npy", "maximum.npy"):
        try:
            arrays.append(np.load(os.path.join(folder, name), allow_pickle=False))
        except (OSError, ValueError) as error:
            raise CalibrationError("cannot read {} ({}): rerun float_reference".format(
                os.path.join(folder, name), error)) from None
    if info.get("float_model_sha256") != artifacts.sha256_of(model_path):
        raise CalibrationError("{} was recorded on another float model than {}: rerun "
                               "float_reference (dvc repro does)".format(folder, model_path))
    return info, arrays[0], arrays[1]


def calibrate(model_path: str, reference_dir: str, faces_dir: str, max_samples: int
              ) -> Tuple[records.CalibrationRanges, bytes]:
    """(the ranges record, the float model carrying them)."""
    info, minimum, maximum = read_reference(reference_dir, model_path)
    faces = preprocessed.load(faces_dir)
    if minimum.shape != (len(faces.entries), len(info["tensors"])) or \
            maximum.shape != minimum.shape:
        raise CalibrationError("{} holds {} rows for {} preprocessed faces: rerun "
                               "float_reference".format(reference_dir, len(minimum),
                                                        len(faces.entries)))
    rows = calibration_rows(faces, max_samples)
    ranges = reduce_ranges(minimum, maximum, rows, info["tensors"])
    record = records.CalibrationRanges(
        float_model_sha256=info["float_model_sha256"], kernels=info["kernels"],
        faces=[faces.entries[row]["crop"] for row in rows],
        tensors={name: records.TensorRange(low, high)
                 for name, (low, high) in sorted(ranges.items())})
    with open(model_path, "rb") as handle:
        calibrated = with_ranges(handle.read(), ranges)
    return record, calibrated


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("calibrate", __doc__)
    parser.add_argument("--model", required=True, help="the float .tflite (float_model)")
    parser.add_argument("--reference", required=True, help="the float_reference folder")
    parser.add_argument("--faces", required=True, help="the preprocessed faces folder")
    parser.add_argument("--ranges", required=True, help="the ranges JSON to write")
    parser.add_argument("--out", required=True, help="the calibrated float .tflite to write")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    params = section("representative_dataset", SCHEMA, partial=True)
    record, calibrated = calibrate(args.model, args.reference, args.faces,
                                   params["max_samples"])
    artifacts.write_bytes(args.out, calibrated)
    record.save(args.ranges)
    log.info("ranges of %d tensors over %d train faces -> %s, %s", len(record.tensors),
             len(record.faces), args.ranges, args.out)


if __name__ == "__main__":
    entry.start("calibrate", main)
