"""Crop calibration faces from the train photos (and evaluation faces from the val photos).

Follows the seed's rules: OpenCV's Haar cascade `haarcascade_frontalface_alt2.xml` (the copy
inside opencv-python), keep the widest detection, add a margin (half on each side), skip a
photo whose margin box leaves the image. Photos are tried in a seeded shuffled order and at
most `max_faces` crops are kept per split. Val crops are written apart: they are for
evaluation and never used for calibration.

The photos folder's layout is checked before any photo is cropped (`check_layout`).

Outputs: <faces>/{train,val}/<person>/<photo file name>.png (`dup.jpg` -> `dup.jpg.png`, so no
two photos share a crop), <faces>/manifest.json (every crop, in crop order, with its source and
box; lib/manifest.py) and the crop metrics (photos read, cropped, and skipped for each reason).

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu crop_faces --photos data/photos --faces data/faces \
        --metrics reports/crop_metrics.json
"""
from __future__ import annotations

import os
import random
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, section
from facenet_edgetpu.lib.manifest import (
    SPLITS, manifest_path, split_entries, verification_shortfall)

CASCADE_FILE = "haarcascade_frontalface_alt2.xml"

SCHEMA = {
    "scale_factor": Field(float, low=1.01, high=2.0),
    "min_neighbors": Field(int, low=0, high=50),
    "min_size": Field(int, low=16, high=4096),
    "margin": Field(int, low=0, high=200),
    "max_faces": Field(int, low=1, high=100000),
    "min_faces": Field(int, low=1, high=100000),
    "seed": Field(int, low=0),
}

# Why a photo gave no crop; the keys of the metrics file.
UNREADABLE = "unreadable"
NO_FACE = "no_face"
MARGIN_OUTSIDE = "margin_outside_image"

log = get_logger("crop_faces")


class CropError(PipelineError, RuntimeError):
    """The photos could not give the calibration faces the pipeline needs."""


Box = Tuple[int, int, int, int]  # x, y, width, height


def load_cascade() -> cv2.CascadeClassifier:
    """The frontal-face cascade that ships with opencv-python."""
    path = os.path.join(cv2.data.haarcascades, CASCADE_FILE)
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise CropError("OpenCV could not load its cascade {}: reinstall opencv-python "
                        "(make repro recreates the environment)".format(path))
    return cascade


def widest(faces: Sequence[Sequence[int]]) -> Optional[Box]:
    """The detection with the largest width (the first one on ties, as in the seed)."""
    best = None
    for face in faces:
        if best is None or face[2] > best[2]:
            best = tuple(int(v) for v in face)
    return best


def margin_box(face: Box, margin: int, image_shape: Sequence[int]) -> Optional[Box]:
    """Grow the face box by `margin` px (half each side); None if that leaves the image."""
    x, y, w, h = face
    half = margin // 2
    left, top, right, bottom = x - half, y - half, x + w + half, y + h + half
    height, width = image_shape[0], image_shape[1]
    if left < 0 or top < 0 or right > width or bottom > height:
        return None
    return left, top, right - left, bottom - top


def detect_face(image: np.ndarray, cascade: cv2.CascadeClassifier, scale_factor: float,
                min_neighbors: int, min_size: int, margin: int) -> Tuple[Optional[Box], str]:
    """Return (crop box, "") or (None, reason) for one BGR image."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    faces = cascade.detectMultiScale(gray, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                     minSize=(min_size, min_size))
    face = widest(faces)
    if face is None:
        return None, NO_FACE
    box = margin_box(face, margin, image.shape)
    if box is None:
        return None, MARGIN_OUTSIDE
    return box, ""


LAYOUT = ("the photos folder (inputs.photos in params.yaml) must hold train/<person>/ and "
          "val/<person>/, one folder of photos per person (see README, 'Your own model and "
          "photos')")


def _visible(names: Sequence[str]) -> List[str]:
    """Sorted names without hidden ones (.DS_Store, ._* and the like are not photos)."""
    return sorted(name for name in names if not name.startswith("."))


def person_photos(photos_dir: str, split: str) -> Dict[str, List[str]]:
    """<person> -> its photos (sorted paths relative to photos_dir) in <photos>/<split>/."""
    split_dir = os.path.join(photos_dir, split)
    if not os.path.isdir(split_dir):
        raise CropError("{} is missing: {}".format(split_dir, LAYOUT))
    people = {}
    for person in _visible(os.listdir(split_dir)):
        person_dir = os.path.join(split_dir, person)
        if not os.path.isdir(person_dir):
            raise CropError("{}: photos must sit in {}/<person>/, one folder per person".format(
                person_dir, split_dir))
        found = []
        for root, dirs, files in os.walk(person_dir):
            dirs[:] = _visible(dirs)
            for name in _visible(files):
                if root != person_dir:
                    raise CropError("{}: photos must sit directly in {}/<person>/, not in "
                                    "subfolders".format(os.path.join(root, name), split_dir))
                found.append(os.path.relpath(os.path.join(root, name), photos_dir))
        people[person] = sorted(found)
    return people


def crop_name(photo: str) -> str:
    """The crop of photo <split>/<person>/<file> is <split>/<person>/<file>.png: the photo's whole
    file name is kept, so two photos never share a crop (dup.jpg and dup.png give dup.jpg.png
    and dup.png.png), and a crop's name depends on its photo alone."""
    return photo.replace(os.sep, "/") + ".png"


