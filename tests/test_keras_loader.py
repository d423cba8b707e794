"""Tests of facenet_edgetpu/lib/keras_loader.py: Lambda layers in model configs, translated and
user-supplied sources, and loading real h5 files (the hand-made legacy code objects come from
tests/legacy_code.py)."""
import base64
import json
import marshal
import os
import shutil
import sys
import warnings

import h5py
import numpy as np
import pytest

from facenet_edgetpu.lambda_bytecode import WORDCODE, bytecode_format, read_marshal
from facenet_edgetpu.lib import keras_loader as kl
from facenet_edgetpu.lib.keras_h5 import KerasFileError, read_model_config
from tests.legacy_code import (CASES, CONDITIONAL_36, FACENET_36, Code, keras_entry, wordcode)


@pytest.mark.parametrize("name,code,defaults,closure,expected,reference,args", CASES,
                         ids=[case[0] for case in CASES])
def test_hand_made_lambdas_translate_and_compute(name, code, defaults, closure, expected,
                                                 reference, args):
    for raw in (False, True):
        item = kl.translate_keras_function(keras_entry(code, defaults, closure, raw), "L")
        assert item.source == expected
        assert item.origin == "translated"
    scope = {"K": np, "np": np}
    scope.update(item.closure)
    function = kl.compile_lambda(item.source, scope)
    kwargs = {"k": 3} if "*, k" in expected else {}
    got, want = function(*args, **kwargs), reference(*args, **kwargs)
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        got, want = list(got.values()), list(want.values())
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float))


def test_untranslatable_bytecode_names_layer_shows_disassembly_and_the_fix():
    entry = keras_entry(CONDITIONAL_36)
    with pytest.raises(kl.UntranslatableLambdaError) as caught:
        kl.translate_keras_function(entry, "Block8_6_ScaleSum", {"scale": 1.0})
    message = str(caught.value)
    assert caught.value.layer == "Block8_6_ScaleSum"
    assert "Lambda layer 'Block8_6_ScaleSum'" in message
    assert "POP_JUMP_IF_FALSE" in message and "COMPARE_OP" in message
    assert "float_model:\n    lambda_functions:\n      Block8_6_ScaleSum: \"lambda inputs, scale" \
        in message
    assert "load_model(..., lambda_sources=" in message


def test_garbage_code_text_is_an_error_naming_the_layer():
    with pytest.raises(kl.UntranslatableLambdaError, match="Lambda layer 'Odd'") as caught:
        kl.translate_keras_function([base64.b64encode(b"\xe3\x01\x02").decode(), None, None],
                                    "Odd")
    assert "cannot be decoded: marshal data ends early" in str(caught.value)
    assert "Decoded so far" not in str(caught.value)  # nothing was


@pytest.mark.parametrize("source,problem", [
    ("import os", "not a single Python expression"),
    ("inputs[0] + inputs[1]", "must be a lambda expression"),
    ("lambda inputs: inputs[0]; print(1)", "not a single Python expression"),
    ("", "non-empty string"),
])
def test_user_source_must_be_a_lambda_expression(source, problem):
    with pytest.raises(kl.LegacyKerasError, match=problem):
        kl.parse_lambda_source(source, "float_model.lambda_functions.X")


# ---------------------------------------------------------------------------------------------
# Configs and h5 files
# ---------------------------------------------------------------------------------------------

def lambda_config(entry, name="Scale", arguments=None):
    return {"class_name": "Model", "config": {"name": "m", "layers": [
        {"name": "in", "class_name": "InputLayer",
         "config": {"name": "in", "batch_input_shape": [None, 4], "dtype": "float32"},
         "inbound_nodes": []},
        {"name": name, "class_name": "Lambda",
         "config": {"name": name, "trainable": True, "function": entry,
                    "function_type": "lambda", "output_shape": None,
                    "output_shape_type": "raw", "arguments": arguments or {}},
         "inbound_nodes": [[["in", 0, 0, {}]]]}],
        "input_layers": [["in", 0, 0]], "output_layers": [[name, 0, 0]]}}


