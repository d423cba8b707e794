"""Decode and list the instructions of Python 3.5 bytecode and Python 3.6/3.7 wordcode.

Telling Python 3.5 bytecode from 3.6/3.7 wordcode. The marshal data does not record the Python
version, and code objects of 3.5, 3.6 and 3.7 have the same marshal layout. The instruction
encoding differs: 3.5 writes one byte for an instruction without argument and three bytes
(opcode, 16-bit argument) for one with an argument; 3.6+ writes every instruction as two bytes
(opcode, 8-bit argument, 0 when unused). The body of a lambda or a one-expression function always
ends with `RETURN_VALUE` (opcode 83, no argument). So the last byte decides: 83 means 3.5
(`RETURN_VALUE` is the final one-byte instruction); 0 preceded by 83 at an even offset means
3.6/3.7 (`RETURN_VALUE` plus its unused argument byte). The two can never be confused because
83 != 0. The chosen decoding is then checked (every instruction ends inside the code, the last one
is that `RETURN_VALUE`).
"""
from __future__ import annotations

from typing import Callable, Dict, List, NamedTuple, Optional

from facenet_edgetpu.lambda_bytecode.errors import BytecodeError
from facenet_edgetpu.lambda_bytecode.marshal_reader import CO_VARARGS, CO_VARKEYWORDS, CodeObject

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

COMPARE_OPS = ("<", "<=", "==", "!=", ">", ">=", "in", "not in", "is", "is not")


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
    raise BytecodeError(
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
                raise BytecodeError("wordcode has an odd length")
            arg = code[position + 1] | extended
            position += 2
        elif opcode >= HAVE_ARGUMENT:
            if position + 3 > len(code):
                raise BytecodeError("instruction at offset {} runs past the end of the "
                                    "code".format(position))
            arg = (code[position + 1] | (code[position + 2] << 8)) | extended
            position += 3
        else:
            arg = 0
            position += 1
        if opcode == EXTENDED_ARG:
            extended = arg << (8 if wordcode else 16)
            continue
        extended = 0
        result.append(Instruction(start, opcode, names.get(opcode, "<{}>".format(opcode)),
                                  arg if opcode >= HAVE_ARGUMENT else None))
        start = position
    if not result or result[-1].opcode != RETURN_VALUE:
        raise BytecodeError("the bytecode does not end with RETURN_VALUE")
    return result


def signature_names(code: CodeObject) -> List[str]:
    """The argument names, `*args` and `**kwargs` included, for listings."""
    count = code.argcount + code.kwonlyargcount
    names = list(code.varnames[:count])
    if code.flags & CO_VARARGS:
        names.append("*" + code.varnames[count])
        count += 1
    if code.flags & CO_VARKEYWORDS:
        names.append("**" + code.varnames[count])
    return names


def _compare_op(code: CodeObject, arg: int) -> str:
    return COMPARE_OPS[arg] if arg < len(COMPARE_OPS) else "op {}".format(arg)


def _cell_or_free(code: CodeObject, arg: int) -> str:
    return (code.cellvars + code.freevars)[arg]


# Instruction name -> what its argument stands for, shown beside it in listings.
_ARGUMENT_MEANINGS: Dict[str, Callable[[CodeObject, int], str]] = {
    "LOAD_CONST": lambda code, arg: repr(code.consts[arg]),
    "COMPARE_OP": _compare_op,
}
_ARGUMENT_MEANINGS.update({name: lambda code, arg: code.varnames[arg]
                           for name in ("LOAD_FAST", "STORE_FAST", "DELETE_FAST")})
_ARGUMENT_MEANINGS.update({name: lambda code, arg: code.names[arg] for name in (
    "LOAD_GLOBAL", "LOAD_NAME", "LOAD_ATTR", "LOAD_METHOD", "IMPORT_NAME")})
_ARGUMENT_MEANINGS.update({name: _cell_or_free for name in (
    "LOAD_DEREF", "LOAD_CLOSURE", "STORE_DEREF", "LOAD_CLASSDEREF")})


def _describe_arg(code: CodeObject, instruction: Instruction) -> str:
    meaning = _ARGUMENT_MEANINGS.get(instruction.opname)
    if meaning is None or instruction.arg is None:
        return ""
    try:
        return meaning(code, instruction.arg)
    except (IndexError, TypeError):
        return "out of range"


def disassemble(code: CodeObject, fmt: Optional[str] = None) -> str:
    """A `dis`-like listing of the code object, for error messages.

    When the instructions cannot be decoded, the listing shows the raw bytes and why instead.
    """
    try:
        fmt = fmt or bytecode_format(code.code)
        instructions = decode_instructions(code.code, fmt)
    except BytecodeError as error:
        return "  (undecodable: {}; arguments {}; constants {}; names {}; bytes {})".format(
            error, ", ".join(signature_names(code)) or "none", code.consts, code.names,
            code.code.hex())
    lines = ["  ({}; arguments {}; constants {}; names {}; free variables {})".format(
        fmt, ", ".join(signature_names(code)) or "none", code.consts, code.names,
        code.freevars)]
    for instruction in instructions:
        arg = "" if instruction.arg is None else str(instruction.arg)
        detail = _describe_arg(code, instruction)
        lines.append("  {:4d} {:<22} {:>4} {}".format(
            instruction.offset, instruction.opname, arg,
            "({})".format(detail) if detail else "").rstrip())
    return "\n".join(lines)
