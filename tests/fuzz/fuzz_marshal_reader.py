"""Fuzz the marshal reader and the translator of facenet_edgetpu.lambda_bytecode.

The input is marshal data as it comes out of a Keras h5 file's Lambda entry. The documented
error is `BytecodeError` (MarshalError, NewerPythonError, UntranslatableError); any other
exception is a finding.

Run: python -m tests.fuzz.fuzz_marshal_reader <corpus dir> [libFuzzer options]
"""
from __future__ import annotations

import glob
import marshal
import os
from typing import Dict

from tests.fuzz.harness import REPO, fuzz_main

INSTRUMENTED = ("facenet_edgetpu.lambda_bytecode",)
SOURCES = tuple(sorted(glob.glob(os.path.join(REPO, "facenet_edgetpu", "lambda_bytecode",
                                              "*.py"))))
SEED_FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "marshal")


def one_input(data: bytes) -> None:
    from facenet_edgetpu import lambda_bytecode

    try:
        value = lambda_bytecode.read_marshal(data)
        if isinstance(value, lambda_bytecode.CodeObject):
            lambda_bytecode.disassemble(value)
            lambda_bytecode.lambda_source(value)
    except lambda_bytecode.BytecodeError:
        pass


def seeds() -> Dict[str, bytes]:
    """FaceNet's real Lambda (Python 3.6), the hand-made 3.5-3.7 code objects of the tests,
    the 3.8 and 3.11 layouts, this Python's own code objects and data objects in every
    marshal version."""
    from tests.legacy_code import CASES, CONDITIONAL_36, FACENET_36, Code, marshalled

    found = {}
    for path in sorted(glob.glob(os.path.join(SEED_FILES, "*"))):
        with open(path, "rb") as handle:
            found[os.path.basename(path)] = handle.read()
    for name, code, *_ in CASES:
        found["case " + name] = marshalled(code)
    found["conditional 3.6"] = marshalled(CONDITIONAL_36)
    for python in ("3.8", "3.11"):
        found["layout " + python] = marshalled(Code(FACENET_36.code, ["inputs", "scale"],
                                                    consts=(None, 0, 1), python=python))
    scale = 0.5
    for name, function in (("lambda", lambda inputs, scale: inputs[0] + inputs[1] * scale),
                           ("closure", lambda x, *, k=2: [x * scale, {k: x}, x[1:2, ...]])):
        found["this python " + name] = marshal.dumps(function.__code__)
    data = (None, True, False, Ellipsis, StopIteration, 7, -2 ** 70, 1.5, 2 - 1j, b"\x00",
            "caf\u00e9", ["a", ("a", "a")], {"k": {1, 2}}, frozenset({3}))
    for version in range(5):
        found["data v{}".format(version)] = marshal.dumps(data, version)
    return found


if __name__ == "__main__":
    fuzz_main(INSTRUMENTED, one_input)
