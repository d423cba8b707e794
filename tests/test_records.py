"""The typed shapes of the stage output files (facenet_edgetpu/lib/records.py).

The files read here are real: the committed outputs of the stages, and a manifest and crop
counts the crop_faces stage writes from the default photos. Malformed files are made by
changing one thing in a real one.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pytest

from facenet_edgetpu.core import artifacts
from facenet_edgetpu.core.artifacts import ArtifactError
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lib import records
from facenet_edgetpu.stages import crop_faces
from tests.report_helpers import CROPS, FIDELITY, QUANTIZATION

COMMITTED = [(records.CropMetrics, CROPS), (records.Quantization, QUANTIZATION),
             (records.Fidelity, FIDELITY)]


def committed(path):
    with open(path, "r", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.parametrize("record, path", COMMITTED)
def test_committed_outputs_load_and_write_back_byte_for_byte(record, path, tmp_path):
    loaded = record.load(path)
    assert loaded.to_dict() == committed(path)
    copy_path = str(tmp_path / "copy.json")
    loaded.save(copy_path)
    with open(copy_path, "rb") as mine, open(path, "rb") as theirs:
        assert mine.read() == theirs.read()


def test_fields_are_typed_values_not_dicts():
    fidelity = records.Fidelity.load(FIDELITY)
    assert fidelity.vs_float["int8"].cosine_min == committed(FIDELITY)["vs_float"]["int8"][
        "cosine_min"]
    assert isinstance(fidelity.variants["float"], records.VariantMetrics)
    quantization = records.Quantization.load(QUANTIZATION)
    assert quantization.input.shape == [1, 160, 160, 3]
    assert quantization.lambda_layers["Block35_1_ScaleSum"].origin == "translated"
    assert records.CropMetrics.load(CROPS).splits["val"].cropped == 25


def test_crop_faces_output_has_the_record_shapes(default_inputs, tmp_path):
    """What the crop_faces stage writes from real photos reads back unchanged."""
    _, photos = default_inputs
    params = dict(scale_factor=1.1, min_neighbors=3, min_size=40, margin=10, max_faces=8,
                  min_faces=1, seed=0)
    manifest, metrics = crop_faces.crop_all(photos, str(tmp_path / "faces"), params)
    assert len(manifest) == 16
    parsed = records.Manifest.from_dict(json.loads(artifacts.json_text(manifest)), "manifest")
    assert parsed.to_dict() == manifest
    assert [entry.crop for entry in parsed.split("val")] == [
        entry["crop"] for entry in manifest if entry["split"] == "val"]
    counts = records.CropMetrics.from_dict(json.loads(artifacts.json_text(metrics)), "crops")
    assert counts.to_dict() == metrics


def broken(path, change):
    data = copy.deepcopy(committed(path))
    change(data)
    return data


@pytest.mark.parametrize("record, path, change, expected", [
    (records.Fidelity, FIDELITY, lambda d: d["variants"]["int8"].update(auc="0.9"),
     "variants.int8.auc: expected a number, found a string ('0.9')"),
    (records.Fidelity, FIDELITY, lambda d: d["counts"].pop("pairs"),
     "counts.pairs: key missing"),
    (records.Fidelity, FIDELITY, lambda d: d["counts"].update(pairs=True),
     "counts.pairs: expected an integer, found a boolean (True)"),
    (records.Fidelity, FIDELITY, lambda d: d["counts"].update(people=5.0),
     "counts.people: expected an integer, found a number (5.0)"),
    (records.Fidelity, FIDELITY, lambda d: d.update(latency_ms=3.0),
     "unknown key(s) 'latency_ms'"),
    (records.Quantization, QUANTIZATION, lambda d: d["input"].update(shape=[1, "160"]),
     "input.shape[1]: expected an integer, found a string ('160')"),
    (records.Quantization, QUANTIZATION, lambda d: d.update(operators=[["CONV_2D", 1]]),
     "operators: expected a mapping, found a list"),
    (records.CropMetrics, CROPS, lambda d: d["val"].pop("read"), "val.read: key missing"),
    (records.CropMetrics, CROPS, lambda d: d.update(test=7), "test: expected a mapping"),
])
def test_a_wrong_shape_names_the_file_the_key_and_the_stage(record, path, change, expected):
    with pytest.raises(records.RecordError) as caught:
        record.from_dict(broken(path, change), path)
    message = str(caught.value)
    assert message.startswith(path + ": ") and expected in message
    assert "dvc repro {}".format(record.WRITER) in message
    assert isinstance(caught.value, PipelineError) and "\n" not in message


def test_the_wrong_file_or_no_file_is_one_clear_error(tmp_path):
    with pytest.raises(records.RecordError, match=r"fidelity\.json: .*unknown key"):
        records.Fidelity.from_dict(committed(QUANTIZATION), "fidelity.json")
    with pytest.raises(records.RecordError, match=r"quantization\.json: expected a mapping"):
        records.Quantization.from_dict([], "quantization.json")
    missing = str(tmp_path / "nowhere.json")
    with pytest.raises(ArtifactError, match="nowhere.json not found: .*dvc repro fidelity"):
        records.Fidelity.load(missing)
    cut = tmp_path / "cut.json"
    cut.write_text(open(FIDELITY).read()[:100], encoding="utf-8")
    with pytest.raises(ArtifactError, match="cut.json is not valid JSON"):
        records.Fidelity.load(str(cut))


def test_a_record_of_the_wrong_shape_is_not_written(tmp_path):
    fidelity = records.Fidelity.load(FIDELITY)
    fidelity.counts.pairs = np.int64(300)  # what a writer could pass by mistake
    target = tmp_path / "fidelity.json"
    with pytest.raises(records.RecordError, match=r"being written\): counts\.pairs: expected an "
                                                  r"integer, found int64"):
        fidelity.save(str(target))
    assert not target.exists()


def test_a_new_optional_key_is_one_line():
    @dataclass
    class QuantizationWithFloat(records.Quantization):
        float_tflite_bytes: Optional[int] = None

    older = QuantizationWithFloat.from_dict(committed(QUANTIZATION), QUANTIZATION)
    assert older.float_tflite_bytes is None
    assert older.to_dict() == committed(QUANTIZATION)  # not written while unknown
    newer = dict(committed(QUANTIZATION), float_tflite_bytes=91217608)
    assert QuantizationWithFloat.from_dict(newer, "q.json").to_dict() == newer
    with pytest.raises(records.RecordError, match="float_tflite_bytes: expected an integer"):
        QuantizationWithFloat.from_dict(dict(newer, float_tflite_bytes="big"), "q.json")
