"""Translate the bytecode of a simple expression lambda back into Python source.

The instructions are replayed on a stack of expressions (`expressions.Node`); each instruction
the translator knows has a handler in a table (instruction name -> handler). What it covers:
loads of arguments, constants, globals and closure variables; subscripts (with slices and tuples
of them); attribute access; unary and binary arithmetic, bitwise operators and comparisons;
calls with positional and keyword arguments (also method calls, `LOAD_METHOD`/`CALL_METHOD` of
3.7); tuple, list, set and dict displays. Anything else (conditional expressions, `and`/`or`,
comprehensions, nested lambdas, star-arguments, statements) raises `UntranslatableError`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, NamedTuple, Sequence, Tuple

from facenet_edgetpu.lambda_bytecode.errors import UntranslatableError
from facenet_edgetpu.lambda_bytecode.expressions import (
    P_ARITH, P_BAND, P_BOR, P_BXOR, P_CMP, P_NOT, P_POWER, P_SHIFT, P_TERM, P_TRAILER, P_UNARY,
    P_ATOM, Const, Method, Node, SliceExpr, Text, TupleExpr, Unsupported, attribute, const_text,
    paren)
from facenet_edgetpu.lambda_bytecode.instructions import (
    COMPARE_OPS, WORDCODE, Instruction, bytecode_format, decode_instructions, disassemble)
from facenet_edgetpu.lambda_bytecode.marshal_reader import (
    CO_ASYNC_GENERATOR, CO_COROUTINE, CO_GENERATOR, CO_ITERABLE_COROUTINE, CO_VARARGS,
    CO_VARKEYWORDS, CodeObject)

_BINARY = {
    "BINARY_POWER": ("**", P_POWER), "BINARY_MULTIPLY": ("*", P_TERM),
    "BINARY_MATRIX_MULTIPLY": ("@", P_TERM), "BINARY_MODULO": ("%", P_TERM),
    "BINARY_ADD": ("+", P_ARITH), "BINARY_SUBTRACT": ("-", P_ARITH),
    "BINARY_FLOOR_DIVIDE": ("//", P_TERM), "BINARY_TRUE_DIVIDE": ("/", P_TERM),
    "BINARY_LSHIFT": ("<<", P_SHIFT), "BINARY_RSHIFT": (">>", P_SHIFT),
    "BINARY_AND": ("&", P_BAND), "BINARY_XOR": ("^", P_BXOR), "BINARY_OR": ("|", P_BOR),
}
_UNARY = {"UNARY_POSITIVE": ("+", P_UNARY), "UNARY_NEGATIVE": ("-", P_UNARY),
          "UNARY_INVERT": ("~", P_UNARY), "UNARY_NOT": ("not ", P_NOT)}


class Translation(NamedTuple):
    """A lambda translated from bytecode."""
    source: str                     # e.g. "lambda inputs, scale: inputs[0] + inputs[1] * scale"
    global_names: Tuple[str, ...]   # globals the body reads (K, tf, np, builtins ...)


class _Replay(object):
    """The state of replaying a code object's instructions: the expression stack and the
    global names read so far."""

    def __init__(self, code: CodeObject) -> None:
        self.code = code
        self.stack: List[Node] = []
        self.globals_read: List[str] = []

    def pop(self, count: int) -> List[Node]:
        if count > len(self.stack):
            raise Unsupported("a stack the translator cannot follow")
        if count == 0:
            return []
        items = self.stack[-count:]
        del self.stack[-count:]
        return items

    def push(self, node: Node) -> None:
        self.stack.append(node)


Handler = Callable[[_Replay, Any], None]


def _call(function: Node, positional: Sequence[Node],
          keywords: Sequence[Tuple[str, Node]]) -> Node:
    args = [item.render() for item in positional]
    for name, value in keywords:
        if not isinstance(name, str) or not name.isidentifier():
            raise Unsupported("a keyword argument name that is not an identifier")
        args.append("{}={}".format(name, value.render()))
    if isinstance(function, Method):
        head = function.render()
    else:
        head = paren(function, function.prec < P_TRAILER)
    return Text("{}({})".format(head, ", ".join(args)), P_TRAILER)


# -- loads ------------------------------------------------------------------------------------

def _nop(replay: _Replay, arg: Any) -> None:
    pass


def _load_fast(replay: _Replay, arg: int) -> None:
    replay.push(Text(replay.code.varnames[arg], P_ATOM))


def _load_const(replay: _Replay, arg: int) -> None:
    value = replay.code.consts[arg]
    replay.push(TupleExpr([Const(item) for item in value]) if isinstance(value, tuple)
                else Const(value))


def _load_global(replay: _Replay, arg: int) -> None:
    symbol = replay.code.names[arg]
    if symbol not in replay.globals_read:
        replay.globals_read.append(symbol)
    replay.push(Text(symbol, P_ATOM))


def _load_deref(replay: _Replay, arg: int) -> None:
    if arg < len(replay.code.cellvars):
        raise Unsupported("a cell variable of the lambda itself (LOAD_DEREF {})".format(arg))
    replay.push(Text(replay.code.freevars[arg - len(replay.code.cellvars)], P_ATOM))


def _load_attr(replay: _Replay, arg: int) -> None:
    owner, = replay.pop(1)
    replay.push(Text(attribute(owner, replay.code.names[arg]), P_TRAILER))


def _load_method(replay: _Replay, arg: int) -> None:
    owner, = replay.pop(1)
    replay.push(Method(owner, replay.code.names[arg]))


# -- operators --------------------------------------------------------------------------------

def _subscript(replay: _Replay, arg: Any) -> None:
    value, index = replay.pop(2)
    replay.push(Text("{}[{}]".format(paren(value, value.prec < P_TRAILER),
                                     index.render(in_subscript=True)), P_TRAILER))


def _binary(symbol: str, prec: int, replay: _Replay, arg: Any) -> None:
    left, right = replay.pop(2)
    if symbol == "**":
        text = "{} ** {}".format(paren(left, left.prec <= prec),
                                 paren(right, right.prec < P_UNARY))
    else:
        text = "{} {} {}".format(paren(left, left.prec < prec), symbol,
                                 paren(right, right.prec <= prec))
    replay.push(Text(text, prec))


def _unary(symbol: str, prec: int, replay: _Replay, arg: Any) -> None:
    operand, = replay.pop(1)
    replay.push(Text(symbol + paren(operand, operand.prec < prec), prec))


def _compare(replay: _Replay, arg: int) -> None:
    if arg >= len(COMPARE_OPS):
        raise Unsupported("COMPARE_OP {} (exception matching)".format(arg))
    left, right = replay.pop(2)
    replay.push(Text("{} {} {}".format(paren(left, left.prec <= P_CMP), COMPARE_OPS[arg],
                                       paren(right, right.prec <= P_CMP)), P_CMP))


# -- displays ---------------------------------------------------------------------------------

def _build_tuple(replay: _Replay, arg: int) -> None:
    replay.push(TupleExpr(replay.pop(arg)))


def _build_list(replay: _Replay, arg: int) -> None:
    items = replay.pop(arg)
    replay.push(Text("[" + ", ".join(item.render() for item in items) + "]", P_ATOM))


def _build_set(replay: _Replay, arg: int) -> None:
    items = replay.pop(arg)
    replay.push(Text("{" + ", ".join(item.render() for item in items) + "}", P_ATOM))


def _dict_display(keys: Sequence[Node], values: Sequence[Node]) -> Node:
    pairs = ["{}: {}".format(key.render(), value.render()) for key, value in zip(keys, values)]
    return Text("{" + ", ".join(pairs) + "}", P_ATOM)


def _build_map(replay: _Replay, arg: int) -> None:
    items = replay.pop(2 * arg)
    replay.push(_dict_display(items[0::2], items[1::2]))


def _build_const_key_map(replay: _Replay, arg: int) -> None:
    keys, = replay.pop(1)
    values = replay.pop(arg)
    if not isinstance(keys, TupleExpr) or len(keys.items) != arg:
        raise Unsupported("BUILD_CONST_KEY_MAP without a constant key tuple")
    replay.push(_dict_display(keys.items, values))


def _build_slice(replay: _Replay, arg: int) -> None:
    if arg not in (2, 3):
        raise Unsupported("BUILD_SLICE {}".format(arg))
    replay.push(SliceExpr(replay.pop(arg)))


# -- calls ------------------------------------------------------------------------------------

def _call_function_wordcode(replay: _Replay, arg: int) -> None:
    """3.6+: CALL_FUNCTION n calls with n positional arguments."""
    args = replay.pop(arg)
    function, = replay.pop(1)
    replay.push(_call(function, args, ()))


def _call_function_legacy(replay: _Replay, arg: int) -> None:
    """3.5: the low byte counts positional arguments, the high byte (name, value) pairs."""
    positional_count, keyword_count = arg & 0xFF, (arg >> 8) & 0xFF
    pairs = replay.pop(2 * keyword_count)
    args = replay.pop(positional_count)
    function, = replay.pop(1)
    keywords = []
    for name, value in zip(pairs[0::2], pairs[1::2]):
        if not isinstance(name, Const):
            raise Unsupported("a keyword argument whose name is not a constant")
        keywords.append((name.value, value))
    replay.push(_call(function, args, keywords))


def _call_function_kw(replay: _Replay, arg: int) -> None:
    """3.6+: a constant tuple of keyword names on top of the n argument values."""
    names, = replay.pop(1)
    constants = [item for item in names.items if isinstance(item, Const)] \
        if isinstance(names, TupleExpr) else []
    if not isinstance(names, TupleExpr) or len(constants) != len(names.items):
        raise Unsupported("CALL_FUNCTION_KW without a constant name tuple")
    args = replay.pop(arg)
    function, = replay.pop(1)
    split = len(args) - len(constants)
    if split < 0:
        raise Unsupported("a stack the translator cannot follow")
    keywords = [(item.value, value) for item, value in zip(constants, args[split:])]
    replay.push(_call(function, args[:split], keywords))


def _call_method(replay: _Replay, arg: int) -> None:
    args = replay.pop(arg)
    method, = replay.pop(1)
    if not isinstance(method, Method):
        raise Unsupported("CALL_METHOD without LOAD_METHOD")
    replay.push(_call(method, args, ()))


# Instruction name -> handler, one table per bytecode format (3.5 calls differ from 3.6+).
_COMMON_HANDLERS: Dict[str, Handler] = {
    "NOP": _nop, "LOAD_FAST": _load_fast, "LOAD_CONST": _load_const,
    "LOAD_GLOBAL": _load_global, "LOAD_NAME": _load_global, "LOAD_DEREF": _load_deref,
    "LOAD_ATTR": _load_attr, "BINARY_SUBSCR": _subscript, "COMPARE_OP": _compare,
    "BUILD_TUPLE": _build_tuple, "BUILD_LIST": _build_list, "BUILD_SET": _build_set,
    "BUILD_MAP": _build_map, "BUILD_SLICE": _build_slice,
}
_COMMON_HANDLERS.update({name: functools.partial(_binary, symbol, prec)
                         for name, (symbol, prec) in _BINARY.items()})
_COMMON_HANDLERS.update({name: functools.partial(_unary, symbol, prec)
                         for name, (symbol, prec) in _UNARY.items()})
_LEGACY_HANDLERS: Dict[str, Handler] = dict(_COMMON_HANDLERS, CALL_FUNCTION=_call_function_legacy)
_WORDCODE_HANDLERS: Dict[str, Handler] = dict(
    _COMMON_HANDLERS, CALL_FUNCTION=_call_function_wordcode, CALL_FUNCTION_KW=_call_function_kw,
    BUILD_CONST_KEY_MAP=_build_const_key_map, LOAD_METHOD=_load_method,
    CALL_METHOD=_call_method)


def _translate_body(code: CodeObject, instructions: Sequence[Instruction],
                    fmt: str) -> Tuple[str, List[str]]:
    """The body's source and the global names it reads."""
    handlers = _WORDCODE_HANDLERS if fmt == WORDCODE else _LEGACY_HANDLERS
    replay = _Replay(code)
    for instruction in instructions[:-1]:  # the last one is RETURN_VALUE
        handler = handlers.get(instruction.opname)
        if handler is None:
            raise Unsupported("{} (offset {})".format(instruction.opname, instruction.offset))
        handler(replay, instruction.arg)
    if len(replay.stack) != 1:
        raise Unsupported("a stack of {} value(s) at RETURN_VALUE".format(len(replay.stack)))
    result = replay.stack[0]
    if isinstance(result, Method):
        raise Unsupported("LOAD_METHOD without CALL_METHOD")
    return result.render(), replay.globals_read


