"""Tests of facenet_edgetpu/lib/legacy_keras.py: the marshal reader, the bytecode translator and the loader.

The legacy code objects are built by hand here: a small marshal encoder (format version 4, as
Python 3.4-3.7 write it, with references) and assemblers for Python 3.5 bytecode and 3.6/3.7
wordcode, using the real opcode numbers of those Pythons.
"""
import base64
import json
import marshal
import struct
import warnings

import h5py
import numpy as np
import pytest

from facenet_edgetpu.lib import legacy_keras as lk
from facenet_edgetpu.lib.keras_h5 import KerasFileError

# ---------------------------------------------------------------------------------------------
# Hand-made legacy code objects
# ---------------------------------------------------------------------------------------------

# Opcode numbers of CPython 3.5-3.7 (Lib/opcode.py of those versions).
OPCODES = {
    "UNARY_NEGATIVE": 11, "UNARY_NOT": 12, "UNARY_INVERT": 15, "BINARY_POWER": 19,
    "BINARY_MULTIPLY": 20, "BINARY_MODULO": 22, "BINARY_ADD": 23, "BINARY_SUBTRACT": 24,
    "BINARY_SUBSCR": 25, "BINARY_FLOOR_DIVIDE": 26, "BINARY_TRUE_DIVIDE": 27,
    "BINARY_AND": 64, "RETURN_VALUE": 83, "LOAD_CONST": 100, "BUILD_TUPLE": 102,
    "BUILD_LIST": 103, "LOAD_ATTR": 106, "COMPARE_OP": 107, "JUMP_FORWARD": 110,
    "POP_JUMP_IF_FALSE": 114, "LOAD_GLOBAL": 116, "LOAD_FAST": 124, "STORE_FAST": 125,
    "CALL_FUNCTION": 131, "BUILD_SLICE": 133, "LOAD_DEREF": 136, "CALL_FUNCTION_KW": 141,
    "EXTENDED_ARG": 144, "BUILD_CONST_KEY_MAP": 156, "LOAD_METHOD": 160, "CALL_METHOD": 161,
}
HAVE_ARGUMENT = 90


def wordcode(*instructions):
    """Python 3.6/3.7: every instruction is (opcode, 8-bit argument); EXTENDED_ARG for more."""
    out = bytearray()
    for name, arg in (i if isinstance(i, tuple) else (i, 0) for i in instructions):
        for shift in (24, 16, 8):
            if arg >> shift:
                out += bytes([OPCODES["EXTENDED_ARG"], (arg >> shift) & 0xFF])
        out += bytes([OPCODES[name], arg & 0xFF])
    return bytes(out)


def bytecode35(*instructions):
    """Python 3.5: (opcode) without argument, (opcode, 16-bit little-endian argument) with."""
    out = bytearray()
    for name, arg in (i if isinstance(i, tuple) else (i, None) for i in instructions):
        opcode = OPCODES[name]
        if opcode >= HAVE_ARGUMENT:
            if arg >> 16:
                out += bytes([OPCODES["EXTENDED_ARG"]]) + struct.pack("<H", arg >> 16)
            out += bytes([opcode]) + struct.pack("<H", arg & 0xFFFF)
        else:
            out += bytes([opcode])
    return bytes(out)


class Code(object):
    def __init__(self, code, argnames, consts=(None,), names=(), freevars=(), kwonly=0,
                 flags=0x43, name="<lambda>", posonly=None):
        self.code = code
        self.argnames = tuple(argnames)
        self.consts = tuple(consts)
        self.names = tuple(names)
        self.freevars = tuple(freevars)
        self.kwonly = kwonly
        self.flags = flags | (0x10 if freevars else 0)
        self.name = name
        self.posonly = posonly  # set to an int to write a Python 3.8+ layout


