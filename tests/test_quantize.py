"""Tests of facenet_edgetpu/stages/quantize.py on a small conv model built here (the FaceNet run is the lead's
integration test)."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import yaml

from facenet_edgetpu.stages import quantize as q
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lib.keras_loader import LegacyKerasError
from facenet_edgetpu.core.params import ParamsError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEGER_DTYPES = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int32)}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A conv + pooling + dense Keras model saved to h5, and 12 calibration samples."""
    import tensorflow as tf

    tf.keras.backend.clear_session()
    inputs = tf.keras.Input(shape=(16, 16, 3))
    x = tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    outputs = tf.keras.layers.Dense(8, name="dense")(x)
    model = tf.keras.Model(inputs, outputs)
    rng = np.random.RandomState(0)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32) * 0.3
                       for w in model.get_weights()])
    folder = tmp_path_factory.mktemp("small")
    h5 = str(folder / "small.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is considered legacy"
        model.save(h5)
    samples = rng.standard_normal((12, 16, 16, 3)).astype(np.float32)
    calibration = str(folder / "calibration.npy")
    np.save(calibration, samples)
    return {"h5": h5, "calibration": calibration, "samples": samples,
            "expected": model.predict(samples, verbose=0)}


def run_quantize(small, folder, io_type):
    tflite_path, report_path = str(folder / "model.tflite"), str(folder / "report.json")
    report = q.quantize(small["h5"], small["calibration"], io_type, {}, tflite_path,
                        report_path, progress=False)
    with open(tflite_path, "rb") as handle:
        data = handle.read()
    with open(report_path, encoding="utf-8") as handle:
        written = json.load(handle)
    return report, written, data


def dequantized_outputs(data, samples):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=data)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = source["quantization"]
    info = np.iinfo(source["dtype"])
    results = []
    for sample in samples:
        quantized = np.clip(np.round(sample / scale + zero), info.min, info.max)
        interpreter.set_tensor(source["index"], quantized[None].astype(source["dtype"]))
        interpreter.invoke()
        out_scale, out_zero = target["quantization"]
        raw = interpreter.get_tensor(target["index"]).astype(np.float32)
        results.append((raw[0] - out_zero) * out_scale)
    tensor_dtypes = {np.dtype(d["dtype"]) for d in interpreter.get_tensor_details()}
    return np.stack(results), tensor_dtypes


