"""Load Keras 2.x h5 models whose `Lambda` layers hold Python 3.5-3.7 bytecode, on any Python.

Keras 2.x saves a `Lambda` layer's function as `marshal.dumps(function.__code__)`, base64-encoded
(Keras >= 2.1) or decoded as `raw_unicode_escape` text (older Keras 2.0). The marshal format of
code objects changes with the Python version, so Python 3.8+ cannot read what Python 3.6 wrote
(`marshal.loads` fails with "EOF read where object expected"), and even if it could, the bytecode
itself would not run there.

This module never executes the stored bytecode. It

1. reads the marshal data itself (`read_marshal`: code objects, tuples, strings, bytes, ints,
   floats, None/True/False, references; marshal versions 3-4, i.e. Python 3.4-3.7),
2. decodes the instructions (`decode_instructions`) and translates the bytecode of a *simple
   expression lambda* back into Python source (`lambda_source`), e.g.
   `lambda inputs, scale: inputs[0] + inputs[1] * scale`,
3. compiles that source on the running Python, and
4. hands the function to Keras through its public mechanism: the layer config is rewritten to
   `function_type: 'function'` naming an entry of `custom_objects`, then
   `tf.keras.models.model_from_json` builds the model and `Model.load_weights` reads the weights
   from the same file (`load_model`).

What the translator covers: loads of arguments, constants, globals and closure variables;
subscripts (with slices and tuples of them); attribute access; unary and binary arithmetic,
bitwise operators and comparisons; calls with positional and keyword arguments (also method
calls, `LOAD_METHOD`/`CALL_METHOD` of 3.7); tuple, list, set and dict displays. Anything else
(conditional expressions, `and`/`or`, comprehensions, nested lambdas, star-arguments,
statements) raises `UntranslatableLambdaError`, whose message shows the decoded bytecode and
says how to supply the source by hand: `quantize.lambda_functions` in params.yaml, mapping the
layer name to a Python lambda expression (`load_model(..., lambda_sources=...)` in Python).

Telling Python 3.5 bytecode from 3.6/3.7 wordcode. The marshal data does not record the Python
version, and code objects of 3.5, 3.6 and 3.7 have the same marshal layout. The instruction
encoding differs: 3.5 writes one byte for an instruction without argument and three bytes
(opcode, 16-bit argument) for one with an argument; 3.6+ writes every instruction as two bytes
(opcode, 8-bit argument, 0 when unused). The body of a lambda or a one-expression function always
ends with `RETURN_VALUE` (opcode 83, no argument). So the last byte decides: 83 means 3.5
(`RETURN_VALUE` is the final one-byte instruction); 0 preceded by 83 at an even offset means
3.6/3.7 (`RETURN_VALUE` plus its unused argument byte). The two can never be confused because
83 != 0. The chosen decoding is then checked (every instruction ends inside the code, the last one
is that `RETURN_VALUE`). Code objects from Python 3.8+ (an extra `posonlyargcount` field) are
recognised and refused with a clear message; Python 2 code is not supported.

Works on Python 3.7+ with TF 1.15 and TF 2.x (Keras 2 API). TensorFlow and h5py are imported
only by the functions that need them, so the reader and translator run without them.
"""
from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import json
import math
import os
import shutil
import struct
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.lib.keras_h5 import read_model_config

# Every TensorFlow attribute path this module uses, relative to the `tensorflow` module. The same
# code runs under TF 1.15 and TF 2.x, so a test can check each path against both APIs.
TF_API = (
    "keras.backend",
    "keras.models.model_from_json",
    "keras.Model.load_weights",
)

PARAMS_KEY = "quantize.lambda_functions"


class LegacyKerasError(PipelineError):
    """The h5 file or one of its Lambda layers cannot be loaded; the message says what to do."""


class UntranslatableLambdaError(LegacyKerasError):
    """A Lambda layer's bytecode is beyond the translator; supply its source by hand."""

    def __init__(self, message: str, layer: Optional[str] = None,
                 disassembly: Optional[str] = None) -> None:
        super().__init__(message)
        self.layer = layer
        self.disassembly = disassembly


# --------------------------------------------------------------------------------------------
# Marshal reader (format versions 3 and 4: Python 3.4 - 3.7)
# --------------------------------------------------------------------------------------------

class CodeObject(NamedTuple):
    """The fields of a Python 3.4-3.7 code object, in marshal order."""
    argcount: int
    kwonlyargcount: int
    nlocals: int
    stacksize: int
    flags: int
    code: bytes
    consts: tuple
    names: tuple
    varnames: tuple
    freevars: tuple
    cellvars: tuple
    filename: str
    name: str
    firstlineno: int
    lnotab: bytes


CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08
CO_GENERATOR = 0x20
CO_COROUTINE = 0x80
CO_ITERABLE_COROUTINE = 0x100
CO_ASYNC_GENERATOR = 0x200

_FLAG_REF = 0x80
_NULL = object()  # the marshal NULL marker that ends a dict