class MarshalWriter(object):
    """Format version 4 (Python 3.4-3.7): FLAG_REF on code objects and interned names."""
    FLAG_REF = 0x80

    def __init__(self):
        self.out = bytearray()
        self.interned = {}
        self.ref_count = 0

    def _int32(self, value):
        self.out += struct.pack("<i", value)

    def _ref(self):
        index = self.ref_count
        self.ref_count += 1
        return index

    def dump(self, value):
        if value is None:
            self.out += b"N"
        elif value is True:
            self.out += b"T"
        elif value is False:
            self.out += b"F"
        elif isinstance(value, int) and -2 ** 31 <= value < 2 ** 31:
            self.out += b"i"
            self._int32(value)
        elif isinstance(value, int):
            digits = []
            rest = abs(value)
            while rest:
                digits.append(rest & 0x7FFF)
                rest >>= 15
            self.out += b"l"
            self._int32(len(digits) if value > 0 else -len(digits))
            for digit in digits:
                self.out += struct.pack("<H", digit)
        elif isinstance(value, float):
            self.out += bytes([ord("g") | self.FLAG_REF])
            self._ref()
            self.out += struct.pack("<d", value)
        elif isinstance(value, bytes):
            self.out += b"s"
            self._int32(len(value))
            self.out += value
        elif isinstance(value, str):
            if value in self.interned:  # a reference to the earlier copy, as CPython writes it
                self.out += b"r"
                self._int32(self.interned[value])
                return
            self.interned[value] = self._ref()
            data = value.encode("ascii")
            self.out += bytes([ord("Z") | self.FLAG_REF, len(data)]) + data
        elif isinstance(value, tuple):
            if len(value) < 256:
                self.out += bytes([ord(")"), len(value)])
            else:
                self.out += b"("
                self._int32(len(value))
            for item in value:
                self.dump(item)
        elif isinstance(value, Code):
            self.out += bytes([ord("c") | self.FLAG_REF])
            self._ref()
            counts = [len(value.argnames) - value.kwonly]
            if value.posonly is not None:
                counts.append(value.posonly)
            counts += [value.kwonly, len(value.argnames), 8, value.flags]
            for count in counts:
                self._int32(count)
            for field in (value.code, value.consts, value.names, value.argnames,
                          value.freevars, (), "<test>", value.name):
                self.dump(field)
            self._int32(1)
            self.dump(b"")
        else:
            raise TypeError(value)
        return self


def marshalled(code):
    return bytes(MarshalWriter().dump(code).out)


def keras_entry(code, defaults=None, closure=None, raw=False):
    """A Keras Lambda `function` entry: [code text, defaults, closure] as func_dump wrote it."""
    data = marshalled(code)
    if raw:  # Keras 2.0.x
        text = data.decode("raw_unicode_escape")
    else:  # Keras >= 2.1: base64 with newlines every 76 characters
        text = base64.encodebytes(data).decode("ascii")
    return [text, defaults, closure]


FACENET_36 = Code(
    wordcode(("LOAD_FAST", 0), ("LOAD_CONST", 1), "BINARY_SUBSCR", ("LOAD_FAST", 0),
             ("LOAD_CONST", 2), "BINARY_SUBSCR", ("LOAD_FAST", 1), "BINARY_MULTIPLY",
             "BINARY_ADD", "RETURN_VALUE"),
    ["inputs", "scale"], consts=(None, 0, 1))
FACENET_35 = Code(
    bytecode35(("LOAD_FAST", 0), ("LOAD_CONST", 1), "BINARY_SUBSCR", ("LOAD_FAST", 0),
               ("LOAD_CONST", 2), "BINARY_SUBSCR", ("LOAD_FAST", 1), "BINARY_MULTIPLY",
               "BINARY_ADD", "RETURN_VALUE"),
    ["inputs", "scale"], consts=(None, 0, 1))
# a if a > 0 else -a: control flow, beyond the translator.
CONDITIONAL_36 = Code(
    wordcode(("LOAD_FAST", 0), ("LOAD_CONST", 1), ("COMPARE_OP", 4), ("POP_JUMP_IF_FALSE", 12),
             ("LOAD_FAST", 0), "RETURN_VALUE", ("LOAD_FAST", 0), "UNARY_NEGATIVE",
             "RETURN_VALUE"),
    ["a"], consts=(None, 0))


