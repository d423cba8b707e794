"""The crop manifest: what crop_faces writes and the stages that read the faces share.

`<faces>/manifest.json` lists every crop in crop order: {"crop": "<split>/<person>/<photo file
name>.png", "person", "photo", "box": [x, y, w, h], "split"}; the crops sit beside it.
"""
from __future__ import annotations

import collections
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence

from facenet_edgetpu.core import artifacts
from facenet_edgetpu.core.errors import PipelineError

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val")
ENTRY_KEYS = ("box", "crop", "person", "photo", "split")


def manifest_path(faces_dir: str) -> str:
    return os.path.join(faces_dir, MANIFEST_NAME)


def read_manifest(faces_dir: str) -> List[Dict[str, Any]]:
    """The manifest's entries, checked for the keys the readers use."""
    return read_entries(manifest_path(faces_dir), "crop_faces")


def read_entries(path: str, stage: str) -> List[Dict[str, Any]]:
    """A list of manifest entries written by `stage`, checked for the keys the readers use."""
    entries = artifacts.read_json(path, stage)
    if not isinstance(entries, list) or not all(
            isinstance(entry, dict) and set(ENTRY_KEYS) <= set(entry) for entry in entries):
        raise PipelineError("{} is not a crop manifest (a list of entries with {}): delete it and "
                            "run {} again".format(path, ", ".join(ENTRY_KEYS), stage))
    return entries


def split_entries(manifest: Sequence[Mapping[str, Any]], split: str) -> List[Mapping[str, Any]]:
    """The entries of one split, in manifest (crop) order."""
    return [entry for entry in manifest if entry["split"] == split]


def verification_shortfall(people: Sequence[str], unit: str = "face") -> Optional[str]:
    """Why val items of these people (one name per face or photo) cannot evaluate face
    verification, or None when they can: it needs at least two people, and two items of one
    person (a same-person pair). crop_faces checks it on the val photos and crops, so a split
    that cannot be evaluated stops the pipeline before any model work."""
    counts = collections.Counter(people)
    if len(counts) >= 2 and max(counts.values()) >= 2:
        return None
    return ("{} {}{} of {} {}; the fidelity stage's face verification needs {}s of at least two "
            "people and two {}s of one person".format(
                len(people), unit, "" if len(people) == 1 else "s", len(counts),
                "person" if len(counts) == 1 else "people", unit, unit))
