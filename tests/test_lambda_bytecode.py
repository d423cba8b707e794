"""Tests of facenet_edgetpu/lambda_bytecode: the marshal reader, the instruction decoder and the
translator, on hand-made Python 3.5-3.7 code objects (tests/legacy_code.py)."""
import marshal

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
    newer = Code(FACENET_36.code, ["inputs", "scale"], consts=(None, 0, 1), posonly=0)
    with pytest.raises(lb.MarshalError, match="Python 3.8 or later"):
        lb.read_marshal(marshalled(newer))


def test_disassembly_lists_instructions_with_their_meaning():
    listing = lb.disassemble(lb.read_marshal(marshalled(FACENET_36)))
    assert listing.splitlines()[0] == (
        "  (3.6+ wordcode; arguments inputs, scale; constants (None, 0, 1); names (); "
        "free variables ())")
    assert "   0 LOAD_FAST                 0 (inputs)" in listing
    assert "   2 LOAD_CONST                1 (0)" in listing
    assert listing.splitlines()[-1] == "    18 RETURN_VALUE"
