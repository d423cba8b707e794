"""Regression tests: every input in tests/fuzz/findings/ once escaped its parser as an exception
other than the documented one (a finding of the fuzzers, or of the review of their results).
Each must now give the documented error with a message saying what is wrong. Fast: no fuzzing,
no TensorFlow."""
import glob
import os

import pytest

from edgetpu_analyzer.parse import CompilerOutputError, parse_compiler_stdout
from facenet_edgetpu.lambda_bytecode import MarshalError, read_marshal
from tests.fuzz import fuzz_compiler_output, fuzz_marshal_reader
from tests.fuzz.harness import FINDINGS


def _marshal(data):
    return read_marshal(data)


def _compiler_stdout(data):
    return parse_compiler_stdout(data.decode("utf-8", "replace"))


# (fuzzer, input file, parser, documented error, what the message must say). "review": not
# found by the fuzzer in its runs, but found by reviewing the reader after a finding.
EXPECTED = [
    ("marshal_reader", "invalid-utf8-string", _marshal, MarshalError,
     r"the string at offset 62 is not UTF-8 \(invalid start byte\)"),
    ("marshal_reader", "float-text-not-a-number", _marshal, MarshalError,
     r"the float at offset 60 is not a number: b'\\x19\\x00'"),
    # the fuzzer's input: a dict whose key was a set (the reader now reads the whole dict
    # before it builds it, and this cut-short input ends first) ...
    ("marshal_reader", "unhashable-dict-key", _marshal, MarshalError,
     r"marshal data ends early"),
    # ... and a complete one (review)
    ("marshal_reader", "dict-with-a-set-as-key", _marshal, MarshalError,
     r"the dict at offset 0 has an unhashable key \(unhashable type: 'set'\)"),
    ("marshal_reader", "varnames-shorter-than-arguments", _marshal, MarshalError,
     r"malformed code object at offset 0 of the marshal data: it has more arguments than "
     r"variable names"),
    # review: RecursionError
    ("marshal_reader", "tuples-nested-1500-deep", _marshal, MarshalError,
     r"the marshal data nests objects more than 100 deep \(offset 200\)"),
    # review: ValueError "Exceeds the limit (4300 digits) for integer string conversion"
    ("marshal_reader", "int-constant-of-5000-digits", _marshal, MarshalError,
     r"the integer at offset 37 has 1108 digits of 15 bits, more than the 900"),
    # review: a constant of 2**30 objects in 300 bytes; listing it never ends
    ("marshal_reader", "tuple-expanding-to-2-to-the-30-through-references", _marshal,
     MarshalError, r"the object at offset 63 expands to 131071 objects nesting 16 deep through "
                   r"references"),
    # review: a constant nesting 440 deep; RecursionError when it is rendered as source
    ("marshal_reader", "tuples-chained-440-deep-through-references", _marshal, MarshalError,
     r"the object at offset 734 expands to 102 objects nesting 101 deep through references"),
    # ValueError "Exceeds the limit (4300 digits)" from int()
    ("compiler_output", "count-of-5000-digits", _compiler_stdout, CompilerOutputError,
     r"not edgetpu_compiler output: a number of 5000 digits in the line 'Number of Edge TPU "
     r"subgraphs: 7777"),
]

ONE_INPUT = {"marshal_reader": fuzz_marshal_reader.one_input,
             "compiler_output": fuzz_compiler_output.one_input}


def _finding(fuzzer, name):
    with open(os.path.join(FINDINGS, fuzzer, name), "rb") as handle:
        return handle.read()


@pytest.mark.parametrize("fuzzer,name,parser,error,message", EXPECTED,
                         ids=["{}/{}".format(case[0], case[1]) for case in EXPECTED])
def test_finding_gives_the_documented_error(fuzzer, name, parser, error, message):
    with pytest.raises(error, match=message):
        parser(_finding(fuzzer, name))


def test_every_committed_finding_has_an_expectation():
    committed = sorted(os.path.relpath(path, FINDINGS).replace(os.sep, "/")
                       for path in glob.glob(os.path.join(FINDINGS, "*", "*")))
    assert committed == sorted("{}/{}".format(case[0], case[1]) for case in EXPECTED)


@pytest.mark.parametrize("fuzzer", sorted(ONE_INPUT))
def test_seeds_and_findings_pass_the_fuzz_target(fuzzer):
    """What each fuzzer starts from runs through its target without a finding (the tflite
    fuzzer's seeds need the TF converter and are checked by the fuzz run itself)."""
    module = {"marshal_reader": fuzz_marshal_reader,
              "compiler_output": fuzz_compiler_output}[fuzzer]
    inputs = list(module.seeds().values()) + [
        _finding(fuzzer, os.path.basename(path))
        for path in glob.glob(os.path.join(FINDINGS, fuzzer, "*"))]
    assert len(inputs) >= 5
    for data in inputs:
        ONE_INPUT[fuzzer](data)
