"""Read what a Keras h5 file says about its model, without building the model."""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Tuple

import h5py

from stages.lib.errors import PipelineError


class KerasFileError(PipelineError, ValueError):
    """A file given as a Keras model is missing, not HDF5, or holds no Keras model."""


def read_model_config(h5_path: str) -> Dict[str, Any]:
    """The `model_config` JSON of a Keras h5 file (bytes or str, whatever h5py returns)."""
    if not os.path.isfile(h5_path):
        raise KerasFileError("{}: no such file. Set inputs.model in params.yaml to your Keras "
                             ".h5 model, or run fetch_inputs for the default one.".format(h5_path))
    if not h5py.is_hdf5(h5_path):
        raise KerasFileError("{}: not an HDF5 file, so not a Keras .h5 model (SavedModel "
                             "folders and .keras archives are not supported).".format(h5_path))
    with h5py.File(h5_path, "r") as handle:
        raw = handle.attrs.get("model_config")
    if raw is None:
        raise KerasFileError("{}: HDF5 file without a 'model_config' attribute: it holds no "
                             "Keras model (weights-only files are not enough).".format(h5_path))
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def model_input_size(h5_path: str) -> Tuple[int, int]:
    """(height, width) of the model's single image input."""
    config = read_model_config(h5_path)
    layers = config.get("config", {}).get("layers", [])
    shapes = [layer["config"].get("batch_input_shape") for layer in layers
              if layer.get("class_name") == "InputLayer"]
    if len(shapes) != 1 or not shapes[0] or len(shapes[0]) != 4 or None in shapes[0][1:3]:
        raise KerasFileError("{}: expected one image input of shape (batch, height, width, 3), "
                             "found {}".format(h5_path, shapes))
    return int(shapes[0][1]), int(shapes[0][2])