def translate(code, defaults=()):
    return lk.lambda_source(lk.read_marshal(marshalled(code)), defaults)


# Each case: (name, code object, defaults, closure, expected source, reference, call arguments)
CASES = [
    ("facenet 3.6", FACENET_36, None, None,
     "lambda inputs, scale: inputs[0] + inputs[1] * scale",
     lambda inputs, scale: inputs[0] + inputs[1] * scale,
     ([np.arange(4.0), np.ones(4)], 0.17)),
    ("facenet 3.5", FACENET_35, None, None,
     "lambda inputs, scale: inputs[0] + inputs[1] * scale",
     lambda inputs, scale: inputs[0] + inputs[1] * scale,
     ([np.arange(4.0), np.ones(4)], 0.2)),
    # 3.6 keyword call, slices in a tuple subscript, power: K.mean(x, axis=1) - x[:, 0] ** 2
    ("3.6 keyword call and slices", Code(
        wordcode(("LOAD_GLOBAL", 0), ("LOAD_ATTR", 1), ("LOAD_FAST", 0), ("LOAD_CONST", 1),
                 ("LOAD_CONST", 2), ("CALL_FUNCTION_KW", 2), ("LOAD_FAST", 0),
                 ("LOAD_CONST", 0), ("LOAD_CONST", 0), ("BUILD_SLICE", 2), ("LOAD_CONST", 3),
                 ("BUILD_TUPLE", 2), "BINARY_SUBSCR", ("LOAD_CONST", 4), "BINARY_POWER",
                 "BINARY_SUBTRACT", "RETURN_VALUE"),
        ["x"], consts=(None, 1, ("axis",), 0, 2), names=("K", "mean")), None, None,
     "lambda x: K.mean(x, axis=1) - x[:, 0] ** 2",
     lambda x: np.mean(x, axis=1) - x[:, 0] ** 2,
     (np.arange(6.0).reshape(2, 3),)),
    # 3.7 method call, default argument, unary minus of a parenthesised difference
    ("3.7 method call and default", Code(
        wordcode(("LOAD_FAST", 0), ("LOAD_FAST", 1), "BINARY_SUBTRACT", "UNARY_NEGATIVE",
                 ("LOAD_FAST", 0), ("LOAD_METHOD", 0), ("CALL_METHOD", 0),
                 "BINARY_TRUE_DIVIDE", "RETURN_VALUE"),
        ["x", "y"], names=("sum",)), [2.5], None,
     "lambda x, y=2.5: -(x - y) / x.sum()",
     lambda x, y=2.5: -(x - y) / x.sum(),
     (np.arange(1.0, 5.0),)),
    # 3.5 keyword call: np.clip(t, a_min=0, a_max=1) (keyword pairs on the stack)
    ("3.5 keyword call", Code(
        bytecode35(("LOAD_GLOBAL", 0), ("LOAD_ATTR", 1), ("LOAD_FAST", 0), ("LOAD_CONST", 1),
                   ("LOAD_CONST", 2), ("LOAD_CONST", 3), ("LOAD_CONST", 4),
                   ("CALL_FUNCTION", 1 | (2 << 8)), "RETURN_VALUE"),
        ["t"], consts=(None, "a_min", 0, "a_max", 1), names=("np", "clip")), None, None,
     "lambda t: np.clip(t, a_min=0, a_max=1)",
     lambda t: np.clip(t, a_min=0, a_max=1),
     (np.array([-1.0, 0.5, 2.0]),)),
    # 3.6 closure variable (Keras saves its value) and operator precedence: (a + b) * factor
    ("3.6 closure and parentheses", Code(
        wordcode(("LOAD_FAST", 0), ("LOAD_FAST", 1), "BINARY_ADD", ("LOAD_DEREF", 0),
                 "BINARY_MULTIPLY", "RETURN_VALUE"),
        ["a", "b"], freevars=("factor",)), None, [3.0],
     "lambda a, b: (a + b) * factor",
     lambda a, b: (a + b) * 3.0,
     (2.0, 5.0)),
    # 3.6 right operands: a - (b - 1) // (-a) ** 2
    ("3.6 right-operand parentheses", Code(
        wordcode(("LOAD_FAST", 0), ("LOAD_FAST", 1), ("LOAD_CONST", 1), "BINARY_SUBTRACT",
                 ("LOAD_FAST", 0), "UNARY_NEGATIVE", ("LOAD_CONST", 2), "BINARY_POWER",
                 "BINARY_FLOOR_DIVIDE", "BINARY_SUBTRACT", "RETURN_VALUE"),
        ["a", "b"], consts=(None, 1, 2)), None, None,
     "lambda a, b: a - (b - 1) // (-a) ** 2",
     lambda a, b: a - (b - 1) // (-a) ** 2,
     (3, 20)),
    # 3.7 same-precedence right operands need parentheses: a - (b - a) - a / (a * b)
    ("3.7 same-precedence right operands", Code(
        wordcode(("LOAD_FAST", 0), ("LOAD_FAST", 1), ("LOAD_FAST", 0), "BINARY_SUBTRACT",
                 "BINARY_SUBTRACT", ("LOAD_FAST", 0), ("LOAD_FAST", 0), ("LOAD_FAST", 1),
                 "BINARY_MULTIPLY", "BINARY_TRUE_DIVIDE", "BINARY_SUBTRACT", "RETURN_VALUE"),
        ["a", "b"]), None, None,
     "lambda a, b: a - (b - a) - a / (a * b)",
     lambda a, b: a - (b - a) - a / (a * b),
     (3.0, 5.0)),
    # 3.5 comparison, list display and negative constant: [x >= -0.5, x % 2]
    ("3.5 comparison and list", Code(
        bytecode35(("LOAD_FAST", 0), ("LOAD_CONST", 1), ("COMPARE_OP", 5), ("LOAD_FAST", 0),
                   ("LOAD_CONST", 2), "BINARY_MODULO", ("BUILD_LIST", 2), "RETURN_VALUE"),
        ["x"], consts=(None, -0.5, 2)), None, None,
     "lambda x: [x >= -0.5, x % 2]",
     lambda x: [x >= -0.5, x % 2],
     (7,)),
    # 3.6 EXTENDED_ARG: the constant at index 300
    ("3.6 EXTENDED_ARG", Code(
        wordcode(("LOAD_FAST", 0), ("LOAD_CONST", 300), "BINARY_ADD", "RETURN_VALUE"),
        ["x"], consts=(None,) + tuple(range(1, 300)) + (1234567890123,)), None, None,
     "lambda x: x + 1234567890123",
     lambda x: x + 1234567890123,
     (1,)),
    # 3.6 dict display with constant keys and keyword-only argument: {'s': x * k}
    ("3.6 keyword-only argument and dict", Code(
        wordcode(("LOAD_FAST", 0), ("LOAD_FAST", 1), "BINARY_MULTIPLY", ("LOAD_CONST", 1),
                 ("BUILD_CONST_KEY_MAP", 1), "RETURN_VALUE"),
        ["x", "k"], consts=(None, ("s",)), kwonly=1), None, None,
     "lambda x, *, k: {'s': x * k}",
     lambda x, *, k: {"s": x * k},
     (4,)),
]


