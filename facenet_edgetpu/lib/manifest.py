"""The crop manifest: what crop_faces writes and the stages that read the faces share.

`<faces>/manifest.json` lists every crop in crop order: {"crop": "<split>/<person>/<name>.png",
"person", "photo", "box": [x, y, w, h], "split"}; the crops sit beside it.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Sequence

from facenet_edgetpu.core import artifacts
from facenet_edgetpu.core.errors import PipelineError

MANIFEST_NAME = "manifest.json"
SPLITS = ("train", "val")
ENTRY_KEYS = ("box", "crop", "person", "photo", "split")


def manifest_path(faces_dir: str) -> str:
    return os.path.join(faces_dir, MANIFEST_NAME)


def read_manifest(faces_dir: str) -> List[Dict[str, Any]]:
    """The manifest's entries, checked for the keys the readers use."""
    path = manifest_path(faces_dir)
    entries = artifacts.read_json(path, "crop_faces")
    if not isinstance(entries, list) or not all(
            isinstance(entry, dict) and set(ENTRY_KEYS) <= set(entry) for entry in entries):
        raise PipelineError("{} is not a crop manifest (a list of entries with {}): delete it and "
                            "run crop_faces again".format(path, ", ".join(ENTRY_KEYS)))
    return entries


def split_entries(manifest: Sequence[Mapping[str, Any]], split: str) -> List[Mapping[str, Any]]:
    """The entries of one split, in manifest (crop) order."""
    return [entry for entry in manifest if entry["split"] == split]
