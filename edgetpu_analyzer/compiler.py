"""Find `edgetpu_compiler`, ask its version, and run it under a time limit.

The compiler is x86-64 Linux only, so "not installed" is a normal answer (`find_compiler`
returns None and callers predict instead). A path the caller wrote explicitly is different: if it
does not exist, that is a mistake to report, not a reason to predict silently.

The compiler (16 and later) compiles in a child process, so a time limit kills the whole process
group, never leaving a compiler running.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from typing import List, Optional, Tuple

VERSION_LINE = re.compile(r"Edge TPU Compiler version\s+(\d+(?:\.\d+)*)")
VERSION_QUERY_TIMEOUT_SEC = 60


class CompilerUnusableError(ValueError):
    """The compiler named by the caller is missing, not executable, or does not answer as
    `edgetpu_compiler` does; the message says which path and what happened."""


def is_explicit_path(compiler: str) -> bool:
    """True for a path (holds a directory separator), False for a name looked up on PATH."""
    return os.sep in compiler or bool(os.altsep and os.altsep in compiler)


def find_compiler(compiler: str) -> Optional[str]:
    """Absolute path of the compiler, or None when a *name* is not on PATH.

    An explicit path that does not exist, or is not an executable file, raises
    CompilerUnusableError: the caller asked for that file.
    """
    if is_explicit_path(compiler):
        if not os.path.exists(compiler):
            raise CompilerUnusableError("{} does not exist".format(compiler))
        if os.path.isdir(compiler) or not os.access(compiler, os.X_OK):
            raise CompilerUnusableError("{} exists but is not an executable file".format(compiler))
        return os.path.abspath(compiler)
    found = shutil.which(compiler)
    return os.path.abspath(found) if found else None


def compiler_major(version: str) -> int:
    """The major release of a version string such as "16.0.384591198"."""
    try:
        return int(version.split(".")[0])
    except ValueError:
        raise CompilerUnusableError(
            "cannot read a major version from {!r}".format(version)) from None


def run_with_time_limit(command: List[str], limit: float, cwd: Optional[str] = None
                        ) -> Tuple[int, str]:
    """Run `command`; return (exit status, stdout+stderr text).

    After `limit` seconds the whole process group is killed and TimeoutExpired raised.
    """
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # the group ended between the timeout and the kill
        process.communicate()
        raise
    return process.returncode, output.decode("utf-8", "replace")


def query_compiler_version(compiler_path: str, timeout: float = VERSION_QUERY_TIMEOUT_SEC) -> str:
    """Run `<compiler> --version` and return e.g. "16.0.384591198"."""
    try:
        status, text = run_with_time_limit([compiler_path, "--version"], timeout)
    except subprocess.TimeoutExpired:
        raise CompilerUnusableError("{} --version did not answer within {:.0f} s and was "
                                    "stopped".format(compiler_path, timeout)) from None
    except OSError as error:
        raise CompilerUnusableError("cannot run {} --version: {}".format(
            compiler_path, error.strerror or error)) from error
    match = VERSION_LINE.search(text)
    if match is None:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        printed = "nothing" if not lines else "{!r}{}".format(
            lines[0][:120], " and {} more line(s)".format(len(lines) - 1) if len(lines) > 1 else "")
        raise CompilerUnusableError(
            "{} --version (exit {}) printed no 'Edge TPU Compiler version' line, so it is not "
            "edgetpu_compiler (it printed {})".format(compiler_path, status, printed))
    return match.group(1)