class _MarshalReader(object):
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.refs = []  # type: List[Any]

    def _take(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise LegacyKerasError(
                "marshal data ends early: {} byte(s) needed at offset {}, {} available".format(
                    count, self.pos, len(self.data) - self.pos))
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def _byte(self) -> int:
        return self._take(1)[0]

    def _int32(self) -> int:
        return struct.unpack("<i", self._take(4))[0]

    def _reserve(self, flag: int) -> Optional[int]:
        if not flag:
            return None
        self.refs.append(None)
        return len(self.refs) - 1

    def _keep(self, flag: int, value: Any, slot: Optional[int] = None) -> Any:
        if slot is not None:
            self.refs[slot] = value
        elif flag:
            self.refs.append(value)
        return value

    def read(self) -> Any:
        start = self.pos
        code = self._byte()
        flag = code & _FLAG_REF
        kind = chr(code & ~_FLAG_REF)
        if kind == "0":
            return _NULL
        if kind == "N":
            return None
        if kind == "F":
            return False
        if kind == "T":
            return True
        if kind == "S":
            return StopIteration
        if kind == ".":
            return Ellipsis
        if kind == "i":
            return self._keep(flag, self._int32())
        if kind == "l":
            size = self._int32()
            value = 0
            for position in range(abs(size)):
                digit = struct.unpack("<H", self._take(2))[0]
                value |= digit << (15 * position)
            return self._keep(flag, -value if size < 0 else value)
        if kind == "g":
            return self._keep(flag, struct.unpack("<d", self._take(8))[0])
        if kind == "f":
            return self._keep(flag, float(self._take(self._byte()).decode("ascii")))
        if kind == "y":
            real, imag = struct.unpack("<dd", self._take(16))
            return self._keep(flag, complex(real, imag))
        if kind == "x":
            real = float(self._take(self._byte()).decode("ascii"))
            imag = float(self._take(self._byte()).decode("ascii"))
            return self._keep(flag, complex(real, imag))
        if kind == "s":
            return self._keep(flag, self._take(self._int32()))
        if kind in "tu":
            return self._keep(flag, self._take(self._int32()).decode("utf-8", "surrogatepass"))
        if kind in "aA":
            return self._keep(flag, self._take(self._int32()).decode("latin-1"))
        if kind in "zZ":
            return self._keep(flag, self._take(self._byte()).decode("latin-1"))
        if kind in "()[<>":
            count = self._byte() if kind == ")" else self._int32()
            slot = self._reserve(flag)
            items = [self.read() for _ in range(count)]
            value = {"(": tuple, ")": tuple, "[": list, "<": set, ">": frozenset}[kind](items)
            return self._keep(flag, value, slot)
        if kind == "{":
            slot = self._reserve(flag)
            result = {}
            while True:
                key = self.read()
                if key is _NULL:
                    break
                result[key] = self.read()
            return self._keep(flag, result, slot)
        if kind == "r":
            index = self._int32()
            if not 0 <= index < len(self.refs) or self.refs[index] is None:
                raise LegacyKerasError("marshal data refers to object #{} before it exists "
                                       "(offset {})".format(index, start))
            return self.refs[index]
        if kind == "c":
            return self._code(flag)
        raise LegacyKerasError("unknown marshal type code {!r} (0x{:02x}) at offset {}".format(
            kind, code, start))

    def _code(self, flag: int) -> CodeObject:
        slot = self._reserve(flag)
        counts = [self._int32() for _ in range(5)]
        following = self.data[self.pos:self.pos + 1]
        if not following or (following[0] & ~_FLAG_REF) != ord("s"):
            after_one_more = self.data[self.pos + 4:self.pos + 5]
            if after_one_more and (after_one_more[0] & ~_FLAG_REF) == ord("s"):
                raise LegacyKerasError(
                    "the code object was written by Python 3.8 or later (it has the "
                    "posonlyargcount field); this reader handles Python 3.4-3.7 code")
            raise LegacyKerasError("not a Python 3.4-3.7 code object: its bytecode string is "
                                   "missing at offset {}".format(self.pos))
        fields = [self.read() for _ in range(8)]
        firstlineno = self._int32()
        lnotab = self.read()
        bytecode, consts, names, varnames, freevars, cellvars, filename, name = fields
        if not isinstance(bytecode, bytes) or not all(
                isinstance(item, tuple) for item in (consts, names, varnames, freevars, cellvars)):
            raise LegacyKerasError("malformed code object in marshal data")
        value = CodeObject(counts[0], counts[1], counts[2], counts[3], counts[4], bytecode,
                           consts, names, varnames, freevars, cellvars, filename, name,
                           firstlineno, lnotab)
        return self._keep(flag, value, slot)


def read_marshal(data: bytes) -> Any:
    """Decode one object marshalled by Python 3.4-3.7; code objects become `CodeObject`s."""
    reader = _MarshalReader(data)
    value = reader.read()
    if value is _NULL:
        raise LegacyKerasError("marshal data holds only a NULL marker")
    return value


# --------------------------------------------------------------------------------------------
# Instructions
# --------------------------------------------------------------------------------------------

HAVE_ARGUMENT = 90
RETURN_VALUE = 83
EXTENDED_ARG = 144

# Opcode numbers shared by Python 3.5, 3.6 and 3.7 (from the `opcode` module tables).
_COMMON_OPNAMES = {
    1: "POP_TOP", 2: "ROT_TWO", 3: "ROT_THREE", 4: "DUP_TOP", 5: "DUP_TOP_TWO", 9: "NOP",
    10: "UNARY_POSITIVE", 11: "UNARY_NEGATIVE", 12: "UNARY_NOT", 15: "UNARY_INVERT",
    16: "BINARY_MATRIX_MULTIPLY", 19: "BINARY_POWER", 20: "BINARY_MULTIPLY",
    22: "BINARY_MODULO", 23: "BINARY_ADD", 24: "BINARY_SUBTRACT", 25: "BINARY_SUBSCR",
    26: "BINARY_FLOOR_DIVIDE", 27: "BINARY_TRUE_DIVIDE", 62: "BINARY_LSHIFT",
    63: "BINARY_RSHIFT", 64: "BINARY_AND", 65: "BINARY_XOR", 66: "BINARY_OR", 68: "GET_ITER",
    69: "GET_YIELD_FROM_ITER", 83: "RETURN_VALUE", 86: "YIELD_VALUE", 92: "UNPACK_SEQUENCE",
    93: "FOR_ITER", 94: "UNPACK_EX", 100: "LOAD_CONST", 101: "LOAD_NAME", 102: "BUILD_TUPLE",
    103: "BUILD_LIST", 104: "BUILD_SET", 105: "BUILD_MAP", 106: "LOAD_ATTR", 107: "COMPARE_OP",
    108: "IMPORT_NAME", 109: "IMPORT_FROM", 110: "JUMP_FORWARD", 111: "JUMP_IF_FALSE_OR_POP",
    112: "JUMP_IF_TRUE_OR_POP", 113: "JUMP_ABSOLUTE", 114: "POP_JUMP_IF_FALSE",
    115: "POP_JUMP_IF_TRUE", 116: "LOAD_GLOBAL", 124: "LOAD_FAST", 125: "STORE_FAST",
    126: "DELETE_FAST", 130: "RAISE_VARARGS", 131: "CALL_FUNCTION", 132: "MAKE_FUNCTION",
    133: "BUILD_SLICE", 135: "LOAD_CLOSURE", 136: "LOAD_DEREF", 137: "STORE_DEREF",
    144: "EXTENDED_ARG", 145: "LIST_APPEND", 146: "SET_ADD", 147: "MAP_ADD",
    148: "LOAD_CLASSDEREF", 149: "BUILD_LIST_UNPACK", 150: "BUILD_MAP_UNPACK",
    151: "BUILD_MAP_UNPACK_WITH_CALL", 152: "BUILD_TUPLE_UNPACK", 153: "BUILD_SET_UNPACK",
}
# Python 3.5 only: the old calling convention.
_LEGACY_OPNAMES = dict(_COMMON_OPNAMES)
_LEGACY_OPNAMES.update({140: "CALL_FUNCTION_VAR", 141: "CALL_FUNCTION_KW",
                        142: "CALL_FUNCTION_VAR_KW"})
# Python 3.6 and 3.7 wordcode (LOAD_METHOD and CALL_METHOD exist from 3.7 on).
_WORDCODE_OPNAMES = dict(_COMMON_OPNAMES)
_WORDCODE_OPNAMES.update({141: "CALL_FUNCTION_KW", 142: "CALL_FUNCTION_EX",
                          155: "FORMAT_VALUE", 156: "BUILD_CONST_KEY_MAP", 157: "BUILD_STRING",
                          158: "BUILD_TUPLE_UNPACK_WITH_CALL", 160: "LOAD_METHOD",
                          161: "CALL_METHOD"})

WORDCODE = "3.6+ wordcode"
LEGACY_BYTECODE = "3.5 bytecode"


class Instruction(NamedTuple):
    offset: int
    opcode: int
    opname: str
    arg: Optional[int]


def bytecode_format(code: bytes) -> str:
    """`WORDCODE` (Python 3.6/3.7) or `LEGACY_BYTECODE` (3.5), decided by how the code ends.

    See the module docstring: a lambda's body ends with RETURN_VALUE (83); in 3.5 that is the
    last byte, in 3.6+ it is followed by its unused argument byte 0.
    """
    if code and code[-1] == RETURN_VALUE:
        return LEGACY_BYTECODE
    if len(code) >= 2 and len(code) % 2 == 0 and code[-2] == RETURN_VALUE and code[-1] == 0:
        return WORDCODE
    raise LegacyKerasError(
        "the bytecode does not end with RETURN_VALUE, as the body of a lambda does (last bytes: "
        "{}); it is not Python 3.5-3.7 lambda bytecode".format(code[-4:].hex() or "none"))


def decode_instructions(code: bytes, fmt: str) -> List[Instruction]:
    """Split bytecode into instructions (EXTENDED_ARG folded into the next argument)."""
    wordcode = fmt == WORDCODE
    names = _WORDCODE_OPNAMES if wordcode else _LEGACY_OPNAMES
    result = []
    position = 0
    extended = 0
    start = 0
    while position < len(code):
        opcode = code[position]
        if wordcode:
            if position + 2 > len(code):
                raise LegacyKerasError("wordcode has an odd length")
            arg = code[position + 1] | extended  # type: Optional[int]
            position += 2
        elif opcode >= HAVE_ARGUMENT:
            if position + 3 > len(code):
                raise LegacyKerasError("instruction at offset {} runs past the end of the "
                                       "code".format(position))
            arg = (code[position + 1] | (code[position + 2] << 8)) | extended
            position += 3
        else:
            arg = None
            position += 1
        if opcode == EXTENDED_ARG:
            extended = arg << (8 if wordcode else 16)
            continue
        extended = 0
        if opcode < HAVE_ARGUMENT:
            arg = None
        result.append(Instruction(start, opcode, names.get(opcode, "<{}>".format(opcode)), arg))
        start = position
    if not result or result[-1].opcode != RETURN_VALUE:
        raise LegacyKerasError("the bytecode does not end with RETURN_VALUE")
    return result


_COMPARE_OPS = ("<", "<=", "==", "!=", ">", ">=", "in", "not in", "is", "is not")


def _describe_arg(code: CodeObject, instruction: Instruction) -> str:
    name, arg = instruction.opname, instruction.arg
    try:
        if name == "LOAD_CONST":
            return repr(code.consts[arg])
        if name in ("LOAD_FAST", "STORE_FAST", "DELETE_FAST"):
            return code.varnames[arg]
        if name in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_ATTR", "LOAD_METHOD", "IMPORT_NAME"):
            return code.names[arg]
        if name in ("LOAD_DEREF", "LOAD_CLOSURE", "STORE_DEREF", "LOAD_CLASSDEREF"):
            return (code.cellvars + code.freevars)[arg]
        if name == "COMPARE_OP":
            return _COMPARE_OPS[arg] if arg < len(_COMPARE_OPS) else "op {}".format(arg)
    except (IndexError, TypeError):
        return "out of range"
    return ""


def disassemble(code: CodeObject, fmt: Optional[str] = None) -> str:
    """A `dis`-like listing of the code object, for error messages.

    When the instructions cannot be decoded, the listing shows the raw bytes and why instead.
    """
    try:
        fmt = fmt or bytecode_format(code.code)
        instructions = decode_instructions(code.code, fmt)
    except LegacyKerasError as error:
        return "  (undecodable: {}; arguments {}; constants {}; names {}; bytes {})".format(
            error, ", ".join(_signature_names(code)) or "none", code.consts, code.names,
            code.code.hex())
    lines = ["  ({}; arguments {}; constants {}; names {}; free variables {})".format(
        fmt, ", ".join(_signature_names(code)) or "none", code.consts, code.names,
        code.freevars)]
    for instruction in instructions:
        arg = "" if instruction.arg is None else str(instruction.arg)
        detail = _describe_arg(code, instruction)
        lines.append("  {:4d} {:<22} {:>4} {}".format(
            instruction.offset, instruction.opname, arg,
            "({})".format(detail) if detail else "").rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Translation of an expression lambda's bytecode into source
# --------------------------------------------------------------------------------------------

# Operator precedence, lowest first (Python language reference, "Operator precedence").
_P_LAMBDA, _P_TEST, _P_OR, _P_AND, _P_NOT, _P_CMP, _P_BOR, _P_BXOR, _P_BAND = range(9)
_P_SHIFT, _P_ARITH, _P_TERM, _P_UNARY, _P_POWER, _P_AWAIT, _P_TRAILER, _P_ATOM = range(9, 17)

_BINARY = {
    "BINARY_POWER": ("**", _P_POWER), "BINARY_MULTIPLY": ("*", _P_TERM),
    "BINARY_MATRIX_MULTIPLY": ("@", _P_TERM), "BINARY_MODULO": ("%", _P_TERM),
    "BINARY_ADD": ("+", _P_ARITH), "BINARY_SUBTRACT": ("-", _P_ARITH),
    "BINARY_FLOOR_DIVIDE": ("//", _P_TERM), "BINARY_TRUE_DIVIDE": ("/", _P_TERM),
    "BINARY_LSHIFT": ("<<", _P_SHIFT), "BINARY_RSHIFT": (">>", _P_SHIFT),
    "BINARY_AND": ("&", _P_BAND), "BINARY_XOR": ("^", _P_BXOR), "BINARY_OR": ("|", _P_BOR),
}
_UNARY = {"UNARY_POSITIVE": ("+", _P_UNARY), "UNARY_NEGATIVE": ("-", _P_UNARY),
          "UNARY_INVERT": ("~", _P_UNARY), "UNARY_NOT": ("not ", _P_NOT)}


class _Node(object):
    """An expression rebuilt from the bytecode; `render` gives its source."""
    prec = _P_ATOM

    def render(self, in_subscript: bool = False) -> str:
        raise NotImplementedError


class _Text(_Node):
    def __init__(self, text: str, prec: int) -> None:
        self.text = text
        self.prec = prec

    def render(self, in_subscript: bool = False) -> str:
        return self.text


class _Const(_Node):
    def __init__(self, value: Any) -> None:
        self.value = value
        self.text = _const_text(value)
        self.prec = _P_UNARY if self.text.startswith("-") else _P_ATOM

    def render(self, in_subscript: bool = False) -> str:
        return self.text


class _Tuple(_Node):
    def __init__(self, items: Sequence[_Node]) -> None:
        self.items = list(items)

    def render(self, in_subscript: bool = False) -> str:
        parts = [item.render(in_subscript and isinstance(item, _Slice)) for item in self.items]
        if in_subscript and self.items:
            return ", ".join(parts) + ("," if len(parts) == 1 else "")
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


class _Slice(_Node):
    def __init__(self, parts: Sequence[_Node]) -> None:
        self.parts = list(parts)

    def render(self, in_subscript: bool = False) -> str:
        if in_subscript:
            texts = ["" if isinstance(part, _Const) and part.value is None
                     else _paren(part, part.prec < _P_TEST) for part in self.parts]
            return ":".join(texts)
        return "slice(" + ", ".join(part.render() for part in self.parts) + ")"


class _Method(_Node):
    """What LOAD_METHOD pushes: an object and the name of the method CALL_METHOD calls."""

    def __init__(self, owner: _Node, name: str) -> None:
        self.owner = owner
        self.name = name

    def render(self, in_subscript: bool = False) -> str:
        return _attribute(self.owner, self.name)


def _const_text(value: Any) -> str:
    if value is None:
        return "None"
    if value is True or value is False:
        return repr(value)
    if value is Ellipsis:
        return "..."
    if isinstance(value, float):
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "-float('inf')"
        return repr(value)
    if isinstance(value, (int, complex, str, bytes)):
        return repr(value)
    if isinstance(value, tuple):
        return _Tuple([_Const(item) for item in value]).render()
    if isinstance(value, frozenset):
        items = sorted((_const_text(item) for item in value))
        return "frozenset({" + ", ".join(items) + "})" if items else "frozenset()"
    if isinstance(value, CodeObject):
        raise _Unsupported("a nested function or comprehension (code object {!r})".format(
            value.name))
    raise _Unsupported("a constant of type {}".format(type(value).__name__))


def _paren(node: _Node, needed: bool, in_subscript: bool = False) -> str:
    text = node.render(in_subscript)
    return "(" + text + ")" if needed else text


def _attribute(owner: _Node, name: str) -> str:
    needed = owner.prec < _P_TRAILER or (isinstance(owner, _Const) and isinstance(
        owner.value, int))
    return _paren(owner, needed) + "." + name


class _Unsupported(Exception):
    pass


def _signature_names(code: CodeObject) -> List[str]:
    count = code.argcount + code.kwonlyargcount
    names = list(code.varnames[:count])
    if code.flags & CO_VARARGS:
        names.append("*" + code.varnames[count])
        count += 1
    if code.flags & CO_VARKEYWORDS:
        names.append("**" + code.varnames[count])
    return names


def _signature(code: CodeObject, defaults: Sequence[Any]) -> str:
    positional = list(code.varnames[:code.argcount])
    keyword_only = list(code.varnames[code.argcount:code.argcount + code.kwonlyargcount])
    index = code.argcount + code.kwonlyargcount
    if len(defaults) > len(positional):
        raise _Unsupported("{} default values for {} positional arguments".format(
            len(defaults), len(positional)))
    parts = []
    first_default = len(positional) - len(defaults)
    for position, name in enumerate(positional):
        if position >= first_default:
            value = defaults[position - first_default]
            text = _const_text(tuple(value) if isinstance(value, list) else value)
            parts.append("{}={}".format(name, text))
        else:
            parts.append(name)
    if code.flags & CO_VARARGS:
        parts.append("*" + code.varnames[index])
        index += 1
    elif keyword_only:
        parts.append("*")
    parts.extend(keyword_only)
    if code.flags & CO_VARKEYWORDS:
        parts.append("**" + code.varnames[index])
    return ", ".join(parts)


class Translation(NamedTuple):
    """A lambda translated from bytecode."""
    source: str                 # e.g. "lambda inputs, scale: inputs[0] + inputs[1] * scale"
    global_names: Tuple[str, ...]   # globals the body reads (K, tf, np, builtins ...)
    free_names: Tuple[str, ...]     # closure variables the body reads
    bytecode_format: str        # WORDCODE or LEGACY_BYTECODE


def lambda_source(code: CodeObject, defaults: Sequence[Any] = ()) -> Translation:
    """Translate the code object of a simple expression lambda into lambda source.

    Raises UntranslatableLambdaError (without a layer name) when the bytecode uses anything the
    translator does not know; its `disassembly` attribute holds the decoded instructions.
    """
    fmt = bytecode_format(code.code)
    instructions = decode_instructions(code.code, fmt)
    try:
        if code.flags & (CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE |
                         CO_ASYNC_GENERATOR):
            raise _Unsupported("a generator or coroutine")
        body, globals_read, free_read = _translate_body(code, instructions, fmt)
        signature = _signature(code, list(defaults or ()))
    except (_Unsupported, IndexError) as error:
        reason = str(error) if isinstance(error, _Unsupported) else \
            "an argument index out of range ({})".format(error)
        raise UntranslatableLambdaError(
            "the bytecode uses {}, which the translator does not handle".format(reason),
            disassembly=disassemble(code, fmt))
    source = "lambda {}: {}".format(signature, body) if signature else "lambda: " + body
    return Translation(source, tuple(globals_read), tuple(free_read), fmt)


def _pop(stack: List[_Node], count: int) -> List[_Node]:
    if count > len(stack):
        raise _Unsupported("a stack the translator cannot follow")
    if count == 0:
        return []
    items = stack[-count:]
    del stack[-count:]
    return items


def _call(function: _Node, positional: Sequence[_Node],
          keywords: Sequence[Tuple[str, _Node]]) -> _Node:
    args = [item.render() for item in positional]
    for name, value in keywords:
        if not isinstance(name, str) or not name.isidentifier():
            raise _Unsupported("a keyword argument name that is not an identifier")
        args.append("{}={}".format(name, value.render()))
    if isinstance(function, _Method):
        head = function.render()
    else:
        head = _paren(function, function.prec < _P_TRAILER)
    return _Text("{}({})".format(head, ", ".join(args)), _P_TRAILER)


def _translate_body(code: CodeObject, instructions: Sequence[Instruction],
                    fmt: str) -> Tuple[str, List[str], List[str]]:
    stack = []  # type: List[_Node]
    globals_read = []  # type: List[str]
    free_read = []  # type: List[str]
    wordcode = fmt == WORDCODE
    for instruction in instructions[:-1]:
        name, arg = instruction.opname, instruction.arg
        if name == "NOP":
            continue
        if name == "LOAD_FAST":
            stack.append(_Text(code.varnames[arg], _P_ATOM))
        elif name == "LOAD_CONST":
            value = code.consts[arg]
            stack.append(_Tuple([_Const(item) for item in value]) if isinstance(value, tuple)
                         else _Const(value))
        elif name in ("LOAD_GLOBAL", "LOAD_NAME"):
            symbol = code.names[arg]
            if symbol not in globals_read:
                globals_read.append(symbol)
            stack.append(_Text(symbol, _P_ATOM))
        elif name == "LOAD_DEREF" and arg >= len(code.cellvars):
            symbol = code.freevars[arg - len(code.cellvars)]
            if symbol not in free_read:
                free_read.append(symbol)
            stack.append(_Text(symbol, _P_ATOM))
        elif name == "LOAD_ATTR":
            owner, = _pop(stack, 1)
            stack.append(_Text(_attribute(owner, code.names[arg]), _P_TRAILER))
        elif name == "LOAD_METHOD":
            owner, = _pop(stack, 1)
            stack.append(_Method(owner, code.names[arg]))
        elif name == "BINARY_SUBSCR":
            value, index = _pop(stack, 2)
            stack.append(_Text("{}[{}]".format(_paren(value, value.prec < _P_TRAILER),
                                               index.render(in_subscript=True)), _P_TRAILER))
        elif name in _BINARY:
            symbol, prec = _BINARY[name]
            left, right = _pop(stack, 2)
            if symbol == "**":
                text = "{} ** {}".format(_paren(left, left.prec <= prec),
                                         _paren(right, right.prec < _P_UNARY))
            else:
                text = "{} {} {}".format(_paren(left, left.prec < prec),
                                         symbol, _paren(right, right.prec <= prec))
            stack.append(_Text(text, prec))
        elif name in _UNARY:
            symbol, prec = _UNARY[name]
            operand, = _pop(stack, 1)
            stack.append(_Text(symbol + _paren(operand, operand.prec < prec), prec))
        elif name == "COMPARE_OP":
            if arg >= len(_COMPARE_OPS):
                raise _Unsupported("COMPARE_OP {} (exception matching)".format(arg))
            left, right = _pop(stack, 2)
            stack.append(_Text("{} {} {}".format(
                _paren(left, left.prec <= _P_CMP), _COMPARE_OPS[arg],
                _paren(right, right.prec <= _P_CMP)), _P_CMP))
        elif name == "BUILD_TUPLE":
            stack.append(_Tuple(_pop(stack, arg)))
        elif name == "BUILD_LIST":
            items = _pop(stack, arg)
            stack.append(_Text("[" + ", ".join(item.render() for item in items) + "]",
                               _P_ATOM))
        elif name == "BUILD_SET":
            items = _pop(stack, arg)
            stack.append(_Text("{" + ", ".join(item.render() for item in items) + "}",
                               _P_ATOM))
        elif name == "BUILD_MAP":
            items = _pop(stack, 2 * arg)
            pairs = ["{}: {}".format(items[i].render(), items[i + 1].render())
                     for i in range(0, len(items), 2)]
            stack.append(_Text("{" + ", ".join(pairs) + "}", _P_ATOM))
        elif name == "BUILD_CONST_KEY_MAP":
            keys, = _pop(stack, 1)
            values = _pop(stack, arg)
            if not isinstance(keys, _Tuple) or len(keys.items) != arg:
                raise _Unsupported("BUILD_CONST_KEY_MAP without a constant key tuple")
            pairs = ["{}: {}".format(key.render(), value.render())
                     for key, value in zip(keys.items, values)]
            stack.append(_Text("{" + ", ".join(pairs) + "}", _P_ATOM))
        elif name == "BUILD_SLICE":
            if arg not in (2, 3):
                raise _Unsupported("BUILD_SLICE {}".format(arg))
            stack.append(_Slice(_pop(stack, arg)))
        elif name == "CALL_FUNCTION" and wordcode:
            args = _pop(stack, arg)
            function, = _pop(stack, 1)
            stack.append(_call(function, args, ()))
        elif name == "CALL_FUNCTION" and not wordcode:
            positional_count, keyword_count = arg & 0xFF, (arg >> 8) & 0xFF
            pairs = _pop(stack, 2 * keyword_count)
            args = _pop(stack, positional_count)
            function, = _pop(stack, 1)
            keywords = []
            for i in range(0, len(pairs), 2):
                if not isinstance(pairs[i], _Const):
                    raise _Unsupported("a keyword argument whose name is not a constant")
                keywords.append((pairs[i].value, pairs[i + 1]))
            stack.append(_call(function, args, keywords))
        elif name == "CALL_FUNCTION_KW" and wordcode:
            names, = _pop(stack, 1)
            if not isinstance(names, _Tuple) or not all(
                    isinstance(item, _Const) for item in names.items):
                raise _Unsupported("CALL_FUNCTION_KW without a constant name tuple")
            args = _pop(stack, arg)
            function, = _pop(stack, 1)
            split = len(args) - len(names.items)
            if split < 0:
                raise _Unsupported("a stack the translator cannot follow")
            keywords = [(item.value, value) for item, value in zip(names.items, args[split:])]
            stack.append(_call(function, args[:split], keywords))
        elif name == "CALL_METHOD":
            args = _pop(stack, arg)
            method, = _pop(stack, 1)
            if not isinstance(method, _Method):
                raise _Unsupported("CALL_METHOD without LOAD_METHOD")
            stack.append(_call(method, args, ()))
        else:
            raise _Unsupported("{} (offset {})".format(name, instruction.offset))
    if len(stack) != 1:
        raise _Unsupported("a stack of {} value(s) at RETURN_VALUE".format(len(stack)))
    result = stack[0]
    if isinstance(result, _Method):
        raise _Unsupported("LOAD_METHOD without CALL_METHOD")
    return result.render(), globals_read, free_read


# --------------------------------------------------------------------------------------------
# Keras Lambda entries and user-supplied sources
# --------------------------------------------------------------------------------------------

class LambdaLayer(NamedTuple):
    """How one Lambda layer's function (or output_shape) gets its source."""
    layer: str
    key: str                        # "function" or "output_shape"
    source: str
    origin: str                     # "translated", "params" or "dropped" (output_shape only)
    global_names: Tuple[str, ...]
    closure: Dict[str, Any]         # free variable -> value saved by Keras


def keras_code_bytes(text: Any) -> bytes:
    """The marshal bytes of a Keras `func_dump` code string (base64, or raw_unicode_escape)."""
    if not isinstance(text, str) or not text:
        raise LegacyKerasError("expected the function's code as a string, got {!r}".format(
            type(text).__name__))
    if text[0] in ("\xe3", "c"):
        # Keras 2.0: marshal.dumps(code).decode('raw_unicode_escape'); a code object marshals
        # to 'c' (0x63) or, with the reference flag, 0xe3.
        return text.encode("raw_unicode_escape")
    try:
        return base64.b64decode(text.encode("ascii"))
    except (UnicodeEncodeError, ValueError) as error:
        raise LegacyKerasError("the function's code is neither base64 nor raw marshal text "
                               "({})".format(error))


def _split_keras_function(entry: Any) -> Tuple[str, Sequence[Any], Sequence[Any]]:
    """(code text, defaults, closure) from a Keras function entry (a list or a bare string)."""
    if isinstance(entry, str):
        return entry, (), ()
    if isinstance(entry, (list, tuple)) and entry and isinstance(entry[0], str):
        defaults = entry[1] if len(entry) > 1 and entry[1] is not None else ()
        closure = entry[2] if len(entry) > 2 and entry[2] is not None else ()
        return entry[0], list(defaults), list(closure)
    raise LegacyKerasError("unexpected layout of a Lambda function entry: {!r}".format(
        entry if len(repr(entry)) < 200 else type(entry).__name__))


def _how_to_supply(layer: str, arguments: Mapping[str, Any]) -> str:
    args = ", ".join(["inputs"] + sorted(arguments))
    return (
        "Supply the function as Python lambda source in params.yaml, under "
        "{key} (layer name -> lambda expression):\n"
        "  quantize:\n"
        "    lambda_functions:\n"
        "      {layer}: \"lambda {args}: ...\"\n"
        "(in Python: load_model(..., lambda_sources={{{layer!r}: \"lambda {args}: ...\"}})). "
        "Keras calls it as function(inputs, **arguments) with arguments={arguments}.".format(
            key=PARAMS_KEY, layer=layer, args=args, arguments=dict(arguments)))


def translate_keras_function(entry: Any, layer: str = "?", arguments: Optional[Mapping] = None,
                             key: str = "function") -> LambdaLayer:
    """Translate one marshalled Keras function entry into a `LambdaLayer`."""
    arguments = arguments or {}
    text, defaults, closure = _split_keras_function(entry)
    decoded = "nothing"
    try:
        code = read_marshal(keras_code_bytes(text))
        if not isinstance(code, CodeObject):
            raise LegacyKerasError("the marshal data holds a {}, not a code object".format(
                type(code).__name__))
        decoded = disassemble(code)
        translation = lambda_source(code, defaults)
    except UntranslatableLambdaError as error:
        raise UntranslatableLambdaError(
            "Lambda layer '{}': its {} cannot be translated from Python bytecode: {}.\n"
            "Decoded bytecode:\n{}\n{}".format(layer, key, error, error.disassembly,
                                               _how_to_supply(layer, arguments)),
            layer=layer, disassembly=error.disassembly)
    except LegacyKerasError as error:
        raise UntranslatableLambdaError(
            "Lambda layer '{}': its {} cannot be decoded: {}.\nDecoded so far:\n{}\n{}".format(
                layer, key, error, decoded, _how_to_supply(layer, arguments)),
            layer=layer, disassembly=decoded)
    if len(closure) != len(code.freevars):
        raise UntranslatableLambdaError(
            "Lambda layer '{}': the function reads closure variable(s) {} but the file saved {} "
            "value(s) for them.\nDecoded bytecode:\n{}\n{}".format(
                layer, ", ".join(code.freevars), len(closure), decoded,
                _how_to_supply(layer, arguments)), layer=layer, disassembly=decoded)
    return LambdaLayer(layer, key, translation.source, "translated", translation.global_names,
                       dict(zip(code.freevars, closure)))


def parse_lambda_source(source: Any, where: str = "lambda source") -> ast.Lambda:
    """Parse `source`, which must be exactly one lambda expression; return its ast node.

    Nothing is executed here; statements, or any expression other than a lambda, are refused.
    """
    example = "\"lambda inputs, scale: inputs[0] + inputs[1] * scale\""
    if not isinstance(source, str) or not source.strip():
        raise LegacyKerasError("{} must be a non-empty string holding a Python lambda "
                               "expression such as {}, got {!r}.".format(where, example, source))
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as error:
        raise LegacyKerasError("{} is not a single Python expression ({}: {}); it must be a "
                               "lambda expression such as {}, got {!r}.".format(
                                   where, type(error).__name__, error.msg, example, source))
    if not isinstance(tree.body, ast.Lambda):
        raise LegacyKerasError("{} must be a lambda expression such as {}, got a {} "
                               "expression: {!r}.".format(where, example,
                                                          type(tree.body).__name__, source))
    return tree.body


def _accepted_keywords(node: ast.Lambda) -> Optional[set]:
    """Names the lambda accepts as keyword arguments; None when it takes **kwargs."""
    if node.args.kwarg is not None:
        return None
    args = list(getattr(node.args, "posonlyargs", [])) + list(node.args.args)
    return {arg.arg for arg in args[1:]} | {arg.arg for arg in node.args.kwonlyargs}


def compile_lambda(source: str, namespace: Mapping[str, Any], where: str = "lambda source"):
    """Compile lambda source into a function whose globals are `namespace` (plus builtins)."""
    node = parse_lambda_source(source, where)
    tree = ast.Expression(body=node)
    ast.fix_missing_locations(tree)
    code = compile(tree, "<{}>".format(where), "eval")
    scope = dict(namespace)
    scope.setdefault("__builtins__", builtins)
    return eval(code, scope)  # noqa: S307 - a checked lambda expression, see parse_lambda_source


# --------------------------------------------------------------------------------------------
# Model config
# --------------------------------------------------------------------------------------------

def _walk_layers(config: Any) -> Iterator[Dict[str, Any]]:
    """Every layer dict of a model config, nested models included."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else inner
    if not isinstance(layers, list):
        return
    for layer in layers:
        if isinstance(layer, dict):
            yield layer
            for nested in _walk_layers(layer):
                yield nested


def _layer_name(layer: Dict[str, Any]) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name") or "?")


_MARSHALLED_KEYS = (("function", "function_type"), ("output_shape", "output_shape_type"))


def lambda_layers(config: Dict[str, Any],
                  lambda_sources: Optional[Mapping[str, str]] = None) -> List[LambdaLayer]:
    """Work out the source of every Lambda function in a model config (no TensorFlow needed).

    `lambda_sources` (layer name -> lambda source) wins over translation. A name there that is
    not a Lambda layer of the model is an error (a typo would otherwise be ignored silently).
    """
    lambda_sources = dict(lambda_sources or {})
    layers = [layer for layer in _walk_layers(config) if layer.get("class_name") == "Lambda"]
    names = [_layer_name(layer) for layer in layers]
    unknown = sorted(set(lambda_sources) - set(names))
    if unknown:
        raise LegacyKerasError(
            "{} names {} which {} not a Lambda layer of the model; its Lambda layers are: {}"
            .format(PARAMS_KEY, ", ".join(repr(n) for n in unknown),
                    "is" if len(unknown) == 1 else "are", ", ".join(names) or "none"))
    found = []
    for layer, name in zip(layers, names):
        layer_config = layer.get("config", {})
        arguments = layer_config.get("arguments") or {}
        if name in lambda_sources:
            where = "{}.{}".format(PARAMS_KEY, name)
            node = parse_lambda_source(lambda_sources[name], where)
            accepted = _accepted_keywords(node)
            missing = sorted(set(arguments) - accepted) if accepted is not None else []
            if not node.args.args and not node.args.vararg:
                raise LegacyKerasError("{}: the lambda must take the layer input as its first "
                                       "argument, e.g. \"lambda inputs{}: ...\"".format(
                                           where, "".join(", " + a for a in sorted(arguments))))
            if missing:
                raise LegacyKerasError(
                    "{}: Keras calls the function with keyword argument(s) {} (the layer's "
                    "'arguments' {}), which the lambda does not accept: {!r}".format(
                        where, ", ".join(missing), dict(arguments), lambda_sources[name]))
            found.append(LambdaLayer(name, "function", lambda_sources[name].strip(), "params",
                                     (), {}))
        elif layer_config.get("function_type") == "lambda":
            found.append(translate_keras_function(layer_config.get("function"), name,
                                                  arguments, "function"))
        if layer_config.get("output_shape_type") == "lambda":
            try:
                found.append(translate_keras_function(layer_config.get("output_shape"), name,
                                                      {}, "output_shape"))
            except UntranslatableLambdaError:
                # Keras infers the output shape by calling the function when none is given.
                found.append(LambdaLayer(name, "output_shape", "", "dropped", (), {}))
    return found


def set_batch_size(config: Dict[str, Any], batch_size: int) -> int:
    """Fix the batch dimension of every input layer of the config; return how many changed."""
    changed = 0
    for layer in _walk_layers(config):
        layer_config = layer.get("config", {})
        for key in ("batch_input_shape", "batch_shape"):
            shape = layer_config.get(key)
            if isinstance(shape, list) and shape:
                layer_config[key] = [batch_size] + list(shape[1:])
                changed += 1
    return changed


def _object_name(item: LambdaLayer) -> str:
    return "legacy_keras_{}_{}".format(item.key, item.layer)


def _namespace(tf: Any, custom_objects: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    import numpy

    namespace = {"K": tf.keras.backend, "backend": tf.keras.backend, "tf": tf,
                 "np": numpy, "numpy": numpy, "math": math}
    namespace.update(custom_objects or {})
    return namespace


def apply_lambda_layers(config: Dict[str, Any], items: Sequence[LambdaLayer],
                        namespace: Mapping[str, Any]) -> Dict[str, Any]:
    """Rewrite the config's Lambda entries to named functions; return the custom objects."""
    by_layer = {(item.layer, item.key): item for item in items}
    objects = {}
    for layer in _walk_layers(config):
        if layer.get("class_name") != "Lambda":
            continue
        layer_config = layer.setdefault("config", {})
        for key, type_key in _MARSHALLED_KEYS:
            item = by_layer.get((_layer_name(layer), key))
            if item is None:
                continue
            if item.origin == "dropped":
                layer_config[key] = None
                layer_config[type_key] = "raw"
                continue
            scope = dict(namespace)
            scope.update(item.closure)
            missing = [name for name in item.global_names
                       if name not in scope and not hasattr(builtins, name)]
            if missing:
                raise UntranslatableLambdaError(
                    "Lambda layer '{}': its {} `{}` uses the global name(s) {}, which are not "
                    "known here (known: {}). Pass them as custom_objects, or supply the source "
                    "with the names spelled out. {}".format(
                        item.layer, key, item.source, ", ".join(missing),
                        ", ".join(sorted(namespace)), _how_to_supply(
                            item.layer, layer_config.get("arguments") or {})),
                    layer=item.layer)
            where = "{}.{}".format(PARAMS_KEY, item.layer) if item.origin == "params" else \
                "Lambda layer {} {}".format(item.layer, key)
            objects[_object_name(item)] = compile_lambda(item.source, scope, where)
            layer_config[key] = _object_name(item)
            layer_config[type_key] = "function"
            layer_config.pop("module" if key == "function" else "output_shape_module", None)
    return objects


@contextlib.contextmanager
def _h5_suffixed(path: str) -> Iterator[str]:
    """Keras picks the weights format from the file name; give it an .h5 name if needed."""
    if path.lower().endswith((".h5", ".hdf5", ".keras")):
        yield path
        return
    directory = tempfile.mkdtemp(prefix="legacy_keras-")
    try:
        link = os.path.join(directory, "model.h5")
        try:
            os.symlink(os.path.abspath(path), link)
        except OSError:
            shutil.copyfile(path, link)
        yield link
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def load_model(h5_path: str, lambda_sources: Optional[Mapping[str, str]] = None,
               batch_size: Optional[int] = None,
               custom_objects: Optional[Mapping[str, Any]] = None):
    """Build the Keras model saved in `h5_path` and load its weights, on Python 3.7+.

    Args:
        h5_path: a Keras 2.x .h5 file saved with model.save().
        lambda_sources: layer name -> Python lambda source, for Lambda layers whose bytecode the
            translator cannot handle (or to override a translation).
        batch_size: fix the input batch dimension (1 for the Edge TPU); None keeps it open.
        custom_objects: extra names for Keras (custom layers) and for the lambdas' globals.
            The lambdas' globals also hold K / backend (tf.keras.backend), tf, np and math.

    Raises LegacyKerasError (UntranslatableLambdaError for a Lambda layer) with a message that
    says what is wrong and what to do.
    """
    config = read_model_config(h5_path)
    items = lambda_layers(config, lambda_sources)
    if batch_size is not None:
        if set_batch_size(config, int(batch_size)) == 0:
            raise LegacyKerasError("{}: no input layer with a batch_input_shape to set the "
                                   "batch size on".format(h5_path))
    import tensorflow as tf

    objects = dict(custom_objects or {})
    objects.update(apply_lambda_layers(config, items, _namespace(tf, custom_objects)))
    model = tf.keras.models.model_from_json(json.dumps(config), custom_objects=objects)
    with _h5_suffixed(h5_path) as weights_path:
        model.load_weights(weights_path)
    return model


def model_lambda_layers(h5_path: str,
                        lambda_sources: Optional[Mapping[str, str]] = None) -> List[LambdaLayer]:
    """The Lambda layers of an h5 model and where their source comes from (no TensorFlow)."""
    return lambda_layers(read_model_config(h5_path), lambda_sources)