def check_layout(photos_dir: str) -> Dict[str, List[str]]:
    """split -> its photos (sorted paths relative to photos_dir), once the layout is checked:
    both splits present, every person folder holding photos, and val photos of enough people for
    the fidelity stage's evaluation. Nothing is cropped before this passes, so a bad layout costs
    no work (and no stage is recorded before the one that would fail)."""
    if not os.path.isdir(photos_dir):
        raise CropError("{} {}: {} (the default photos: run fetch_inputs)".format(
            photos_dir, "is not a folder" if os.path.exists(photos_dir) else "not found", LAYOUT))
    layout = {}
    for split in SPLITS:
        people = person_photos(photos_dir, split)
        split_dir = os.path.join(photos_dir, split)
        if not people:
            raise CropError("{} holds no person folders: {}".format(split_dir, LAYOUT))
        empty = [os.path.join(split_dir, person) for person, found in people.items() if not found]
        if empty:
            raise CropError("{} {}".format(", ".join(empty), (
                "holds no photos: put the person's photos in it, or remove it" if len(empty) == 1
                else "hold no photos: put each person's photos in their folder, or remove the "
                     "empty folders")))
        layout[split] = sorted(photo for found in people.values() for photo in found)
    shortfall = verification_shortfall(
        [photo.split(os.sep)[1] for photo in layout["val"]], "photo")
    if shortfall:
        raise CropError("{} holds {}. Add val photos (one folder per person).".format(
            os.path.join(photos_dir, "val"), shortfall))
    return layout


def crop_split(photos_dir: str, split: str, photos: Sequence[str], out_dir: str,
               cascade: cv2.CascadeClassifier, params: Dict) -> Tuple[List[Dict], Dict[str, int]]:
    """Crop one split's photos into out_dir/<split>/<person>/; return (manifest entries,
    counts)."""
    photos = list(photos)
    random.Random(params["seed"]).shuffle(photos)
    counts = {"photos": len(photos), "read": 0, "cropped": 0,
              UNREADABLE: 0, NO_FACE: 0, MARGIN_OUTSIDE: 0}
    entries = []
    for relative in tqdm(photos, desc="crop " + split, unit="photo", leave=False):
        if counts["cropped"] >= params["max_faces"]:
            break
        image = cv2.imread(os.path.join(photos_dir, relative), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("Skipping %s: not a readable image", os.path.join(photos_dir, relative))
            counts[UNREADABLE] += 1
            continue
        counts["read"] += 1
        box, reason = detect_face(image, cascade, params["scale_factor"], params["min_neighbors"],
                                  params["min_size"], params["margin"])
        if box is None:
            counts[reason] += 1
            continue
        x, y, w, h = box
        person = relative.split(os.sep)[1]
        crop = crop_name(relative)
        os.makedirs(os.path.join(out_dir, split, person), exist_ok=True)
        if not cv2.imwrite(os.path.join(out_dir, crop), image[y:y + h, x:x + w]):
            raise CropError("OpenCV could not write the crop {}: check that the disk holding "
                            "{} has space left".format(
                                crop, os.path.dirname(os.path.abspath(out_dir))))
        entries.append({"crop": crop, "person": person, "photo": relative.replace(os.sep, "/"),
                        "box": [x, y, w, h], "split": split})
        counts["cropped"] += 1
    counts["not_tried"] = counts["photos"] - counts["read"] - counts[UNREADABLE]
    return entries, counts


def crop_all(photos_dir: str, out_dir: str, params: Dict) -> Tuple[List[Dict], Dict]:
    """Crop both splits into out_dir; refuse when train gives fewer than min_faces crops, or
    val too few faces for the fidelity stage's evaluation."""
    layout = check_layout(photos_dir)
    cascade = load_cascade()
    manifest, metrics = [], {}
    for split in SPLITS:
        entries, counts = crop_split(photos_dir, split, layout[split], out_dir, cascade, params)
        manifest.extend(entries)
        metrics[split] = counts
        log.info("%s: %d photos, %d cropped, %d without a face, %d with the margin outside, "
                 "%d unreadable", split, counts["photos"], counts["cropped"], counts[NO_FACE],
                 counts[MARGIN_OUTSIDE], counts[UNREADABLE])
    train = metrics["train"]
    if train["cropped"] < params["min_faces"]:
        raise CropError(
            "Only {} faces were cropped from the {} photos in {}, and crop_faces.min_faces is {}. "
            "Add photos, or loosen the detector in params.yaml (crop_faces.min_size is {} px, "
            "crop_faces.min_neighbors is {}).".format(
                train["cropped"], train["photos"], os.path.join(photos_dir, "train"),
                params["min_faces"], params["min_size"], params["min_neighbors"]))
    shortfall = verification_shortfall([e["person"] for e in split_entries(manifest, "val")],
                                       "face")
    if shortfall:
        raise CropError(
            "{} gave {}. Add val photos, or loosen the detector in "
            "params.yaml (crop_faces.min_size is {} px, crop_faces.min_neighbors is {}).".format(
                os.path.join(photos_dir, "val"), shortfall, params["min_size"],
                params["min_neighbors"]))
    return manifest, metrics


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("crop_faces", __doc__)
    parser.add_argument("--photos", required=True, help="<photos>/{train,val}/<person>/*.jpg")
    parser.add_argument("--faces", required=True, help="the folder of crops to write")
    parser.add_argument("--metrics", required=True, help="the crop metrics JSON to write")
    args = parser.parse_args(argv)
    params = section("crop_faces", SCHEMA)
    with timed(log, "Cropping faces from {}".format(args.photos)):
        with artifacts.staged_dir(args.faces) as temp:
            manifest, metrics = crop_all(args.photos, temp, params)
            artifacts.write_json(manifest_path(temp), manifest)
    artifacts.write_json(args.metrics, metrics)


if __name__ == "__main__":
    entry.start("crop_faces", main)
