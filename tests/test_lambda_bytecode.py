"""Tests of facenet_edgetpu/lambda_bytecode: the marshal reader, the instruction decoder and the
translator, on hand-made Python 3.5-3.7 code objects (tests/legacy_code.py)."""
import marshal
import re
import sys

import pytest

from facenet_edgetpu import lambda_bytecode as lb
from tests.legacy_code import CASES, FACENET_35, FACENET_36, Code, marshalled


def translate(code, defaults=()):
    return lb.lambda_source(lb.read_marshal(marshalled(code)), defaults)


@pytest.mark.parametrize("name,code,defaults,closure,expected,reference,args", CASES,
                         ids=[case[0] for case in CASES])
def test_hand_made_lambdas_translate(name, code, defaults, closure, expected, reference, args):
    translation = translate(code, defaults or ())
    assert translation.source == expected
    assert set(translation.global_names) <= {"K", "np"}


def test_package_needs_neither_tensorflow_nor_h5py():
    import subprocess
    import sys

    probe = ("import sys; import facenet_edgetpu.lambda_bytecode; "
             "print(sorted(m for m in ('tensorflow', 'h5py', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], stdout=subprocess.PIPE, check=True,
                          universal_newlines=True)
    assert done.stdout.strip() == "[]"


def test_bytecode_format_is_told_by_the_last_bytes():
    assert lb.bytecode_format(FACENET_36.code) == lb.WORDCODE
    assert lb.bytecode_format(FACENET_35.code) == lb.LEGACY_BYTECODE
    assert FACENET_36.code.endswith(b"\x53\x00") and FACENET_35.code.endswith(b"\x53")
    # the same instructions, two encodings, one decoding
    ops36 = [(i.opname, i.arg) for i in lb.decode_instructions(FACENET_36.code, lb.WORDCODE)]
    ops35 = [(i.opname, i.arg) for i in lb.decode_instructions(FACENET_35.code,
                                                               lb.LEGACY_BYTECODE)]
    assert ops36 == ops35
    assert ops36[0] == ("LOAD_FAST", 0) and ops36[-1] == ("RETURN_VALUE", None)
    with pytest.raises(lb.BytecodeError, match="RETURN_VALUE"):
        lb.bytecode_format(b"\x7c\x00\x01\x00")


def test_marshal_reader_agrees_with_cpython_on_data_objects():
    # Data objects marshal the same way (format 4) on 3.4-3.7 and on this Python.
    values = [None, True, False, 0, -7, 2 ** 40, -(2 ** 70), 1.5, -0.0, 2j + 1, b"\x00\xff",
              "inputs", "caf\u00e9 \u2603", ("inputs", "inputs", 0.17, (1, 2)), [1, "a"],
              {"scale": 0.2}, frozenset({1, 2}), Ellipsis]
    for value in values:
        assert lb.read_marshal(marshal.dumps(value, 4)) == value


def test_marshal_reader_reads_the_hand_made_code_object():
    code = lb.read_marshal(marshalled(FACENET_36))
    assert isinstance(code, lb.CodeObject)
    assert code.varnames == ("inputs", "scale") and code.argcount == 2
    assert code.consts == (None, 0, 1) and code.name == "<lambda>"
    assert code.code == FACENET_36.code


def test_python38_code_layout_is_refused_clearly():
    newer = Code(FACENET_36.code, ["inputs", "scale"], consts=(None, 0, 1), python="3.8")
    with pytest.raises(lb.MarshalError, match=r"written by Python 3\.8") as caught:
        lb.read_marshal(marshalled(newer))
    assert isinstance(caught.value, lb.NewerPythonError)
    assert caught.value.python_versions == "3.8-3.10"
    assert "written by Python 3.8, 3.9 or 3.10" in str(caught.value)
    assert "only the bytecode of Python 3.5-3.7 can be translated" in str(caught.value)


def test_python311_code_layout_is_refused_clearly():
    newer = Code(FACENET_36.code, ["inputs", "scale"], consts=(None, 0, 1), python="3.11",
                 name="scaled_sum")
    with pytest.raises(lb.NewerPythonError) as caught:
        lb.read_marshal(marshalled(newer))
    assert caught.value.python_versions == "3.11 or later"
    assert "written by Python 3.11 or later" in str(caught.value)
    assert "qualified name 'scaled_sum'" in str(caught.value)
    assert "only the bytecode of Python 3.5-3.7 can be translated" in str(caught.value)


