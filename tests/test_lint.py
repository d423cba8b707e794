"""The static checks of `make lint`, so CI enforces them: ruff on the whole tree, mypy on the
analyzer package (configuration in pyproject.toml). The Python 3.7 check (vermin) is
tests/test_production_image.py::test_stage_code_is_python37_compatible.

Both tools run from the test's own environment (the venv `make test` builds from the locks),
as subprocesses in the repository, writing no cache into it.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPED_PACKAGE = "edgetpu_analyzer"


def run_tool(arguments: List[str]) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m"] + arguments, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)


def python_files(directory: str) -> List[str]:
    return sorted(os.path.join(root, name) for root, _, names in os.walk(directory)
                  for name in names if name.endswith(".py"))


def test_ruff_finds_nothing_in_the_tree():
    done = run_tool(["ruff", "check", "--no-cache", "."])
    assert done.returncode == 0, done.stdout


def test_ruff_checks_every_python_file_of_the_repository():
    # A checker configured to skip a folder would pass the test above without looking at it.
    done = run_tool(["ruff", "check", "--no-cache", "--show-files", "."])
    assert done.returncode == 0, done.stdout
    checked = {os.path.relpath(line.strip(), REPO) for line in done.stdout.splitlines()
               if line.strip().endswith(".py")}
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, stdout=subprocess.PIPE,
                             universal_newlines=True, check=True).stdout.split()
    assert tracked and set(tracked) <= checked, sorted(set(tracked) - checked)


def test_mypy_strict_finds_nothing_in_the_analyzer(tmp_path):
    done = run_tool(["mypy", "--cache-dir", str(tmp_path / "mypy_cache"), TYPED_PACKAGE])
    assert done.returncode == 0, done.stdout
    # Every module was checked (none excluded), under the strict configuration.
    checked = re.search(r"no issues found in (\d+) source files", done.stdout)
    assert checked, done.stdout
    assert int(checked.group(1)) == len(python_files(os.path.join(REPO, TYPED_PACKAGE)))
    config = run_tool(["mypy", "--cache-dir", str(tmp_path / "mypy_cache"), "-c",
                       "def untyped(x): return x"])
    assert config.returncode == 1 and "no-untyped-def" in config.stdout, config.stdout