def _signature(code: CodeObject, defaults: Sequence[Any]) -> str:
    positional = list(code.varnames[:code.argcount])
    keyword_only = list(code.varnames[code.argcount:code.argcount + code.kwonlyargcount])
    index = code.argcount + code.kwonlyargcount
    if len(defaults) > len(positional):
        raise Unsupported("{} default values for {} positional arguments".format(
            len(defaults), len(positional)))
    parts = []
    first_default = len(positional) - len(defaults)
    for position, name in enumerate(positional):
        if position >= first_default:
            value = defaults[position - first_default]
            text = const_text(tuple(value) if isinstance(value, list) else value)
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


def lambda_source(code: CodeObject, defaults: Sequence[Any] = ()) -> Translation:
    """Translate the code object of a simple expression lambda into lambda source.

    Raises UntranslatableError when the bytecode uses anything the translator does not know
    (its `disassembly` attribute holds the decoded instructions), BytecodeError when the
    bytecode cannot be decoded at all.
    """
    fmt = bytecode_format(code.code)
    instructions = decode_instructions(code.code, fmt)
    try:
        if code.flags & (CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE |
                         CO_ASYNC_GENERATOR):
            raise Unsupported("a generator or coroutine")
        body, globals_read = _translate_body(code, instructions, fmt)
        signature = _signature(code, list(defaults or ()))
    except (Unsupported, IndexError) as error:
        reason = str(error) if isinstance(error, Unsupported) else \
            "an argument index out of range ({})".format(error)
        raise UntranslatableError(
            "the bytecode uses {}, which the translator does not handle".format(reason),
            disassembly=disassemble(code, fmt)) from error
    source = "lambda {}: {}".format(signature, body) if signature else "lambda: " + body
    return Translation(source, tuple(globals_read))