def _python_that_wrote(version_info):
    """What the reader should say about a code object marshalled by `version_info`."""
    if version_info >= (3, 11):
        return "3.11 or later"
    return "3.8-3.10" if version_info >= (3, 8) else None


@pytest.mark.skipif(sys.version_info < (3, 8), reason="this Python writes the readable layout")
def test_code_marshalled_by_this_python_names_the_python_that_wrote_it():
    scale = 0.17

    def nested(inputs, offset=1.0):
        return [inputs[0] + inputs[1] * scale + offset for _ in range(2)]

    for function in (lambda inputs, scale: inputs[0] + inputs[1] * scale, nested):
        with pytest.raises(lb.NewerPythonError) as caught:
            lb.read_marshal(marshal.dumps(function.__code__))
        assert caught.value.python_versions == _python_that_wrote(sys.version_info)
        assert "3.5-3.7" in str(caught.value)


def test_newer_layouts_with_damaged_fields_are_malformed_not_newer():
    # the 3.8-3.10 layout, but the bytecode string is cut short: not a NewerPythonError
    data = marshalled(Code(FACENET_36.code, ["x"], python="3.8"))
    with pytest.raises(lb.MarshalError, match="ends early") as caught:
        lb.read_marshal(data[:40])
    assert not isinstance(caught.value, lb.NewerPythonError)
    # the 3.11 layout with an int where the qualified name belongs
    data = marshal.dumps((lambda x: x).__code__)
    if sys.version_info >= (3, 11):
        qualname_at = data.index(b"<lambda>") + len(b"<lambda>")  # after the name
        damaged = data[:qualname_at] + b"i\x05\x00\x00\x00" + data[qualname_at + 5:]
        with pytest.raises(lb.MarshalError, match="its qualname is of type int, not str"):
            lb.read_marshal(damaged)


def test_disassembly_lists_instructions_with_their_meaning():
    listing = lb.disassemble(lb.read_marshal(marshalled(FACENET_36)))
    assert listing.splitlines()[0] == (
        "  (3.6+ wordcode; arguments inputs, scale; constants (None, 0, 1); names (); "
        "free variables ())")
    assert "   0 LOAD_FAST                 0 (inputs)" in listing
    assert "   2 LOAD_CONST                1 (0)" in listing
    assert listing.splitlines()[-1] == "    18 RETURN_VALUE"


def test_shared_and_nested_data_is_read_within_the_limits():
    shared = (1.5, "scale")
    value = (shared, [shared, shared], {"k": shared})  # CPython writes references for these
    assert lb.read_marshal(marshal.dumps(value)) == value
    nested = "inputs"
    for _ in range(95):
        nested = (nested,)
    assert lb.read_marshal(marshal.dumps(nested)) == nested


@pytest.mark.parametrize("data,problem", [
    (b"<\x01\x00\x00\x00[\x00\x00\x00\x00", "the set at offset 0 holds an unhashable item"),
    (b"{[\x00\x00\x00\x00N0", "the dict at offset 0 has an unhashable key"),
    (b")\x02N0", "the container at offset 0 holds a NULL marker"),
    (b"f\x03x.5", "the float at offset 0 is not a number: b'x.5'"),
    (b"t\x01\x00\x00\x00\xff", "the string at offset 0 is not UTF-8"),
])
def test_damaged_data_objects_are_refused_with_what_is_wrong(data, problem):
    with pytest.raises(lb.MarshalError, match=re.escape(problem)):
        lb.read_marshal(data)


@pytest.mark.parametrize("code,problem", [
    (Code(FACENET_36.code, ["inputs"], names=(1,)), "its names is not a tuple of strings"),
    (Code(FACENET_36.code, ["inputs"], flags=0x43 | 0x04), "more arguments than variable names"),
    (Code(FACENET_36.code, [], kwonly=1), "a negative argument or local count"),
])
def test_code_objects_cpython_would_refuse_are_refused(code, problem):
    with pytest.raises(lb.MarshalError, match="malformed code object at offset 0 of the "
                                              "marshal data: .*" + problem):
        lb.read_marshal(marshalled(code))
