"""The errors of the bytecode package. All are `BytecodeError`s (a `ValueError`)."""
from __future__ import annotations

from typing import Optional


class BytecodeError(ValueError):
    """Marshal data or bytecode that this package cannot read or translate."""


class MarshalError(BytecodeError):
    """The marshal data is damaged, or is not an object as Python 3.4-3.7 marshal it."""


class NewerPythonError(MarshalError):
    """A code object in the layout of a Python newer than 3.7.

    `python_versions` names the Pythons whose layout it has, e.g. "3.8-3.10" or "3.11 or later".
    """

    def __init__(self, message: str, python_versions: str) -> None:
        super().__init__(message)
        self.python_versions = python_versions


class UntranslatableError(BytecodeError):
    """The bytecode is readable but beyond the translator; `disassembly` lists it."""

    def __init__(self, message: str, disassembly: Optional[str] = None) -> None:
        super().__init__(message)
        self.disassembly = disassembly
