"""Read data written by `marshal.dumps` of Python 3.4-3.7 (marshal format versions 3 and 4).

Code objects become `CodeObject` tuples; nothing is ever executed. The object types are those a
code object and its constants use: code objects, tuples, lists, sets, frozensets, dicts,
strings, bytes, ints, floats, complex numbers, None/True/False/Ellipsis/StopIteration and
references (format 4 writes an object once and refers back to it by index).

The data may come from any file a user points the pipeline at, so everything else raises
`MarshalError` saying what is wrong: damaged data, and data that no Python 3.4-3.7 writes for a
lambda (nesting deeper than MAX_NESTING, integers longer than MAX_LONG_DIGITS, a few bytes that
expand to millions of objects through references). Code objects in the layout of Python
3.8-3.10 or 3.11+ raise `NewerPythonError`, naming those Pythons.
"""
from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from facenet_edgetpu.lambda_bytecode.errors import MarshalError, NewerPythonError


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

_FLAG_REF = 0x80  # set on the type code of an object that later data may refer back to
_NULL = object()  # the marshal NULL marker that ends a dict

# How deep containers and code objects may nest. Python's own limit is far higher, but this
# reader recurses in Python, and a deep nest would exhaust Python's recursion limit first.
MAX_NESTING = 100

# How many objects one object may expand to when references are followed (see _measure).
MAX_EXPANDED_OBJECTS = 100000

# The longest integer accepted, in marshal's 15-bit digits: 13500 bits, about 4060 decimal
# digits, under the 4300 digits Python 3.11+ converts to text by default (sys.int_info).
MAX_LONG_DIGITS = 900

_SINGLETONS = {"0": _NULL, "N": None, "F": False, "T": True, "S": StopIteration,
               ".": Ellipsis}
_SEQUENCE_TYPES = {"(": tuple, ")": tuple, "[": list, "<": set, ">": frozenset}


_ONLY_OLD_CODE = "only the bytecode of Python 3.5-3.7 can be translated"
# Code object fields in marshal order, as (name, type): int for an int32, else the type of the
# marshal object (object: not checked). Python 3.4-3.7: argcount, kwonlyargcount, nlocals,
# stacksize, flags, then the first fields, then freevars (a tuple), then the last fields.
_FIRST_FIELDS = (("code", bytes), ("consts", tuple), ("names", tuple), ("varnames", tuple))
_LAST_FIELDS = (("cellvars", tuple), ("filename", object), ("name", object),
                ("firstlineno", int), ("lnotab", object))
# Python 3.8-3.10 after the first five int32s (posonlyargcount came second): flags, then code,
# consts, names, varnames, freevars, cellvars, filename, name, firstlineno, lnotab (3.10:
# linetable).
_REST_OF_LAYOUT_38 = (("flags", int),) + _FIRST_FIELDS + (
    ("freevars", tuple), ("cellvars", tuple), ("filename", str), ("name", str),
    ("firstlineno", int), ("lnotab", bytes))
# Python 3.11+ after localspluskinds: filename, name, qualname, firstlineno, linetable,
# exceptiontable.
_REST_OF_LAYOUT_311 = (("filename", str), ("name", str), ("qualname", str),
                       ("firstlineno", int), ("linetable", bytes), ("exceptiontable", bytes))
_COUNTS = (("argcount", int), ("kwonlyargcount", int), ("nlocals", int), ("stacksize", int),
           ("flags", int))


