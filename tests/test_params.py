"""params.yaml values of the wrong type or out of range stop a stage with a clear message."""
from __future__ import annotations

import importlib
import shutil
import subprocess
import sys

import pytest
import yaml

from facenet_edgetpu.stages import crop_faces
from facenet_edgetpu.core.entry import STAGES
from facenet_edgetpu.core.params import Field, ParamsError, load_params, section

SCHEMA = {"count": Field(int, low=1, high=10), "ratio": Field(float, low=1.0),
          "kind": Field(str, choices=("uint8", "int8")),
          "extra": Field(dict, optional=True, default={})}


@pytest.mark.parametrize("values, message", [
    ({"count": "3", "ratio": 1.5, "kind": "uint8"},
     r"'s.count' must be int from 1 to 10, got '3' \(str\)"),
    ({"count": 0, "ratio": 1.5, "kind": "uint8"}, r"'s.count' must be int from 1 to 10, got 0"),
    ({"count": True, "ratio": 1.5, "kind": "uint8"}, r"'s.count' must be int .* got True \(bool\)"),
    ({"count": 3, "ratio": 0.5, "kind": "uint8"}, r"'s.ratio' must be float >= 1.0, got 0.5"),
    ({"count": 3, "ratio": 1.5, "kind": "float16"}, r"'s.kind' must be one of 'uint8', 'int8'"),
    ({"count": 3, "ratio": 1.5}, r"'s.kind' is missing"),
    ({"count": 3, "ratio": 1.5, "kind": "int8", "cuont": 1}, r"unknown key\(s\) cuont"),
])
def test_bad_values_are_refused_with_the_key_and_the_rule(values, message):
    with pytest.raises(ParamsError, match=message):
        section("s", SCHEMA, {"s": values})


def test_good_values_pass_and_ints_widen_to_float():
    checked = section("s", SCHEMA, {"s": {"count": 3, "ratio": 2, "kind": "int8"}})
    assert checked == {"count": 3, "ratio": 2.0, "kind": "int8", "extra": {}}
    assert isinstance(checked["ratio"], float)


def test_missing_section_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="section 'crop_faces' is missing"):
        section("crop_faces", crop_faces.SCHEMA, {"other": {}})
    bad = tmp_path / "params.yaml"
    bad.write_text("crop_faces: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(str(bad))


# (stage, the params.yaml section its SCHEMA reads): calibrate reads the size of the
# representative dataset from representative_dataset, where users look for it.
READERS = [(name, name) for name in STAGES if name != "calibrate"] + [
    ("calibrate", "representative_dataset")]


def test_the_repository_params_pass_every_stage_schema_and_every_key_is_read():
    params = load_params()
    read = {}
    for stage, name in READERS:
        schema = getattr(importlib.import_module("facenet_edgetpu.stages." + stage), "SCHEMA",
                         None)
        if schema is not None:
            section(name, schema, params, partial=True)
            read.setdefault(name, set()).update(schema)
    assert {"fetch_inputs", "crop_faces", "representative_dataset", "float_model", "quantize",
            "compile"} <= set(read)
    for name, keys in read.items():
        assert set(params[name]) == keys, name


def test_a_stage_with_a_bad_param_fails_cleanly_before_writing(tmp_path):
    params = load_params()
    params["crop_faces"]["min_size"] = "big"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy("dvc.yaml", str(tmp_path / "dvc.yaml"))
    subprocess.run([sys.executable, "-m", "facenet_edgetpu", "toolchain"], cwd=str(tmp_path),
                   check=True, stdout=subprocess.DEVNULL)
    done = subprocess.run([sys.executable, "-m", "facenet_edgetpu", "crop_faces", "--photos",
                           "photos", "--faces", "faces", "--metrics", "crop_metrics.json"],
                          cwd=str(tmp_path),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    assert done.returncode == 1
    assert done.stdout.strip() == (
        "crop_faces failed: params.yaml: 'crop_faces.min_size' must be int from 16 to 4096, "
        "got 'big' (str). Fix the value in params.yaml and run again.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml",
                                                          "toolchain.yaml"]
