"""Hand-made Python 3.5-3.7 code objects for the tests of the bytecode package and the loader.

Python 3.11 cannot write them, so they are built here: a small marshal encoder (format version
4, as Python 3.4-3.7 write it, with references) and assemblers for Python 3.5 bytecode and
3.6/3.7 wordcode, using the real opcode numbers of those Pythons. `Code(..., python="3.8")` and
`python="3.11"` write the code object layouts of Python 3.8-3.10 and 3.11+ instead.
"""
import base64
import struct

import numpy as np

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
                 flags=0x43, name="<lambda>", python="3.7"):
        self.code = code
        self.argnames = tuple(argnames)
        self.consts = tuple(consts)
        self.names = tuple(names)
        self.freevars = tuple(freevars)
        self.kwonly = kwonly
        self.flags = flags | (0x10 if freevars else 0)
        self.name = name
        self.python = python  # the code object layout: "3.7" (3.4-3.7), "3.8" (3.8-3.10), "3.11"


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
            argcount, nlocals = len(value.argnames) - value.kwonly, len(value.argnames)
            names = (value.code, value.consts, value.names, value.argnames)
            if value.python == "3.11":  # localsplusnames, localspluskinds, ..., qualname
                kinds = bytes([0x26] * nlocals + [0x80] * len(value.freevars))
                counts = [argcount, 0, value.kwonly, 8, value.flags]
                fields = names[:3] + (value.argnames + value.freevars, kinds, "<test>",
                                      value.name, value.name)
                tail = (b"", b"")  # linetable, exception table
            else:
                counts = [argcount, value.kwonly, nlocals, 8, value.flags]
                if value.python == "3.8":
                    counts.insert(1, 0)  # posonlyargcount
                fields = names + (value.freevars, (), "<test>", value.name)
                tail = (b"",)  # lnotab
            for count in counts:
                self._int32(count)
            for field in fields:
                self.dump(field)
            self._int32(1)  # firstlineno
            for field in tail:
                self.dump(field)
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