@pytest.mark.parametrize("name,code,defaults,closure,expected,reference,args", CASES,
                         ids=[case[0] for case in CASES])
def test_hand_made_lambdas_translate_and_compute(name, code, defaults, closure, expected,
                                                 reference, args):
    for raw in (False, True):
        item = lk.translate_keras_function(keras_entry(code, defaults, closure, raw), "L")
        assert item.source == expected
        assert item.origin == "translated"
    scope = {"K": np, "np": np}
    scope.update(item.closure)
    function = lk.compile_lambda(item.source, scope)
    kwargs = {"k": 3} if "*, k" in expected else {}
    got, want = function(*args, **kwargs), reference(*args, **kwargs)
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        got, want = list(got.values()), list(want.values())
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float))


def test_bytecode_format_is_told_by_the_last_bytes():
    assert lk.bytecode_format(FACENET_36.code) == lk.WORDCODE
    assert lk.bytecode_format(FACENET_35.code) == lk.LEGACY_BYTECODE
    assert FACENET_36.code.endswith(b"\x53\x00") and FACENET_35.code.endswith(b"\x53")
    # the same instructions, two encodings, one decoding
    ops36 = [(i.opname, i.arg) for i in lk.decode_instructions(FACENET_36.code, lk.WORDCODE)]
    ops35 = [(i.opname, i.arg) for i in lk.decode_instructions(FACENET_35.code,
                                                               lk.LEGACY_BYTECODE)]
    assert ops36 == ops35
    assert ops36[0] == ("LOAD_FAST", 0) and ops36[-1] == ("RETURN_VALUE", None)
    with pytest.raises(lk.LegacyKerasError, match="RETURN_VALUE"):
        lk.bytecode_format(b"\x7c\x00\x01\x00")


