"""The whole pipeline on the default inputs, run by real DVC in temporary copies of the repo."""
from __future__ import annotations

import hashlib
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.conftest import TEST_PARAMS, copy_repository, repro

FACENET_OPERATORS = {"CONV_2D": 132, "CONCATENATION": 23, "ADD": 21, "MAX_POOL_2D": 3,
                     "MEAN": 1, "FULLY_CONNECTED": 1}


def stages_run(output):
    return sorted(set(re.findall(r"Running stage '([^']+)'", output)))


def sha256(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def builtin_operator_counts(path):
    from tflite.Model import Model
    from tflite.BuiltinOperator import BuiltinOperator
    names = {value: name for name, value in vars(BuiltinOperator).items()
             if not name.startswith("_")}
    with open(path, "rb") as handle:
        model = Model.GetRootAsModel(handle.read(), 0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    graph = model.Subgraphs(0)
    counts = {}
    for index in range(graph.OperatorsLength()):
        code = codes[graph.Operators(index).OpcodeIndex()]
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        counts[name] = counts.get(name, 0) + 1
    return counts


def test_first_run_runs_every_stage(pipeline_repo):
    _, output = pipeline_repo
    assert stages_run(output) == sorted(
        ["fetch_inputs", "crop_faces", "representative_dataset", "float_model", "float_reference",
         "calibrate", "quantize", "compile", "fidelity", "report"])


def test_tflite_has_uint8_io_and_facenet_operators(facenet_tflite):
    interpreter = tf.lite.Interpreter(model_path=facenet_tflite)
    (model_input,) = interpreter.get_input_details()
    (model_output,) = interpreter.get_output_details()
    assert model_input["dtype"] == np.uint8 and model_output["dtype"] == np.uint8
    assert list(model_input["shape"]) == [1, 160, 160, 3]
    assert list(model_output["shape"]) == [1, 128]
    counts = builtin_operator_counts(facenet_tflite)
    assert {name: counts.get(name) for name in FACENET_OPERATORS} == FACENET_OPERATORS
    assert counts.get("QUANTIZE", 0) >= 1
    assert set(counts) == set(FACENET_OPERATORS) | {"QUANTIZE"}


def test_outputs_record_real_quantization_and_a_marked_prediction(pipeline_repo, facenet_tflite):
    repo, _ = pipeline_repo
    interpreter = tf.lite.Interpreter(model_path=facenet_tflite)
    scale, zero_point = interpreter.get_input_details()[0]["quantization"]
    with open(os.path.join(repo, "models", "quantization.json")) as handle:
        quantization = json.load(handle)
    assert quantization["input"]["scale"] == pytest.approx(scale)
    assert quantization["input"]["zero_point"] == zero_point
    with open(os.path.join(repo, "toolchain.yaml")) as handle:
        toolchain = yaml.safe_load(handle)
    report = open(os.path.join(repo, "reports", "report.md")).read()
    metrics = json.load(open(os.path.join(repo, "reports", "metrics.json")))
    if toolchain["compile"]["edgetpu_compiler"] == "predicted":
        assert "PREDICTED" in report
        assert metrics["compile"]["predicted"] is True
        stdout = open(os.path.join(repo, "models", "edgetpu", "compiler_stdout.txt")).read()
        assert "PREDICTION" in stdout.splitlines()[0]
    assert metrics["size_bytes"]["keras_h5"] == 92397640
    assert metrics["size_bytes"]["tflite"] == os.path.getsize(facenet_tflite)
    assert metrics["compile"]["operations_on_cpu"] == 0
    assert metrics["crops"]["train"] == TEST_PARAMS["crop_faces.max_faces"]
    ranges = json.load(open(os.path.join(repo, "models", "calibration_ranges.json")))
    assert len(ranges["faces"]) == TEST_PARAMS["representative_dataset.max_samples"]
    assert all(face.startswith("train/") for face in ranges["faces"])


def test_second_repro_runs_no_stage(pipeline_repo):
    repo, _ = pipeline_repo
    assert stages_run(repro(repo)) == []


@pytest.fixture(scope="module")
def second_clean_run(tmp_path_factory, pipeline_repo):
    repo = copy_repository(str(tmp_path_factory.mktemp("pipeline_again")))
    repro(repo)
    return repo


def test_two_clean_runs_give_byte_identical_artifacts(pipeline_repo, second_clean_run):
    first, _ = pipeline_repo
    for artifact in ("models/facenet_keras.tflite", "models/quantization.json",
                     "data/preprocessed/faces.npy", "data/faces/manifest.json",
                     "models/facenet_float.tflite", "data/float_reference/minimum.npy",
                     "data/float_reference/embeddings.npy", "models/calibration_ranges.json",
                     "models/edgetpu/compile_result.json", "reports/metrics.json",
                     "reports/report.md", "reports/report.html", "reports/fidelity.json",
                     "reports/fidelity/embeddings.png"):
        assert sha256(os.path.join(first, artifact)) == sha256(
            os.path.join(second_clean_run, artifact)), artifact


def test_changing_a_compile_param_reruns_only_compile_and_report(second_clean_run):
    params_path = os.path.join(second_clean_run, "params.yaml")
    with open(params_path) as handle:
        text = handle.read()
    assert "min_runtime_version: 12" in text
    with open(params_path, "w") as handle:
        handle.write(text.replace("min_runtime_version: 12", "min_runtime_version: 13"))
    assert stages_run(repro(second_clean_run)) == ["compile", "report"]
    result = json.load(open(os.path.join(second_clean_run, "models/edgetpu/compile_result.json")))
    assert result["min_runtime_version"] == 13


def test_changing_the_calibration_size_reruns_calibration_and_what_follows_only(
        second_clean_run):
    params_path = os.path.join(second_clean_run, "params.yaml")
    with open(params_path) as handle:
        params = yaml.safe_load(handle)
    params["representative_dataset"]["max_samples"] = 5
    with open(params_path, "w") as handle:
        yaml.safe_dump(params, handle)
    assert stages_run(repro(second_clean_run)) == [
        "calibrate", "compile", "fidelity", "quantize", "report"]
    ranges = json.load(open(os.path.join(second_clean_run, "models", "calibration_ranges.json")))
    assert len(ranges["faces"]) == 5
