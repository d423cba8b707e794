"""Read what a Keras h5 file says about its model, without building the model.

Every stage that reads the Keras model comes here first (`read_model_config`), so a file that is
missing, not HDF5, cut short or damaged is refused here with one message, before TensorFlow
starts.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Tuple

import h5py

from facenet_edgetpu.core.errors import PipelineError


class KerasFileError(PipelineError, ValueError):
    """A file given as a Keras model is missing, not HDF5, or holds no Keras model."""


# What HDF5 says when a file is shorter than its superblock records (h5py 2.10 and 3.x alike):
# "... (truncated file: eof = 1048576, sblock->base_addr = 0, stored_eof = 92397640)".
_TRUNCATED = re.compile(r"truncated file: eof = (\d+),.*stored_eof = (\d+)")


def _unreadable(h5_path: str, error: OSError) -> KerasFileError:
    """The error for an HDF5 file that h5py cannot open: cut short, or damaged otherwise."""
    truncated = _TRUNCATED.search(str(error))
    if truncated:
        return KerasFileError(
            "{} is cut short: it holds {} bytes, but its HDF5 header says the file has {} "
            "bytes. The copy or download that made it was interrupted: copy the model again "
            "(the default one: set inputs.model to models/facenet_keras.h5 and run "
            "fetch_inputs).".format(h5_path, truncated.group(1), truncated.group(2)))
    return KerasFileError(
        "{} is a damaged HDF5 file: h5py cannot read it ({}). Replace it with an intact copy "
        "of the model (the default one: set inputs.model to models/facenet_keras.h5 and run "
        "fetch_inputs).".format(h5_path, error))


def read_model_config(h5_path: str) -> Dict[str, Any]:
    """The `model_config` of a Keras h5 file, as a dict (bytes or str, whatever h5py returns)."""
    if not os.path.exists(h5_path):
        raise KerasFileError("Keras model file not found: {}. Set inputs.model in params.yaml "
                             "to your .h5 model, or run fetch_inputs for the default one.".format(
                                 h5_path))
    if os.path.isdir(h5_path):
        raise KerasFileError("{} is a directory, not a Keras .h5 file (SavedModel directories "
                             "are not supported; save the model with model.save('x.h5')).".format(
                                 h5_path))
    if not h5py.is_hdf5(h5_path):
        with open(h5_path, "rb") as handle:
            head = handle.read(16)
        raise KerasFileError("{} is not an HDF5 file, so not a Keras .h5 model (its first bytes: "
                             "{!r}).".format(h5_path, head))
    try:
        with h5py.File(h5_path, "r") as handle:
            raw = handle.attrs.get("model_config")
            groups = sorted(handle.keys())
    except OSError as error:  # h5py reports every HDF5 library error as an OSError
        raise _unreadable(h5_path, error) from error
    if raw is None:
        raise KerasFileError(
            "{} is an HDF5 file but not a saved Keras model: it has no 'model_config' attribute "
            "(top-level groups: {}). A weights-only file (model.save_weights) cannot be loaded "
            "without the code that builds the model; save it with model.save().".format(
                h5_path, ", ".join(groups) or "none"))
    if hasattr(raw, "tobytes") and not isinstance(raw, (bytes, str)):
        raw = raw.tobytes()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        config = json.loads(raw)
    except ValueError as error:
        raise KerasFileError("{}: 'model_config' is not valid JSON ({})".format(
            h5_path, error)) from error
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise KerasFileError("{}: 'model_config' is not a Keras model config".format(h5_path))
    return config


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