@pytest.mark.parametrize("io_type,ops", [
    ("uint8", {"CONV_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1, "QUANTIZE": 2}),
    ("int8", {"CONV_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1}),
])
def test_full_integer_conversion_and_report(small, tmp_path, io_type, ops):
    report, written, data = run_quantize(small, tmp_path, io_type)
    assert written == report
    assert report["io_type"] == io_type and report["calibration_samples"] == 12
    assert report["operators"] == ops and report["operator_count"] == sum(ops.values())
    assert set(report["operator_versions"]) == set(ops)
    assert report["tflite_bytes"] == len(data) == os.path.getsize(str(tmp_path / "model.tflite"))
    assert report["tflite_sha256"] == hashlib.sha256(data).hexdigest()
    assert report["converter"] == "tf.lite.TFLiteConverter.from_keras_model"
    assert report["lambda_layers"] == {}
    tensor_in, tensor_out = report["input"], report["output"]
    assert tensor_in["dtype"] == tensor_out["dtype"] == io_type
    assert tensor_in["shape"] == [1, 16, 16, 3] and tensor_out["shape"] == [1, 8]
    info = np.iinfo(io_type)
    for tensor in (tensor_in, tensor_out):
        assert tensor["scale"] > 0 and info.min <= tensor["zero_point"] <= info.max
    # the input range covers the calibration data: about (max - min) / 255 per step
    spread = float(small["samples"].max() - small["samples"].min())
    assert abs(tensor_in["scale"] - spread / 255.0) < 0.05 * tensor_in["scale"]
    # every tensor is integer, and the integer model computes what the float one does
    outputs, tensor_dtypes = dequantized_outputs(data, small["samples"])
    assert tensor_dtypes <= INTEGER_DTYPES
    error = np.abs(outputs - small["expected"]).max()
    assert error < 0.05 * np.ptp(small["expected"]), error
    # the JSON is in the project's layout: sorted keys, final newline, nothing time-dependent
    with open(str(tmp_path / "report.json"), encoding="utf-8") as handle:
        assert handle.read() == json.dumps(report, indent=2, sort_keys=True) + "\n"


def test_conversion_is_byte_identical_across_processes(small, tmp_path):
    first = run_quantize(small, tmp_path, "uint8")[2]
    again = tmp_path / "again"
    again.mkdir()
    assert run_quantize(small, again, "uint8")[2] == first
    other = tmp_path / "other"
    script = textwrap.dedent("""
        import sys
        from facenet_edgetpu.stages import quantize as q
        q.quantize(sys.argv[1], sys.argv[2], "uint8", {}, sys.argv[3], sys.argv[4],
                   progress=False)
    """)
    subprocess.run([sys.executable, "-c", script, small["h5"], small["calibration"],
                    str(other / "model.tflite"), str(other / "report.json")],
                   cwd=REPO, check=True, capture_output=True, env=_env())
    with open(str(other / "model.tflite"), "rb") as handle:
        assert handle.read() == first


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


def test_v1_converter_path_runs_in_graph_mode(small, tmp_path):
    """The TF 1.15 code path (graph mode, from_session), exercised on this TF with eager off."""
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        tf.compat.v1.disable_eager_execution()
        from facenet_edgetpu.stages import quantize as q
        report = q.quantize(sys.argv[1], sys.argv[2], "uint8", {}, sys.argv[3], sys.argv[4],
                            progress=False)
        print(json.dumps(report))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, small["h5"], small["calibration"],
         str(tmp_path / "model.tflite"), str(tmp_path / "report.json")],
        cwd=REPO, check=True, capture_output=True, env=_env(), universal_newlines=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["converter"] == "tf.compat.v1.lite.TFLiteConverter.from_session"
    assert report["input"]["dtype"] == report["output"]["dtype"] == "uint8"
    assert report["input"]["shape"] == [1, 16, 16, 3]
    assert report["operators"]["CONV_2D"] == 1 and report["operators"]["QUANTIZE"] == 2
    with open(str(tmp_path / "model.tflite"), "rb") as handle:
        outputs, tensor_dtypes = dequantized_outputs(handle.read(), small["samples"])
    assert tensor_dtypes <= INTEGER_DTYPES
    assert np.abs(outputs - small["expected"]).max() < 0.05 * np.ptp(small["expected"])


def test_representative_dataset_yields_one_sample_at_a_time(small):
    samples = q.load_calibration(small["calibration"])
    assert isinstance(samples, np.memmap)
    batches = list(q.representative_dataset(samples, progress=False)())
    assert len(batches) == 12
    for index, batch in enumerate(batches):
        assert len(batch) == 1 and batch[0].shape == (1, 16, 16, 3)
        assert batch[0].dtype == np.float32 and not isinstance(batch[0], np.memmap)
        np.testing.assert_array_equal(batch[0][0], small["samples"][index])


def test_calibration_data_problems_are_clear(small, tmp_path):
    with pytest.raises(q.QuantizeError, match="not found.*representative_dataset"):
        q.load_calibration(str(tmp_path / "absent.npy"))
    for bad in (np.zeros((3, 16, 16, 3)), np.zeros((16, 16, 3), np.float32),
                np.zeros((0, 16, 16, 3), np.float32)):
        np.save(str(tmp_path / "bad.npy"), bad)
        with pytest.raises(q.QuantizeError, match="float32 samples shaped N x H x W x C"):
            q.load_calibration(str(tmp_path / "bad.npy"))
    np.save(str(tmp_path / "small.npy"), np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(q.QuantizeError, match="8x8x3 but the model input is 16x16x3"):
        q.quantize(small["h5"], str(tmp_path / "small.npy"), "uint8", {},
                   str(tmp_path / "m.tflite"), str(tmp_path / "r.json"), progress=False)
    assert not os.path.exists(str(tmp_path / "m.tflite"))


def write_stage_dir(folder, small, quantize_section):
    (folder / "data").mkdir()
    np.save(str(folder / "data" / "calibration.npy"), small["samples"][:4])
    params = {"inputs": {"model": small["h5"], "photos": "data/photos"},
              "quantize": quantize_section}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))


def stage_arguments(small):
    return ["--model", small["h5"], "--calibration", "data/calibration.npy",
            "--out", "models/facenet_keras.tflite", "--report", "models/quantization.json"]


def test_main_reads_params_and_writes_outputs(small, tmp_path, monkeypatch):
    write_stage_dir(tmp_path, small, {"io_type": "int8", "lambda_functions": {}})
    monkeypatch.chdir(str(tmp_path))
    q.main(stage_arguments(small))
    with open(str(tmp_path / "models" / "quantization.json"), encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["io_type"] == "int8" and report["calibration_samples"] == 4
    assert report["tflite_bytes"] == os.path.getsize(
        str(tmp_path / "models" / "facenet_keras.tflite"))
    assert sorted(os.listdir(str(tmp_path / "models"))) == [
        "facenet_keras.tflite", "quantization.json"]


@pytest.mark.parametrize("section,problem", [
    ({"io_type": "float16", "lambda_functions": {}}, "quantize.io_type"),
    ({"io_type": "uint8", "lambda_functions": {"Block35_1_ScaleSum": 3}},
     "quantize.lambda_functions"),
    ({"io_type": "uint8", "lambda_function": {}}, "unknown key"),
])
def test_main_refuses_bad_params(small, tmp_path, monkeypatch, section, problem):
    write_stage_dir(tmp_path, small, section)
    monkeypatch.chdir(str(tmp_path))
    with pytest.raises(ParamsError, match=problem):
        q.main(stage_arguments(small))
    assert not os.path.exists(str(tmp_path / "models"))


def test_a_lambda_source_for_a_layer_the_model_lacks_stops_the_stage(small, tmp_path,
                                                                      monkeypatch):
    with pytest.raises(LegacyKerasError, match="'Scale' which is not a Lambda layer"):
        q.quantize(small["h5"], small["calibration"], "uint8", {"Scale": "lambda x: x"},
                   str(tmp_path / "m.tflite"), str(tmp_path / "r.json"), progress=False)
    assert not os.path.exists(str(tmp_path / "m.tflite"))
    write_stage_dir(tmp_path, small, {"io_type": "uint8",
                                      "lambda_functions": {"Scale": "lambda x: x"}})
    monkeypatch.chdir(str(tmp_path))
    # a PipelineError: `python -m facenet_edgetpu quantize` prints it as one message, no traceback
    with pytest.raises(PipelineError, match="quantize.lambda_functions names 'Scale'"):
        q.main(stage_arguments(small))
    assert not os.path.exists(str(tmp_path / "models"))


def test_stage_errors_are_pipeline_errors():
    assert issubclass(q.QuantizeError, PipelineError)
    assert issubclass(LegacyKerasError, PipelineError)


def test_tf_api_lists_resolve_in_this_tensorflow():
    import tensorflow as tf

    assert "compat.v1.lite.TFLiteConverter.from_session" in q.TF1_API
    for path in q.TF1_API + q.TF2_API:
        value = tf
        for part in path.split("."):
            value = getattr(value, part)