def test_user_sources_are_checked_against_the_layers():
    config = lambda_config(keras_entry(CONDITIONAL_36), arguments={"scale": 0.5})
    with pytest.raises(kl.UntranslatableLambdaError, match="Lambda layer 'Scale'"):
        kl.lambda_layers(config)
    items = kl.lambda_layers(config, {"Scale": "lambda x, scale: x * scale"})
    assert [(i.layer, i.source, i.origin) for i in items] == [
        ("Scale", "lambda x, scale: x * scale", "params")]
    with pytest.raises(kl.LegacyKerasError, match="'Scal' which is not a Lambda layer.*Scale"):
        kl.lambda_layers(config, {"Scal": "lambda x, scale: x"})
    with pytest.raises(kl.LegacyKerasError, match="keyword argument.*scale"):
        kl.lambda_layers(config, {"Scale": "lambda x: x"})
    with pytest.raises(kl.LegacyKerasError, match="float_model.lambda_functions.Scale"):
        kl.lambda_layers(config, {"Scale": "__import__('os').getcwd()"})


def test_missing_and_non_h5_files_give_clear_errors(tmp_path):
    with pytest.raises(KerasFileError, match="not found"):
        kl.load_model(str(tmp_path / "absent.h5"))
    text = tmp_path / "model.h5"
    text.write_text("not a model\n")
    with pytest.raises(KerasFileError, match="is not an HDF5 file"):
        kl.load_model(str(text))
    weights = tmp_path / "weights.h5"
    with h5py.File(str(weights), "w") as handle:
        handle.create_dataset("dense/kernel", data=np.zeros((2, 2)))
    with pytest.raises(KerasFileError, match="no 'model_config' attribute.*dense"):
        kl.load_model(str(weights))


# Beside the small model: the same file before its Lambda was swapped, as this Python saved it.
SAVED_HERE = "saved_by_this_python.h5"


