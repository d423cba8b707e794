"""Read Python 3.5-3.7 code objects from marshal data and translate simple lambdas to source.

Keras 2.x saves a `Lambda` layer's function as `marshal.dumps(function.__code__)`. The marshal
format of code objects changes with the Python version, so Python 3.8+ cannot read what
Python 3.6 wrote (`marshal.loads` fails with "EOF read where object expected"), and even if it
could, the bytecode itself would not run there. This package never executes the stored
bytecode. It

1. reads the marshal data itself (`read_marshal`, in `marshal_reader`), and recognises code
   objects written by Python 3.8+ (`NewerPythonError` says which Pythons),
2. decodes the instructions (`decode_instructions`, `disassemble`, in `instructions`), and
3. translates the bytecode of a *simple expression lambda* back into Python source
   (`lambda_source`, in `translator`), e.g.
   `lambda inputs, scale: inputs[0] + inputs[1] * scale`.

It is pure Python (no TensorFlow, no h5py, no project imports) and runs on Python 3.7+. Every
error it raises is a `BytecodeError` (a ValueError). `facenet_edgetpu.lib.keras_loader` uses it
to load Keras models.
"""
from facenet_edgetpu.lambda_bytecode.errors import (
    BytecodeError, MarshalError, NewerPythonError, UntranslatableError)
from facenet_edgetpu.lambda_bytecode.instructions import (
    LEGACY_BYTECODE, WORDCODE, Instruction, bytecode_format, decode_instructions, disassemble)
from facenet_edgetpu.lambda_bytecode.marshal_reader import CodeObject, read_marshal
from facenet_edgetpu.lambda_bytecode.translator import Translation, lambda_source

__all__ = [
    "BytecodeError", "MarshalError", "NewerPythonError", "UntranslatableError",
    "LEGACY_BYTECODE", "WORDCODE", "Instruction", "bytecode_format", "decode_instructions",
    "disassemble", "CodeObject", "read_marshal", "Translation", "lambda_source",
]
