"""Fuzz edgetpu_analyzer.parse: compiler stdout (parse_compiler_stdout) and the operation log
(parse_operation_log), both fed the same text, read as the compile stage reads files (UTF-8,
undecodable bytes replaced). The documented error is `CompilerOutputError`; any other
exception is a finding.

The parser is a set of regular expressions, so branch coverage saturates within seconds and
byte-level mutations rarely change what the expressions capture. Half of the mutations are
therefore line-level (`mutate`): a number made very long, a line repeated, dropped or moved.

Run: python -m tests.fuzz.fuzz_compiler_output <corpus dir> [libFuzzer options]
"""
from __future__ import annotations

import glob
import os
import random
import re
from typing import Dict

from tests.fuzz.harness import REPO, fuzz_main

INSTRUMENTED = ("edgetpu_analyzer.parse",)
SOURCES = (os.path.join(REPO, "edgetpu_analyzer", "parse.py"),)
LIBFUZZER_OPTIONS = ("-max_len=65536",)  # room for a number of thousands of digits

_NUMBER = re.compile(rb"\d+(?:\.\d+)?")


def one_input(data: bytes) -> None:
    from edgetpu_analyzer import parse

    text = data.decode("utf-8", "replace")
    for parser in (parse.parse_compiler_stdout, parse.parse_operation_log,
                   parse.compiler_version_from_text):
        try:
            parser(text)
        except parse.CompilerOutputError:
            pass


def _widen_number(lines: list, rng: random.Random) -> None:
    numbered = [i for i, line in enumerate(lines) if _NUMBER.search(line)]
    if numbered:
        index = rng.choice(numbered)
        digits = str(rng.randint(1, 9)) * rng.choice((20, 400, 5000))
        lines[index] = _NUMBER.sub(digits.encode(), lines[index], count=1)


def _repeat_line(lines: list, rng: random.Random) -> None:
    index = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[index])


def _drop_line(lines: list, rng: random.Random) -> None:
    if len(lines) > 1:
        del lines[rng.randrange(len(lines))]


def _move_line(lines: list, rng: random.Random) -> None:
    lines.insert(rng.randrange(len(lines)), lines.pop(rng.randrange(len(lines))))


_LINE_MUTATIONS = (_widen_number, _repeat_line, _drop_line, _move_line)


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    import atheris

    rng = random.Random(seed)
    if rng.random() < 0.5 or not data:
        return atheris.Mutate(data, max_size)
    lines = data.split(b"\n")
    rng.choice(_LINE_MUTATIONS)(lines, rng)
    return b"\n".join(lines)[:max_size]


def seeds() -> Dict[str, bytes]:
    """Every real compiler stdout and operation log in tests/data."""
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "tests", "data", "*.txt")) +
                       glob.glob(os.path.join(REPO, "tests", "data", "*.log"))):
        with open(path, "rb") as handle:
            found[os.path.basename(path)] = handle.read()
    return found


if __name__ == "__main__":
    fuzz_main(INSTRUMENTED, one_input, mutate)