def test_marshal_reader_agrees_with_cpython_on_data_objects():
    # Data objects marshal the same way (format 4) on 3.4-3.7 and on this Python.
    values = [None, True, False, 0, -7, 2 ** 40, -(2 ** 70), 1.5, -0.0, 2j + 1, b"\x00\xff",
              "inputs", "caf\u00e9 \u2603", ("inputs", "inputs", 0.17, (1, 2)), [1, "a"],
              {"scale": 0.2}, frozenset({1, 2}), Ellipsis]
    for value in values:
        assert lk.read_marshal(marshal.dumps(value, 4)) == value


def test_marshal_reader_reads_the_hand_made_code_object():
    code = lk.read_marshal(marshalled(FACENET_36))
    assert isinstance(code, lk.CodeObject)
    assert code.varnames == ("inputs", "scale") and code.argcount == 2
    assert code.consts == (None, 0, 1) and code.name == "<lambda>"
    assert code.code == FACENET_36.code


def test_python38_code_layout_is_refused_clearly():
    newer = Code(FACENET_36.code, ["inputs", "scale"], consts=(None, 0, 1), posonly=0)
    with pytest.raises(lk.LegacyKerasError, match="Python 3.8 or later"):
        lk.read_marshal(marshalled(newer))


def test_untranslatable_bytecode_names_layer_shows_disassembly_and_the_fix():
    entry = keras_entry(CONDITIONAL_36)
    with pytest.raises(lk.UntranslatableLambdaError) as caught:
        lk.translate_keras_function(entry, "Block8_6_ScaleSum", {"scale": 1.0})
    message = str(caught.value)
    assert caught.value.layer == "Block8_6_ScaleSum"
    assert "Lambda layer 'Block8_6_ScaleSum'" in message
    assert "POP_JUMP_IF_FALSE" in message and "COMPARE_OP" in message
    assert "quantize:\n    lambda_functions:\n      Block8_6_ScaleSum: \"lambda inputs, scale" \
        in message
    assert "load_model(..., lambda_sources=" in message


def test_garbage_code_text_is_an_error_naming_the_layer():
    with pytest.raises(lk.UntranslatableLambdaError, match="Lambda layer 'Odd'"):
        lk.translate_keras_function([base64.b64encode(b"\xe3\x01\x02").decode(), None, None],
                                    "Odd")