@pytest.fixture(scope="module")
def small_legacy_h5(tmp_path_factory):
    """A Dense + Lambda model saved by this Keras, with its Lambda swapped for 3.6 bytecode."""
    import tensorflow as tf

    tf.keras.backend.clear_session()
    inputs = tf.keras.Input(shape=(4,), name="features")
    dense = tf.keras.layers.Dense(3, name="dense")(inputs)
    scaled = tf.keras.layers.Lambda(lambda x, scale: x * scale, arguments={"scale": 0.5},
                                    name="Scale")(dense)
    model = tf.keras.Model(inputs, scaled)
    model.get_layer("dense").set_weights([np.arange(12.0).reshape(4, 3) / 10.0,
                                          np.array([1.0, -1.0, 0.5])])
    path = str(tmp_path_factory.mktemp("legacy") / "small.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "HDF5 ... is considered legacy": that is the point
        model.save(path)
    shutil.copyfile(path, os.path.join(os.path.dirname(path), SAVED_HERE))
    # x * scale as Python 3.6 wrote it
    legacy = Code(wordcode(("LOAD_FAST", 0), ("LOAD_FAST", 1), "BINARY_MULTIPLY",
                           "RETURN_VALUE"), ["x", "scale"])
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layer = [item for item in config["config"]["layers"] if item["class_name"] == "Lambda"][0]
        layer["config"]["function"] = keras_entry(legacy)
        handle.attrs["model_config"] = json.dumps(config).encode("utf-8")  # bytes, as h5py 2
    features = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    return path, features, model.predict(features, verbose=0)


def test_load_model_translates_and_loads_weights(small_legacy_h5):
    path, features, expected = small_legacy_h5
    model = kl.load_model(path, batch_size=1)
    assert model.input_shape == (1, 4)
    np.testing.assert_allclose(model.predict(features, verbose=0), expected, rtol=1e-6)
    # a user-supplied source replaces the translation
    doubled = kl.load_model(path, lambda_sources={"Scale": "lambda x, scale: 2 * x * scale"})
    assert doubled.input_shape == (None, 4)
    np.testing.assert_allclose(doubled.predict(features, verbose=0), 2 * expected, rtol=1e-6)


def test_load_model_refuses_untranslatable_lambda_naming_the_layer(small_legacy_h5, tmp_path):
    path = str(tmp_path / "conditional.h5")
    with open(small_legacy_h5[0], "rb") as source, open(path, "wb") as target:
        target.write(source.read())
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layer = [item for item in config["config"]["layers"] if item["class_name"] == "Lambda"][0]
        layer["config"]["function"] = keras_entry(CONDITIONAL_36)
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(kl.UntranslatableLambdaError, match="Lambda layer 'Scale'.*\n.*"
                       "Decoded bytecode") as caught:
        kl.load_model(path)
    assert "POP_JUMP_IF_FALSE" in str(caught.value)
    model = kl.load_model(path, lambda_sources={"Scale": "lambda x, scale: x * scale"})
    np.testing.assert_allclose(model.predict(small_legacy_h5[1], verbose=0),
                               small_legacy_h5[2], rtol=1e-6)


def test_code_saved_by_python_311_says_so_and_how_to_supply_the_source():
    def scaled_sum(inputs, scale):
        return inputs[0] + inputs[1] * scale

    entry = [base64.encodebytes(marshal.dumps(scaled_sum.__code__)).decode("ascii"), None, None]
    with pytest.raises(kl.UntranslatableLambdaError) as caught:
        kl.translate_keras_function(entry, "Block35_1_ScaleSum", {"scale": 0.17})
    message = str(caught.value)
    if sys.version_info >= (3, 11):
        assert "Lambda layer 'Block35_1_ScaleSum': its function cannot be translated: the code " \
            "object was written by Python 3.11 or later" in message
        assert "qualified name 'test_code_saved_by_python_311_says_so_and_how_to_supply_the_" \
            "source.<locals>.scaled_sum'" in message
    assert "only the bytecode of Python 3.5-3.7 can be translated" in message
    assert "float_model:\n    lambda_functions:\n      Block35_1_ScaleSum: \"lambda inputs, scale" \
        in message
    assert "Decoded so far" not in message and "nothing" not in message


@pytest.mark.skipif(sys.version_info < (3, 8), reason="this Python writes the readable layout")
def test_h5_saved_by_this_python_names_it_and_loads_with_the_supplied_source(small_legacy_h5):
    path = os.path.join(os.path.dirname(small_legacy_h5[0]), SAVED_HERE)
    written_by = "3.11 or later" if sys.version_info >= (3, 11) else "3.8, 3.9 or 3.10"
    with pytest.raises(kl.UntranslatableLambdaError,
                       match=r"Lambda layer 'Scale': its function cannot be translated: the code "
                             r"object was written by Python {}".format(written_by)) as caught:
        kl.load_model(path)
    assert "float_model.lambda_functions" in str(caught.value)
    assert "Scale: \"lambda inputs, scale: ...\"" in str(caught.value)
    model = kl.load_model(path, lambda_sources={"Scale": "lambda x, scale: x * scale"})
    np.testing.assert_allclose(model.predict(small_legacy_h5[1], verbose=0),
                               small_legacy_h5[2], rtol=1e-6)


def test_tf_api_paths_exist_in_this_tensorflow():
    import tensorflow as tf

    assert kl.TF_API and all(isinstance(path, str) for path in kl.TF_API)
    for path in kl.TF_API:
        value = tf
        for part in path.split("."):
            value = getattr(value, part)  # AttributeError names the missing part


# ---------------------------------------------------------------------------------------------
# The real FaceNet h5 (fixture `facenet_h5` from tests/conftest.py)
# ---------------------------------------------------------------------------------------------

def test_facenet_lambdas_translate(facenet_h5):
    config = read_model_config(facenet_h5)
    layers = {layer["name"]: layer["config"] for layer in kl._walk_layers(config)
              if layer["class_name"] == "Lambda"}
    items = kl.model_lambda_layers(facenet_h5)
    assert len(layers) == 21 and sorted(i.layer for i in items) == sorted(layers)
    assert {layer["arguments"]["scale"] for layer in layers.values()} == {0.17, 0.1, 0.2, 1.0}
    first, second = np.full((2, 3), 2.0), np.arange(6.0).reshape(2, 3)
    for item in items:
        assert item.source == "lambda inputs, scale: inputs[0] + inputs[1] * scale"
        assert (item.key, item.origin, item.global_names, item.closure) == (
            "function", "translated", (), {})
        scale = layers[item.layer]["arguments"]["scale"]
        function = kl.compile_lambda(item.source, {})
        np.testing.assert_allclose(function([first, second], scale=scale),
                                   first + second * scale)
    text = layers["Block35_1_ScaleSum"]["function"][0]
    code = read_marshal(kl.keras_code_bytes(text))
    assert bytecode_format(code.code) == WORDCODE


def test_facenet_loads_with_batch_one(facenet_h5):
    model = kl.load_model(facenet_h5, batch_size=1)
    assert model.input_shape == (1, 160, 160, 3) and model.output_shape == (1, 128)
    assert sum(1 for layer in model.layers if type(layer).__name__ == "Lambda") == 21
    embedding = model.predict(np.random.RandomState(0).standard_normal(
        (1, 160, 160, 3)).astype(np.float32), verbose=0)
    assert embedding.shape == (1, 128) and np.all(np.isfinite(embedding))
    assert np.std(embedding) > 0


def test_output_shape_lambdas_are_translated_or_dropped():
    shape_code = Code(wordcode(("LOAD_FAST", 0), "RETURN_VALUE"), ["input_shape"])
    config = lambda_config(keras_entry(FACENET_36), arguments={"scale": 0.1})
    lambda_layer = config["config"]["layers"][1]["config"]
    lambda_layer.update(output_shape=keras_entry(shape_code), output_shape_type="lambda")
    items = kl.lambda_layers(config)
    assert [(i.key, i.source) for i in items] == [
        ("function", "lambda inputs, scale: inputs[0] + inputs[1] * scale"),
        ("output_shape", "lambda input_shape: input_shape")]
    objects = kl.apply_lambda_layers(config, items, {})
    assert lambda_layer["function_type"] == lambda_layer["output_shape_type"] == "function"
    assert objects[lambda_layer["output_shape"]]((None, 4)) == (None, 4)
    assert objects[lambda_layer["function"]]([1.0, 2.0], scale=0.1) == pytest.approx(1.2)
    # an output_shape the translator cannot read is dropped: Keras infers the shape itself
    lambda_layer.update(output_shape=keras_entry(CONDITIONAL_36), output_shape_type="lambda",
                        function=keras_entry(FACENET_36), function_type="lambda")
    items = kl.lambda_layers(config)
    assert [(i.key, i.origin) for i in items] == [("function", "translated"),
                                                   ("output_shape", "dropped")]
    kl.apply_lambda_layers(config, items, {})
    assert (lambda_layer["output_shape"], lambda_layer["output_shape_type"]) == (None, "raw")
    assert kl.set_batch_size(config, 1) == 1
    assert config["config"]["layers"][0]["config"]["batch_input_shape"] == [1, 4]


def test_unknown_global_names_are_reported_with_the_layer():
    uses_k = Code(wordcode(("LOAD_GLOBAL", 0), ("LOAD_ATTR", 1), ("LOAD_FAST", 0),
                           ("CALL_FUNCTION", 1), "RETURN_VALUE"), ["x"], names=("KB", "abs"))
    config = lambda_config(keras_entry(uses_k), name="Abs")
    items = kl.lambda_layers(config)
    assert items[0].source == "lambda x: KB.abs(x)" and items[0].global_names == ("KB",)
    with pytest.raises(kl.UntranslatableLambdaError, match="Lambda layer 'Abs'.*KB"):
        kl.apply_lambda_layers(config, items, {"K": np})
    objects = kl.apply_lambda_layers(lambda_config(keras_entry(uses_k), name="Abs"), items,
                                     {"KB": np})
    assert list(objects.values())[0](np.array([-2.0])) == 2.0
