"""Expressions rebuilt from bytecode, rendered as Python source with only the needed parentheses."""
from __future__ import annotations

import math
from typing import Any, Sequence

from facenet_edgetpu.lambda_bytecode.marshal_reader import CodeObject

# Operator precedence, lowest first (Python language reference, "Operator precedence").
P_LAMBDA, P_TEST, P_OR, P_AND, P_NOT, P_CMP, P_BOR, P_BXOR, P_BAND = range(9)
P_SHIFT, P_ARITH, P_TERM, P_UNARY, P_POWER, P_AWAIT, P_TRAILER, P_ATOM = range(9, 17)


class Unsupported(Exception):
    """The bytecode uses something the translator does not handle; the message says what."""


class Node(object):
    """An expression rebuilt from the bytecode; `render` gives its source."""
    prec = P_ATOM

    def render(self, in_subscript: bool = False) -> str:
        raise NotImplementedError


class Text(Node):
    def __init__(self, text: str, prec: int) -> None:
        self.text = text
        self.prec = prec

    def render(self, in_subscript: bool = False) -> str:
        return self.text


class Const(Node):
    def __init__(self, value: Any) -> None:
        self.value = value
        self.text = const_text(value)
        self.prec = P_UNARY if self.text.startswith("-") else P_ATOM

    def render(self, in_subscript: bool = False) -> str:
        return self.text


class TupleExpr(Node):
    def __init__(self, items: Sequence[Node]) -> None:
        self.items = list(items)

    def render(self, in_subscript: bool = False) -> str:
        parts = [item.render(in_subscript and isinstance(item, SliceExpr)) for item in self.items]
        if in_subscript and self.items:
            return ", ".join(parts) + ("," if len(parts) == 1 else "")
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


class SliceExpr(Node):
    def __init__(self, parts: Sequence[Node]) -> None:
        self.parts = list(parts)

    def render(self, in_subscript: bool = False) -> str:
        if in_subscript:
            texts = ["" if isinstance(part, Const) and part.value is None
                     else paren(part, part.prec < P_TEST) for part in self.parts]
            return ":".join(texts)
        return "slice(" + ", ".join(part.render() for part in self.parts) + ")"


class Method(Node):
    """What LOAD_METHOD pushes: an object and the name of the method CALL_METHOD calls."""

    def __init__(self, owner: Node, name: str) -> None:
        self.owner = owner
        self.name = name

    def render(self, in_subscript: bool = False) -> str:
        return attribute(self.owner, self.name)


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "float('nan')"
    if math.isinf(value):
        return "float('inf')" if value > 0 else "-float('inf')"
    return repr(value)


def _frozenset_text(value: frozenset) -> str:
    items = sorted(const_text(item) for item in value)
    return "frozenset({" + ", ".join(items) + "})" if items else "frozenset()"


def const_text(value: Any) -> str:
    """Source for a constant of a code object; Unsupported for anything a lambda cannot spell."""
    if value is None or value is True or value is False:
        return repr(value)
    if value is Ellipsis:
        return "..."
    if isinstance(value, float):
        return _float_text(value)
    if isinstance(value, (int, complex, str, bytes)):
        return repr(value)
    if isinstance(value, tuple):
        return TupleExpr([Const(item) for item in value]).render()
    if isinstance(value, frozenset):
        return _frozenset_text(value)
    if isinstance(value, CodeObject):
        raise Unsupported("a nested function or comprehension (code object {!r})".format(
            value.name))
    raise Unsupported("a constant of type {}".format(type(value).__name__))


def paren(node: Node, needed: bool, in_subscript: bool = False) -> str:
    text = node.render(in_subscript)
    return "(" + text + ")" if needed else text


def attribute(owner: Node, name: str) -> str:
    """`owner.name`; an int literal needs parentheses too (`(1).real`, not `1.real`)."""
    needed = owner.prec < P_TRAILER or (isinstance(owner, Const) and isinstance(
        owner.value, int))
    return paren(owner, needed) + "." + name