@pytest.mark.parametrize("source,problem", [
    ("import os", "not a single Python expression"),
    ("inputs[0] + inputs[1]", "must be a lambda expression"),
    ("lambda inputs: inputs[0]; print(1)", "not a single Python expression"),
    ("", "non-empty string"),
])
def test_user_source_must_be_a_lambda_expression(source, problem):
    with pytest.raises(lk.LegacyKerasError, match=problem):
        lk.parse_lambda_source(source, "quantize.lambda_functions.X")


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
    with pytest.raises(lk.UntranslatableLambdaError, match="Lambda layer 'Scale'"):
        lk.lambda_layers(config)
    items = lk.lambda_layers(config, {"Scale": "lambda x, scale: x * scale"})
    assert [(i.layer, i.source, i.origin) for i in items] == [
        ("Scale", "lambda x, scale: x * scale", "params")]
    with pytest.raises(lk.LegacyKerasError, match="'Scal' which is not a Lambda layer.*Scale"):
        lk.lambda_layers(config, {"Scal": "lambda x, scale: x"})
    with pytest.raises(lk.LegacyKerasError, match="keyword argument.*scale"):
        lk.lambda_layers(config, {"Scale": "lambda x: x"})
    with pytest.raises(lk.LegacyKerasError, match="quantize.lambda_functions.Scale"):
        lk.lambda_layers(config, {"Scale": "__import__('os').getcwd()"})


def test_missing_and_non_h5_files_give_clear_errors(tmp_path):
    with pytest.raises(KerasFileError, match="not found"):
        lk.load_model(str(tmp_path / "absent.h5"))
    text = tmp_path / "model.h5"
    text.write_text("not a model\n")
    with pytest.raises(KerasFileError, match="is not an HDF5 file"):
        lk.load_model(str(text))
    weights = tmp_path / "weights.h5"
    with h5py.File(str(weights), "w") as handle:
        handle.create_dataset("dense/kernel", data=np.zeros((2, 2)))
    with pytest.raises(KerasFileError, match="no 'model_config' attribute.*dense"):
        lk.load_model(str(weights))


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
    # x * scale as Python 3.6 wrote it
    legacy = Code(wordcode(("LOAD_FAST", 0), ("LOAD_FAST", 1), "BINARY_MULTIPLY",
                           "RETURN_VALUE"), ["x", "scale"])
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layer = [l for l in config["config"]["layers"] if l["class_name"] == "Lambda"][0]
        layer["config"]["function"] = keras_entry(legacy)
        handle.attrs["model_config"] = json.dumps(config).encode("utf-8")  # bytes, as h5py 2
    features = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    return path, features, model.predict(features, verbose=0)


def test_load_model_translates_and_loads_weights(small_legacy_h5):
    path, features, expected = small_legacy_h5
    model = lk.load_model(path, batch_size=1)
    assert model.input_shape == (1, 4)
    np.testing.assert_allclose(model.predict(features, verbose=0), expected, rtol=1e-6)
    # a user-supplied source replaces the translation
    doubled = lk.load_model(path, lambda_sources={"Scale": "lambda x, scale: 2 * x * scale"})
    assert doubled.input_shape == (None, 4)
    np.testing.assert_allclose(doubled.predict(features, verbose=0), 2 * expected, rtol=1e-6)


