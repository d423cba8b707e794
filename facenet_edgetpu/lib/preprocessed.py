"""The preprocessed faces: what representative_dataset writes and the later stages read.

A folder holding `faces.npy` (float32, N x height x width x 3: every crop resized and
pre-whitened, in manifest order) and `faces.json` (the manifest entry of each row).
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, NamedTuple

import numpy as np

from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lib.manifest import read_entries

ARRAY_FILE = "faces.npy"
INDEX_FILE = "faces.json"
WRITER = "representative_dataset"


class PreprocessedFaces(NamedTuple):
    array: np.ndarray                 # memory-mapped, read-only
    entries: List[Dict[str, Any]]     # one per row

    def rows_of(self, split: str) -> List[int]:
        """Row numbers of one split, in order."""
        return [row for row, entry in enumerate(self.entries) if entry["split"] == split]


def load(folder: str) -> PreprocessedFaces:
    """Memory-map the faces and read their entries; a damaged folder is a PipelineError."""
    entries = read_entries(os.path.join(folder, INDEX_FILE), WRITER)
    path = os.path.join(folder, ARRAY_FILE)
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise PipelineError("{} not found: rerun the stage that writes it (dvc repro {})".format(
            path, WRITER)) from None
    except ValueError as error:
        raise PipelineError("{} is not a .npy array ({}): delete {} and rerun {}".format(
            path, error, folder, WRITER)) from None
    if array.dtype != np.float32 or array.ndim != 4 or len(array) != len(entries):
        raise PipelineError("{} holds {} {} for {} entries in {}; expected float32 N x H x W x C "
                            "with one row per entry: delete {} and rerun {}".format(
                                path, array.dtype, "x".join(map(str, array.shape)), len(entries),
                                INDEX_FILE, folder, WRITER))
    return PreprocessedFaces(array, entries)