class _MarshalReader(object):
    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.refs: List[Any] = []
        self.depth = 0  # containers and code objects being read, the outermost included
        # id -> (container, objects it expands to, nesting depth), see _measure
        self.measures: Dict[int, Tuple[Any, int, int]] = {}

    # -- primitives --------------------------------------------------------------------------

    def _take(self, count: int) -> bytes:
        end = self.pos + count
        if count < 0 or end > len(self.data):
            raise MarshalError(
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
        """A reference slot for a container, taken before its items as CPython does."""
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

    # -- objects -----------------------------------------------------------------------------

    def read(self) -> Any:
        start = self.pos
        code = self._byte()
        flag = code & _FLAG_REF
        kind = chr(code & ~_FLAG_REF)
        if kind in _SINGLETONS:
            return _SINGLETONS[kind]
        reader = _READERS.get(kind)
        if reader is None:
            raise MarshalError("unknown marshal type code {!r} (0x{:02x}) at offset {}".format(
                kind, code, start))
        if self.depth >= MAX_NESTING:
            raise MarshalError("the marshal data nests objects more than {} deep (offset {}); "
                               "a lambda's code object nests three or four".format(
                                   MAX_NESTING, start))
        self.depth += 1
        try:
            return reader(self, kind, flag, start)
        finally:
            self.depth -= 1

    def _int(self, kind: str, flag: int, start: int) -> int:
        return self._keep(flag, self._int32())

    def _long(self, kind: str, flag: int, start: int) -> int:
        size = self._int32()
        if abs(size) > MAX_LONG_DIGITS:
            raise MarshalError(
                "the integer at offset {} has {} digits of 15 bits, more than the {} (about "
                "4000 decimal digits) accepted: no lambda constant is that long, and Python "
                "3.11+ refuses to print a longer one".format(start, abs(size), MAX_LONG_DIGITS))
        value = 0
        for position in range(abs(size)):
            digit = struct.unpack("<H", self._take(2))[0]
            value |= digit << (15 * position)
        return self._keep(flag, -value if size < 0 else value)

    def _binary_float(self, kind: str, flag: int, start: int) -> float:
        return self._keep(flag, struct.unpack("<d", self._take(8))[0])

    def _float_from_text(self, start: int) -> float:
        """A float written as text (marshal versions 0 and 1): a length byte, then ASCII."""
        text = self._take(self._byte())
        try:
            return float(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as error:
            raise MarshalError("the float at offset {} is not a number: {!r}".format(
                start, text)) from error

    def _text_float(self, kind: str, flag: int, start: int) -> float:
        return self._keep(flag, self._float_from_text(start))

    def _binary_complex(self, kind: str, flag: int, start: int) -> complex:
        real, imag = struct.unpack("<dd", self._take(16))
        return self._keep(flag, complex(real, imag))

    def _text_complex(self, kind: str, flag: int, start: int) -> complex:
        real = self._float_from_text(start)
        return self._keep(flag, complex(real, self._float_from_text(start)))

    def _bytes(self, kind: str, flag: int, start: int) -> bytes:
        return self._keep(flag, self._take(self._int32()))

    def _unicode(self, kind: str, flag: int, start: int) -> str:
        try:
            text = self._take(self._int32()).decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as error:
            raise MarshalError("the string at offset {} is not UTF-8 ({})".format(
                start, error.reason)) from error
        return self._keep(flag, text)

    def _ascii(self, kind: str, flag: int, start: int) -> str:
        return self._keep(flag, self._take(self._int32()).decode("latin-1"))

    def _short_ascii(self, kind: str, flag: int, start: int) -> str:
        return self._keep(flag, self._take(self._byte()).decode("latin-1"))

    def _measure(self, items: Sequence[Any], start: int) -> Tuple[int, int]:
        """How many objects a container of `items` expands to and how deep it nests, with
        references followed.

        References let a few bytes describe a tuple whose items are two references to one
        tuple whose items are two references ..., which expands to 2**depth objects (hashing
        or printing it would never end), or a chain of tuples each holding the one before,
        nesting deeper than the reader's own nesting limit. Both are refused here, before the
        container is built and hashed.
        """
        if any(item is _NULL for item in items):
            raise MarshalError("the container at offset {} holds a NULL marker".format(start))
        measured = [self.measures[id(item)][1:] if id(item) in self.measures else (1, 0)
                    for item in items]
        size = 1 + sum(item_size for item_size, _ in measured)
        depth = 1 + max((item_depth for _, item_depth in measured), default=0)
        if size > MAX_EXPANDED_OBJECTS or depth > MAX_NESTING:
            raise MarshalError(
                "the object at offset {} expands to {} objects nesting {} deep through "
                "references to other parts of the data, more than the {} objects and {} levels "
                "accepted; a lambda's code object has a few dozen objects".format(
                    start, size, depth, MAX_EXPANDED_OBJECTS, MAX_NESTING))
        return size, depth

    def _remember(self, value: Any, measure: Tuple[int, int]) -> Any:
        self.measures[id(value)] = (value,) + measure  # the value too, so its id stays its own
        return value

    def _sequence(self, kind: str, flag: int, start: int) -> Any:
        count = self._byte() if kind == ")" else self._int32()
        slot = self._reserve(flag)
        items = [self.read() for _ in range(count)]
        measure = self._measure(items, start)
        try:
            value = _SEQUENCE_TYPES[kind](items)
        except TypeError as error:  # a set of lists, say: CPython refuses it too
            raise MarshalError("the {} at offset {} holds an unhashable item ({})".format(
                _SEQUENCE_TYPES[kind].__name__, start, error)) from error
        return self._keep(flag, self._remember(value, measure), slot)

    def _dict(self, kind: str, flag: int, start: int) -> Dict[Any, Any]:
        slot = self._reserve(flag)
        items = []
        while True:
            key = self.read()
            if key is _NULL:
                break
            items += [key, self.read()]
        measure = self._measure(items, start)
        try:
            result = dict(zip(items[0::2], items[1::2]))
        except TypeError as error:
            raise MarshalError("the dict at offset {} has an unhashable key ({})".format(
                start, error)) from error
        return self._keep(flag, self._remember(result, measure), slot)

    def _reference(self, kind: str, flag: int, start: int) -> Any:
        index = self._int32()
        if not 0 <= index < len(self.refs) or self.refs[index] is None:
            raise MarshalError("marshal data refers to object #{} before it exists "
                               "(offset {})".format(index, start))
        return self.refs[index]

    def _is_bytes_next(self, offset: int = 0) -> bool:
        """Whether the object at `offset` bytes ahead has the bytes type code."""
        following = self.data[self.pos + offset:self.pos + offset + 1]
        return bool(following) and (following[0] & ~_FLAG_REF) == ord("s")

    def _fields(self, fields: Sequence[Tuple[str, type]], layout: str) -> List[Any]:
        """Read code object fields (name, type): an int32 for int, else a marshal object of
        that type (`object`: any)."""
        values = []
        for name, expected in fields:
            value = self._int32() if expected is int else self.read()
            if not isinstance(value, expected):
                raise MarshalError(
                    "malformed code object in marshal data: its {} is of type {}, not {} "
                    "(Python {} layout)".format(name, type(value).__name__, expected.__name__,
                                                layout))
            values.append(value)
        return values

    def _code(self, kind: str, flag: int, start: int) -> CodeObject:
        """A code object; the layout of a newer Python raises NewerPythonError.

        The layouts are told apart without backtracking: after five int32s, Python 3.4-3.7 and
        3.11+ continue with the bytecode string, 3.8-3.10 with a sixth int32; the fifth object
        after the bytecode is a tuple (freevars) in 3.4-3.7 and bytes (localspluskinds) in 3.11+.
        """
        slot = self._reserve(flag)
        counts = self._fields(_COUNTS, "3.4-3.7")
        if not self._is_bytes_next():
            if self._is_bytes_next(4):
                self._fields(_REST_OF_LAYOUT_38, "3.8-3.10")
                raise NewerPythonError(
                    "the code object was written by Python 3.8, 3.9 or 3.10 (it has the "
                    "posonlyargcount field of Python 3.8, in the layout that Python 3.11 "
                    "replaced); " + _ONLY_OLD_CODE, "3.8-3.10")
            raise MarshalError("not a Python 3.4-3.7 code object: its bytecode string is "
                               "missing at offset {}".format(self.pos))
        bytecode, consts, names, varnames = self._fields(_FIRST_FIELDS, "3.4-3.7")
        freevars = self.read()
        if isinstance(freevars, bytes):  # co_localspluskinds, where 3.4-3.7 have freevars
            qualname = self._fields(_REST_OF_LAYOUT_311, "3.11+")[2]
            raise NewerPythonError(
                "the code object was written by Python 3.11 or later (it has the fields "
                "Python 3.11 introduced: the qualified name {!r}, localsplusnames and "
                "localspluskinds in place of varnames, freevars and cellvars, and an exception "
                "table); {}".format(qualname, _ONLY_OLD_CODE), "3.11 or later")
        cellvars, filename, name, firstlineno, lnotab = self._fields(
            _LAST_FIELDS, "3.4-3.7")
        if not isinstance(freevars, tuple):
            raise MarshalError("malformed code object in marshal data: its freevars is of "
                               "type {}, not tuple (Python 3.4-3.7 layout)".format(
                                   type(freevars).__name__))
        value = CodeObject(counts[0], counts[1], counts[2], counts[3], counts[4], bytecode,
                           consts, names, varnames, freevars, cellvars, filename, name,
                           firstlineno, lnotab)
        _check_code(value, start)
        measure = self._measure(value, start)
        return self._keep(flag, self._remember(value, measure), slot)


def _check_code(code: CodeObject, start: int) -> None:
    """Checks like those of CPython's code constructor (names are strings, lnotab is bytes, no
    negative counts), and that the arguments fit the varnames, as the translator assumes."""
    problems = ["its {} is not a tuple of strings".format(field) for field in (
        "names", "varnames", "freevars", "cellvars")
        if not all(isinstance(item, str) for item in getattr(code, field))]
    problems += ["its {} is not a string".format(field) for field in ("filename", "name")
                 if not isinstance(getattr(code, field), str)]
    if not isinstance(code.lnotab, bytes):
        problems.append("its lnotab is not bytes")
    if min(code.argcount, code.kwonlyargcount, code.nlocals) < 0:
        problems.append("it has a negative argument or local count")
    elif code.argcount + code.kwonlyargcount + bool(code.flags & CO_VARARGS) + bool(
            code.flags & CO_VARKEYWORDS) > len(code.varnames):
        problems.append("it has more arguments than variable names")
    if problems:
        raise MarshalError("malformed code object at offset {} of the marshal data: {}".format(
            start, "; ".join(problems)))


# Type code -> the method that reads the rest of the object (singletons are in _SINGLETONS).
_READERS: Dict[str, Callable[[_MarshalReader, str, int, int], Any]] = {
    "i": _MarshalReader._int, "l": _MarshalReader._long,
    "g": _MarshalReader._binary_float, "f": _MarshalReader._text_float,
    "y": _MarshalReader._binary_complex, "x": _MarshalReader._text_complex,
    "s": _MarshalReader._bytes, "t": _MarshalReader._unicode, "u": _MarshalReader._unicode,
    "a": _MarshalReader._ascii, "A": _MarshalReader._ascii,
    "z": _MarshalReader._short_ascii, "Z": _MarshalReader._short_ascii,
    "{": _MarshalReader._dict, "r": _MarshalReader._reference, "c": _MarshalReader._code,
}
_READERS.update({kind: _MarshalReader._sequence for kind in _SEQUENCE_TYPES})


def read_marshal(data: bytes) -> Any:
    """Decode one object marshalled by Python 3.4-3.7; code objects become `CodeObject`s.

    Raises MarshalError (NewerPythonError for a code object of Python 3.8+) when it cannot.
    """
    value = _MarshalReader(data).read()
    if value is _NULL:
        raise MarshalError("marshal data holds only a NULL marker")
    return value
