"""The calibration array: train crops only, resized and pre-whitened like the seed."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from facenet_edgetpu.stages import crop_faces, representative_dataset
from facenet_edgetpu.core import artifacts
from facenet_edgetpu.lib import faces, preprocessed
from facenet_edgetpu.lib.manifest import manifest_path
from tests.hostile import keras_like_h5
from facenet_edgetpu.lib.keras_h5 import KerasFileError, model_input_size

PARAMS = dict(scale_factor=1.1, min_neighbors=3, min_size=40, margin=10, max_faces=6,
              min_faces=1, seed=0)


def test_dataset_holds_every_crop_preprocessed_in_manifest_order(default_inputs, tmp_path,
                                                                 monkeypatch):
    _, photos = default_inputs
    faces_dir = str(tmp_path / "faces")
    manifest, _ = crop_faces.crop_all(photos, faces_dir, PARAMS)
    artifacts.write_json(manifest_path(faces_dir), manifest)
    assert {entry["split"] for entry in manifest} == {"train", "val"}
    crops = [entry["crop"] for entry in manifest]
    (tmp_path / "params.yaml").write_text("representative_dataset:\n  channels: rgb\n"
                                          "  max_samples: 4\n")
    monkeypatch.chdir(str(tmp_path))
    h5 = keras_like_h5(str(tmp_path / "model.h5"), weight_bytes=4096)
    representative_dataset.main(["--faces", faces_dir, "--model", h5, "--out", "out"])
    loaded = preprocessed.load("out")
    assert loaded.array.dtype == np.float32 and loaded.array.shape == (len(crops), 160, 160, 3)
    assert [entry["crop"] for entry in loaded.entries] == crops
    assert loaded.rows_of("train") == [row for row, entry in enumerate(manifest)
                                       if entry["split"] == "train"]
    for row in (0, len(crops) - 1):
        expected = faces.model_input(faces.read_image(os.path.join(faces_dir, crops[row]), "rgb"),
                                     (160, 160))
        np.testing.assert_array_equal(loaded.array[row], expected)
    assert sorted(os.listdir("out")) == sorted([preprocessed.ARRAY_FILE, preprocessed.INDEX_FILE])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_bad_crop_leaves_no_partial_array(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "bad.png").write_bytes(b"not a png")
    path = str(tmp_path / "faces.npy")
    with pytest.raises(faces.ImageError, match="bad.png: not a readable image"):
        representative_dataset.write_dataset(["train/bad.png"], str(tmp_path), (8, 8), "rgb", path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]


def test_model_input_size_of_the_real_model(facenet_h5):
    assert model_input_size(facenet_h5) == (160, 160)


def test_not_a_keras_model_is_refused_clearly(tmp_path):
    text = tmp_path / "model.h5"
    text.write_text("hello")
    with pytest.raises(KerasFileError, match="model.h5 is not an HDF5 file"):
        model_input_size(str(text))
    weights_only = str(tmp_path / "weights.h5")
    with h5py.File(weights_only, "w") as handle:
        handle.create_dataset("w", data=np.zeros(3))
    with pytest.raises(KerasFileError,
                       match="weights.h5 is an HDF5 file but not a saved Keras model"):
        model_input_size(weights_only)
    with pytest.raises(KerasFileError, match="not found: .*missing.h5. Set inputs.model"):
        model_input_size(str(tmp_path / "missing.h5"))