def test_load_model_refuses_untranslatable_lambda_naming_the_layer(small_legacy_h5, tmp_path):
    path = str(tmp_path / "conditional.h5")
    with open(small_legacy_h5[0], "rb") as source, open(path, "wb") as target:
        target.write(source.read())
    with h5py.File(path, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layer = [l for l in config["config"]["layers"] if l["class_name"] == "Lambda"][0]
        layer["config"]["function"] = keras_entry(CONDITIONAL_36)
        handle.attrs["model_config"] = json.dumps(config)
    with pytest.raises(lk.UntranslatableLambdaError, match="Lambda layer 'Scale'.*\n.*"
                       "Decoded bytecode") as caught:
        lk.load_model(path)
    assert "POP_JUMP_IF_FALSE" in str(caught.value)
    model = lk.load_model(path, lambda_sources={"Scale": "lambda x, scale: x * scale"})
    np.testing.assert_allclose(model.predict(small_legacy_h5[1], verbose=0),
                               small_legacy_h5[2], rtol=1e-6)


def test_tf_api_paths_exist_in_this_tensorflow():
    import tensorflow as tf

    assert lk.TF_API and all(isinstance(path, str) for path in lk.TF_API)
    for path in lk.TF_API:
        value = tf
        for part in path.split("."):
            value = getattr(value, part)  # AttributeError names the missing part


# ---------------------------------------------------------------------------------------------
# The real FaceNet h5 (fixture `facenet_h5` from tests/conftest.py)
# ---------------------------------------------------------------------------------------------

def test_facenet_lambdas_translate(facenet_h5):
    config = lk.read_model_config(facenet_h5)
    layers = {layer["name"]: layer["config"] for layer in lk._walk_layers(config)
              if layer["class_name"] == "Lambda"}
    items = lk.model_lambda_layers(facenet_h5)
    assert len(layers) == 21 and sorted(i.layer for i in items) == sorted(layers)
    assert {layer["arguments"]["scale"] for layer in layers.values()} == {0.17, 0.1, 0.2, 1.0}
    first, second = np.full((2, 3), 2.0), np.arange(6.0).reshape(2, 3)
    for item in items:
        assert item.source == "lambda inputs, scale: inputs[0] + inputs[1] * scale"
        assert (item.key, item.origin, item.global_names, item.closure) == (
            "function", "translated", (), {})
        scale = layers[item.layer]["arguments"]["scale"]
        function = lk.compile_lambda(item.source, {})
        np.testing.assert_allclose(function([first, second], scale=scale),
                                   first + second * scale)
    text = layers["Block35_1_ScaleSum"]["function"][0]
    code = lk.read_marshal(lk.keras_code_bytes(text))
    assert lk.bytecode_format(code.code) == lk.WORDCODE


def test_facenet_loads_with_batch_one(facenet_h5):
    model = lk.load_model(facenet_h5, batch_size=1)
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
    items = lk.lambda_layers(config)
    assert [(i.key, i.source) for i in items] == [
        ("function", "lambda inputs, scale: inputs[0] + inputs[1] * scale"),
        ("output_shape", "lambda input_shape: input_shape")]
    objects = lk.apply_lambda_layers(config, items, {})
    assert lambda_layer["function_type"] == lambda_layer["output_shape_type"] == "function"
    assert objects[lambda_layer["output_shape"]]((None, 4)) == (None, 4)
    assert objects[lambda_layer["function"]]([1.0, 2.0], scale=0.1) == pytest.approx(1.2)
    # an output_shape the translator cannot read is dropped: Keras infers the shape itself
    lambda_layer.update(output_shape=keras_entry(CONDITIONAL_36), output_shape_type="lambda",
                        function=keras_entry(FACENET_36), function_type="lambda")
    items = lk.lambda_layers(config)
    assert [(i.key, i.origin) for i in items] == [("function", "translated"),
                                                   ("output_shape", "dropped")]
    lk.apply_lambda_layers(config, items, {})
    assert (lambda_layer["output_shape"], lambda_layer["output_shape_type"]) == (None, "raw")
    assert lk.set_batch_size(config, 1) == 1
    assert config["config"]["layers"][0]["config"]["batch_input_shape"] == [1, 4]


def test_unknown_global_names_are_reported_with_the_layer():
    uses_k = Code(wordcode(("LOAD_GLOBAL", 0), ("LOAD_ATTR", 1), ("LOAD_FAST", 0),
                           ("CALL_FUNCTION", 1), "RETURN_VALUE"), ["x"], names=("KB", "abs"))
    config = lambda_config(keras_entry(uses_k), name="Abs")
    items = lk.lambda_layers(config)
    assert items[0].source == "lambda x: KB.abs(x)" and items[0].global_names == ("KB",)
    with pytest.raises(lk.UntranslatableLambdaError, match="Lambda layer 'Abs'.*KB"):
        lk.apply_lambda_layers(config, items, {"K": np})
    objects = lk.apply_lambda_layers(lambda_config(keras_entry(uses_k), name="Abs"), items,
                                     {"KB": np})
    assert list(objects.values())[0](np.array([-2.0])) == 2.0
