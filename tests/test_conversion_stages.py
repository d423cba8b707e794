"""The conversion chain float_model -> float_reference -> calibrate -> quantize (-> fidelity),
on a small Keras model with batch normalizations built here (the FaceNet run is
tests/test_pipeline.py's).

Each stage's pure function is called on the previous one's output, so a change to one file
format that the next stage does not follow fails here, without DVC.
"""
from __future__ import annotations

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

from facenet_edgetpu.core import artifacts
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.params import ParamsError
from facenet_edgetpu.lib import interpreter, preprocessed, records
from facenet_edgetpu.lib.input_quantization import model_quantize
from facenet_edgetpu.lib.keras_loader import LegacyKerasError
from facenet_edgetpu.lib.tflite_edit import ModelEditError, activation_tensors
from facenet_edgetpu.stages import calibrate, fidelity, float_model, float_reference, quantize
from tests.tiny_models import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEGER_DTYPES = {np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int32)}
# 4 train faces; 4 val faces of two people (person = row % 2), as fidelity needs
SPLITS = ("train", "train", "val", "train", "val", "train", "val", "val")


def build_small_model():
    """Conv (no bias) -> BN -> relu -> pool -> Dense -> BN: both batch norms fold."""
    import tensorflow as tf

    tf.keras.backend.clear_session()
    inputs = tf.keras.Input(shape=(16, 16, 3))
    x = tf.keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = tf.keras.layers.BatchNormalization(name="conv_bn", epsilon=1e-3)(x)
    x = tf.keras.layers.ReLU(name="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = tf.keras.layers.Dense(8, name="dense")(x)
    outputs = tf.keras.layers.BatchNormalization(name="dense_bn")(x)
    model = tf.keras.Model(inputs, outputs)
    rng = np.random.RandomState(0)
    weights = []
    for weight in model.weights:
        if "moving_variance" in weight.name:
            weights.append(rng.uniform(0.5, 2.0, weight.shape).astype(np.float32))
        else:
            weights.append(rng.standard_normal(weight.shape).astype(np.float32) * 0.3)
    model.set_weights(weights)
    return model


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The small model saved to h5, eight preprocessed faces, and the stages run once in order."""
    folder = tmp_path_factory.mktemp("small")
    model = build_small_model()
    h5 = str(folder / "small.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 is considered legacy"
        model.save(h5)
    rng = np.random.RandomState(1)
    samples = rng.standard_normal((len(SPLITS), 16, 16, 3)).astype(np.float32)
    expected = model.predict(samples, verbose=0)
    faces_dir = str(folder / "preprocessed")
    write_preprocessed(faces_dir, samples, SPLITS)

    tflite, float_record = float_model.convert(h5, {})
    float_path = str(folder / "float.tflite")
    artifacts.write_bytes(float_path, tflite)
    info, arrays = float_reference.record(float_path, faces_dir, workers=1)
    reference_dir = str(folder / "reference")
    write_reference(reference_dir, info, arrays)
    ranges, calibrated = calibrate.calibrate(float_path, reference_dir, faces_dir, 3)
    calibrated_path = str(folder / "calibrated.tflite")
    artifacts.write_bytes(calibrated_path, calibrated)
    return {"h5": h5, "samples": samples, "expected": expected, "faces": faces_dir,
            "float": float_path, "float_record": float_record, "info": info,
            "arrays": arrays, "reference": reference_dir, "ranges": ranges,
            "calibrated": calibrated_path, "folder": folder}


def write_preprocessed(folder, samples, splits):
    os.makedirs(folder)
    np.save(os.path.join(folder, preprocessed.ARRAY_FILE), samples)
    entries = [{"crop": "{}/p{}/face{}.jpg.png".format(split, row % 2, row), "person":
                "p{}".format(row % 2), "photo": "{}/p{}/face{}.jpg".format(split, row % 2, row),
                "box": [0, 0, 16, 16], "split": split} for row, split in enumerate(splits)]
    artifacts.write_json(os.path.join(folder, preprocessed.INDEX_FILE), entries)


def write_reference(folder, info, arrays):
    os.makedirs(folder)
    artifacts.write_json(os.path.join(folder, calibrate.REFERENCE_INFO), info)
    for name, array in arrays.items():
        np.save(os.path.join(folder, name), array)


def float_outputs(model_bytes, samples):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=model_bytes)
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for sample in samples:
        interpreter.set_tensor(source["index"], sample[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"])[0].copy())
    return np.stack(outputs)


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


def builtin_operators(model_bytes):
    from edgetpu_analyzer.tflite_reader import read_model_bytes

    return sorted(operator.name for operator in read_model_bytes(model_bytes).operators)


def subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env


# --- float_model ----------------------------------------------------------------------------

def test_float_model_folds_every_batch_norm_and_computes_what_keras_does(small):
    record = small["float_record"]
    assert record.folded_batch_norms == 2 and record.lambda_layers == {}
    assert record.converter == "tf.lite.TFLiteConverter.from_keras_model"
    with open(small["float"], "rb") as handle:
        data = handle.read()
    assert record.tflite_bytes == len(data)
    assert record.tflite_sha256 == hashlib.sha256(data).hexdigest()
    # no batch normalization left for the converter to fold (with its CPU-dependent rsqrt):
    # the conv and the dense layer, nothing that multiplies or adds after them
    assert builtin_operators(data) == ["CONV_2D", "FULLY_CONNECTED", "MEAN"]
    outputs = float_outputs(data, small["samples"])
    np.testing.assert_allclose(outputs, small["expected"], rtol=1e-4, atol=1e-5)


def test_float_model_bytes_are_the_same_in_another_process(small, tmp_path):
    script = textwrap.dedent("""
        import sys
        from facenet_edgetpu.stages import float_model
        data, _ = float_model.convert(sys.argv[1], {})
        open(sys.argv[2], "wb").write(data)
    """)
    out = str(tmp_path / "again.tflite")
    subprocess.run([sys.executable, "-c", script, small["h5"], out], cwd=REPO, check=True,
                   capture_output=True, env=subprocess_env())
    with open(out, "rb") as again, open(small["float"], "rb") as first:
        assert again.read() == first.read()


@pytest.mark.parametrize("functions", [{"Scale": 3}, {"": "lambda x: x"}, {"Scale": "  "}])
def test_float_model_refuses_malformed_lambda_functions(functions):
    with pytest.raises(ParamsError, match="float_model.lambda_functions"):
        float_model.check_lambda_functions(functions)


def test_a_lambda_source_for_a_layer_the_model_lacks_stops_float_model(small, tmp_path,
                                                                       monkeypatch):
    with pytest.raises(LegacyKerasError, match="'Scale' which is not a Lambda layer"):
        float_model.convert(small["h5"], {"Scale": "lambda x: x"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"float_model": {"lambda_functions": {"Scale": "lambda x: x"}}}))
    monkeypatch.chdir(str(tmp_path))
    with pytest.raises(PipelineError, match="float_model.lambda_functions names 'Scale'"):
        float_model.main(["--model", small["h5"], "--out", "models/float.tflite",
                          "--report", "models/float.json"])
    assert not os.path.exists(str(tmp_path / "models"))


# --- float_reference ------------------------------------------------------------------------

def test_float_reference_records_every_activation_range_and_the_embeddings(small):
    info, arrays = small["info"], small["arrays"]
    with open(small["float"], "rb") as handle:
        names = sorted(activation_tensors(handle.read()).items())
    assert info["tensors"] == [name for _, name in names]
    assert info["faces"] == len(SPLITS) and info["kernels"] == float_reference.KERNELS
    assert info["float_model_sha256"] == artifacts.sha256_of(small["float"])
    shape = (len(SPLITS), len(info["tensors"]))
    assert arrays["minimum.npy"].shape == arrays["maximum.npy"].shape == shape
    assert (arrays["minimum.npy"] <= arrays["maximum.npy"]).all()
    # the input tensor's range is the face's own
    column = info["tensors"].index(names[0][1])
    np.testing.assert_array_equal(arrays["minimum.npy"][:, column],
                                  small["samples"].reshape(len(SPLITS), -1).min(axis=1))
    np.testing.assert_allclose(arrays["embeddings.npy"], small["expected"], rtol=1e-4,
                               atol=1e-5)


def test_float_reference_does_not_depend_on_the_number_of_workers(small):
    info, arrays = float_reference.record(small["float"], small["faces"], workers=2)
    assert info == small["info"]
    for name, array in small["arrays"].items():
        assert arrays[name].tobytes() == array.tobytes(), name


# --- calibrate ------------------------------------------------------------------------------

def test_calibrate_reduces_the_first_train_faces_ranges(small):
    ranges, info, arrays = small["ranges"], small["info"], small["arrays"]
    train_rows = [row for row, split in enumerate(SPLITS) if split == "train"][:3]
    assert ranges.faces == ["train/p0/face0.jpg.png", "train/p1/face1.jpg.png",
                            "train/p1/face3.jpg.png"]
    assert sorted(ranges.tensors) == sorted(info["tensors"])
    for column, name in enumerate(info["tensors"]):
        assert ranges.tensors[name].min == float(arrays["minimum.npy"][train_rows, column].min())
        assert ranges.tensors[name].max == float(arrays["maximum.npy"][train_rows, column].max())
    assert ranges.float_model_sha256 == info["float_model_sha256"]
    # the calibrated model carries them in its tensors' quantization parameters
    from tensorflow.lite.tools import flatbuffer_utils

    with open(small["calibrated"], "rb") as handle:
        graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(handle.read()))
    carried = {tensor.name.decode(): (tensor.quantization.min[0], tensor.quantization.max[0])
               for tensor in graph.subgraphs[0].tensors
               if tensor.quantization is not None and tensor.quantization.min is not None
               and len(tensor.quantization.min)}
    assert carried == {name: (pytest.approx(r.min), pytest.approx(r.max))
                       for name, r in ranges.tensors.items()}


def test_calibrate_refuses_a_reference_of_another_model_or_no_train_face(small, tmp_path):
    other = str(tmp_path / "other.tflite")
    with open(small["float"], "rb") as handle:
        artifacts.write_bytes(other, handle.read() + b"\0")
    with pytest.raises(calibrate.CalibrationError, match="another float model.*rerun"):
        calibrate.calibrate(other, small["reference"], small["faces"], 3)
    val_only = str(tmp_path / "val_only")
    write_preprocessed(val_only, small["samples"], ["val"] * len(SPLITS))
    with pytest.raises(calibrate.CalibrationError, match="no train face"):
        calibrate.calibrate(small["float"], small["reference"], val_only, 3)
    fewer = str(tmp_path / "fewer")
    write_preprocessed(fewer, small["samples"][:2], SPLITS[:2])
    with pytest.raises(calibrate.CalibrationError, match="rerun float_reference"):
        calibrate.calibrate(small["float"], small["reference"], fewer, 3)


def test_calibrate_refuses_ranges_of_tensors_the_model_lacks(small):
    from facenet_edgetpu.lib.tflite_edit import with_ranges

    with open(small["float"], "rb") as handle:
        data = handle.read()
    with pytest.raises(ModelEditError, match="1 tensor.*'absent'.*another model"):
        with_ranges(data, {"absent": (0.0, 1.0)})


def test_model_edits_write_the_bytes_tensorflows_own_helpers_write(small):
    """tflite_edit unpacks and packs the schema's object tree itself (TensorFlow's
    flatbuffer_utils would import all of TensorFlow): the bytes must be the ones that helper
    writes for the same tree."""
    from tensorflow.lite.tools import flatbuffer_utils

    from facenet_edgetpu.lib.tflite_edit import exposing, with_ranges

    def tensorflow_round_trip(data):
        return bytes(flatbuffer_utils.convert_object_to_bytearray(
            flatbuffer_utils.convert_bytearray_to_object(bytearray(data))))

    with open(small["float"], "rb") as handle:
        data = handle.read()
    ranges = {name: (found.min, found.max) for name, found in small["ranges"].tensors.items()}
    unchanged = exposing(data, [])
    assert unchanged == tensorflow_round_trip(data)
    for edited in (unchanged, exposing(data, sorted(activation_tensors(data))),
                   with_ranges(data, ranges)):
        assert edited == tensorflow_round_trip(edited)


def test_calibrate_does_not_import_tensorflow(small):
    """A calibration experiment does not pay TensorFlow's import (about 3 s)."""
    code = textwrap.dedent("""
        import sys
        from facenet_edgetpu.stages import calibrate
        calibrate.calibrate(sys.argv[1], sys.argv[2], sys.argv[3], 3)
        assert "tensorflow" not in sys.modules, "calibrate imported tensorflow"
    """)
    done = subprocess.run([sys.executable, "-c", code, small["float"], small["reference"],
                           small["faces"]], env=subprocess_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    assert done.returncode == 0, done.stdout[-2000:]


# --- quantize -------------------------------------------------------------------------------

@pytest.mark.parametrize("io_type,ops", [
    ("uint8", {"CONV_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1, "QUANTIZE": 2}),
    ("int8", {"CONV_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1}),
])
def test_quantize_gives_a_full_integer_model_and_its_record(small, io_type, ops):
    data = quantize.quantize(small["calibrated"], io_type)
    record = quantize.quantization_record(data, io_type, small["ranges"], small["float_record"])
    assert record.io_type == io_type and record.calibration_samples == 3
    assert record.operators == ops and record.operator_count == sum(ops.values())
    assert set(record.operator_versions) == set(ops)
    assert record.tflite_bytes == len(data)
    assert record.tflite_sha256 == hashlib.sha256(data).hexdigest()
    assert record.float_model_sha256 == small["info"]["float_model_sha256"]
    assert record.converter.startswith("mlir_quantize (TensorFlow ")
    assert record.input.dtype == record.output.dtype == io_type
    assert record.input.shape == [1, 16, 16, 3] and record.output.shape == [1, 8]
    # the input scale comes from the recorded range of the three calibration faces
    input_range = small["ranges"].tensors[small["info"]["tensors"][0]]
    assert record.input.scale == pytest.approx((input_range.max - input_range.min) / 255.0,
                                               rel=0.01)
    # every tensor is integer, and on the calibration faces (inside the recorded ranges) the
    # integer model computes what the float one does
    rows = [0, 1, 3]
    outputs, tensor_dtypes = dequantized_outputs(data, small["samples"][rows])
    assert tensor_dtypes <= INTEGER_DTYPES
    error = np.abs(outputs - small["expected"][rows]).max()
    assert error < 0.05 * np.ptp(small["expected"]), error


def test_quantize_bytes_are_the_same_in_another_process(small, tmp_path):
    script = textwrap.dedent("""
        import sys
        from facenet_edgetpu.stages import quantize
        open(sys.argv[2], "wb").write(quantize.quantize(sys.argv[1], "uint8"))
    """)
    out = str(tmp_path / "again.tflite")
    subprocess.run([sys.executable, "-c", script, small["calibrated"], out], cwd=REPO,
                   check=True, capture_output=True, env=subprocess_env())
    with open(out, "rb") as handle:
        assert handle.read() == quantize.quantize(small["calibrated"], "uint8")


def test_float_operators_lists_what_the_edge_tpu_cannot_take(small):
    from edgetpu_analyzer.tflite_reader import read_model_bytes

    with open(small["float"], "rb") as handle:
        left = quantize.float_operators(read_model_bytes(handle.read()))
    assert [name.split(" ")[0] for name in left] == ["CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert all("FLOAT32" in name for name in left)
    quantized = quantize.quantize(small["calibrated"], "uint8")
    assert quantize.float_operators(read_model_bytes(quantized)) == []


def quantize_stage_dir(folder, small, quantize_section):
    params = {"quantize": quantize_section}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    small["ranges"].save(str(folder / "ranges.json"))
    small["float_record"].save(str(folder / "float.json"))
    return ["--calibrated", small["calibrated"], "--ranges", "ranges.json",
            "--float-report", "float.json", "--out", "models/facenet_keras.tflite",
            "--report", "models/quantization.json"]


def test_quantize_main_reads_params_and_writes_outputs(small, tmp_path, monkeypatch):
    arguments = quantize_stage_dir(tmp_path, small, {"io_type": "int8"})
    monkeypatch.chdir(str(tmp_path))
    quantize.main(arguments)
    record = records.Quantization.load(str(tmp_path / "models" / "quantization.json"))
    assert record.io_type == "int8" and record.calibration_samples == 3
    assert record.tflite_bytes == os.path.getsize(
        str(tmp_path / "models" / "facenet_keras.tflite"))
    assert sorted(os.listdir(str(tmp_path / "models"))) == [
        "facenet_keras.tflite", "quantization.json"]
    with open(str(tmp_path / "models" / "quantization.json"), encoding="utf-8") as handle:
        text = handle.read()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("section,problem", [
    ({"io_type": "float16"}, "quantize.io_type"),
    ({"io_type": "uint8", "lambda_functions": {}}, "unknown key"),
])
def test_quantize_main_refuses_bad_params_and_writes_nothing(small, tmp_path, monkeypatch,
                                                             section, problem):
    arguments = quantize_stage_dir(tmp_path, small, section)
    monkeypatch.chdir(str(tmp_path))
    with pytest.raises(ParamsError, match=problem):
        quantize.main(arguments)
    assert not os.path.exists(str(tmp_path / "models"))


def test_quantize_calibrated_graph_mode_path_reads_the_recorded_ranges(small, tmp_path):
    """The TF 1.15 code path (the calibrator fed no sample), exercised on this TF with eager
    execution off: it must quantize from the ranges already in the model."""
    script = textwrap.dedent("""
        import sys
        import tensorflow as tf
        tf.compat.v1.disable_eager_execution()
        from facenet_edgetpu.lib.converter import quantize_calibrated
        data = quantize_calibrated(open(sys.argv[1], "rb").read(), "uint8")
        open(sys.argv[2], "wb").write(data)
    """)
    out = str(tmp_path / "graph_mode.tflite")
    subprocess.run([sys.executable, "-c", script, small["calibrated"], out], cwd=REPO,
                   check=True, capture_output=True, env=subprocess_env())
    with open(out, "rb") as handle:
        data = handle.read()
    # no sample was fed: the input scale can only come from the range recorded in the model
    import tensorflow as tf

    found = tf.lite.Interpreter(model_content=data)
    scale, _ = found.get_input_details()[0]["quantization"]
    input_range = small["ranges"].tensors[small["info"]["tensors"][0]]
    assert scale == pytest.approx((input_range.max - input_range.min) / 255.0, rel=0.01)
    rows = [0, 1, 3]
    outputs, tensor_dtypes = dequantized_outputs(data, small["samples"][rows])
    assert tensor_dtypes <= INTEGER_DTYPES
    assert np.abs(outputs - small["expected"][rows]).max() < 0.05 * np.ptp(small["expected"])


# --- fidelity -------------------------------------------------------------------------------

def test_fidelity_compares_the_int8_model_with_the_reference_embeddings(small, tmp_path):
    quantized = str(tmp_path / "quantized.tflite")
    artifacts.write_bytes(quantized, quantize.quantize(small["calibrated"], "uint8"))
    report, rocs, png = fidelity.evaluate(quantized, small["faces"], small["reference"])
    assert (report.counts.val_faces, report.counts.gallery_faces, report.counts.people) == (
        4, 4, 2)
    assert (report.counts.pairs, report.counts.genuine_pairs) == (6, 3)
    assert sorted(report.variants) == sorted(fidelity.VARIANTS) == sorted(rocs)
    assert sorted(report.vs_float) == ["int8", "int8_seed_input"]
    # the int8 model, fed its own input quantization, stays close to the float reference
    assert report.vs_float["int8"].cosine_min > 0.9
    assert report.input_quantization.scale == pytest.approx(
        small["ranges"].tensors[small["info"]["tensors"][0]].max / 255.0 -
        small["ranges"].tensors[small["info"]["tensors"][0]].min / 255.0, rel=1e-5)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert fidelity.evaluate(quantized, small["faces"], small["reference"])[2] == png


def int8_embeddings(path, images, threads):
    """fidelity's int8 embeddings of `images` by the model at `path` on `threads` threads."""
    found = interpreter.interpreter(model_path=path, num_threads=threads)
    scale, zero_point, dtype = interpreter.quantization(found.get_input_details()[0])
    return fidelity.embed_int8(found, images,
                               lambda image: model_quantize(image, scale, zero_point, dtype),
                               "{} thread(s)".format(threads))


def test_int8_embeddings_do_not_depend_on_the_number_of_threads(tmp_path):
    """fidelity runs the int8 model on every core: integer kernels split the work across
    threads without changing a result. The model is big enough for the kernels to use both."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((48, 48, 16), batch_size=1)
    x = tf.keras.layers.Conv2D(64, 3, padding="same", activation="relu")(inputs)
    x = tf.keras.layers.Conv2D(64, 3, padding="same")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    path = str(tmp_path / "int8.tflite")
    artifacts.write_bytes(path, convert(tf.keras.Model(inputs, tf.keras.layers.Dense(32)(x)),
                                        "uint8"))
    images = np.random.RandomState(2).uniform(-1, 1, (4, 48, 48, 16)).astype(np.float32)
    one, two = (int8_embeddings(path, images, threads) for threads in (1, 2))
    assert one.shape == (4, 32)
    assert one.tobytes() == two.tobytes()


def test_fidelity_refuses_a_model_whose_input_is_not_the_faces_size(small, tmp_path):
    other = str(tmp_path / "other")
    write_preprocessed(other, np.zeros((len(SPLITS), 8, 8, 3), np.float32), SPLITS)
    quantized = str(tmp_path / "quantized.tflite")
    artifacts.write_bytes(quantized, quantize.quantize(small["calibrated"], "uint8"))
    with pytest.raises(fidelity.FidelityError, match="takes uint8 1x16x16x3.*8x8x3: quantize"):
        fidelity.evaluate(quantized, other, small["reference"])


def test_stage_errors_are_pipeline_errors():
    for error in (quantize.QuantizeError, calibrate.CalibrationError, fidelity.FidelityError,
                  LegacyKerasError, ModelEditError):
        assert issubclass(error, PipelineError)
