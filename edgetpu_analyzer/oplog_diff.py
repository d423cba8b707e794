"""Compare the Edge TPU compiler's operator logs of two runs: `oplog-diff A B`.

A and B may each be a compiler stdout file, an operation log (`*_edgetpu.log`), a
`compile_result.json` (real or predicted), a directory holding one of those (such as
`models/edgetpu`, or a work tree of this project, where `models/edgetpu` is used), or a git
revision of the repository the command runs in, read through git and DVC without a checkout.

Example usage:
```
oplog-diff main HEAD                          # the compile results of two commits
oplog-diff main . --fail-on-regression        # committed result against the work tree
oplog-diff old_stdout.txt models/edgetpu --markdown > comment.md
oplog-diff a_edgetpu.log b_edgetpu.log --json
python -m edgetpu_analyzer.oplog_diff HEAD~1 HEAD
```

How an argument is understood, first match wins: an existing file (JSON when it starts with
"{", compiler stdout when it has the summary lines, else an operation log); an existing
directory; a git revision (anything `git rev-parse --verify REV^{commit}` accepts; write
`NAME^{commit}` when a file of the same name exists). For a revision the toolchain is the one
dvc.lock records for the compile stage at that revision (its toolchain.yaml params); for a
work-tree directory, the one in its dvc.lock.

Exit status: 0 when the comparison was made, 1 with --fail-on-regression when B regressed
against A (see edgetpu_analyzer.diff for the exact rule), 2 for bad arguments or input.
"""
from __future__ import annotations

import argparse
import json
import os
import posixpath
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import yaml

from edgetpu_analyzer.diff import diff_results, render_json, render_markdown, render_text
from edgetpu_analyzer.parse import CompilerOutputError, parse_compiler_stdout, parse_operation_log
from edgetpu_analyzer.result import CompileResult

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

COMPILE_DIR = "models/edgetpu"          # the compile stage's output directory (dvc.yaml)
COMPILE_STAGE = "compile"               # its name in dvc.yaml / dvc.lock
TOOLCHAIN_PARAMS_FILE = "toolchain.yaml"
LOCK_FILE = "dvc.lock"
RESULT_FILE = "compile_result.json"
STDOUT_FILE = "compiler_stdout.txt"

KIND_JSON = "compile result JSON"
KIND_STDOUT = "compiler stdout"
KIND_LOG = "operation log"

# Lines only the compiler's stdout has; the operation log has the table and "Input:" only.
_STDOUT_ONLY_LINE = re.compile(
    r"^\s*(Input model:|Models? compiled successfully in|Total number of operations:)", re.M)
_TABLE_HEADER = re.compile(r"^\s*Operator\s+Count\s+Status\s*$", re.M)


class InputError(Exception):
    """An argument that cannot be read as a compile result; its message is one line."""


@dataclass
class LoadedSide:
    """One side of the comparison and how its argument was understood."""

    description: str
    result: CompileResult
    toolchain: Optional[Dict[str, str]]


# --- reading one compile result from text -----------------------------------------------------

def parse_result_text(text: str, name: str) -> Tuple[CompileResult, str]:
    """(result, kind) from the text of a compile_result.json, compiler stdout or .log file."""
    if text.lstrip().startswith("{"):
        try:
            return CompileResult.from_dict(json.loads(text)), KIND_JSON
        except (ValueError, TypeError) as error:
            raise InputError("{} is JSON but not a compile result: {}".format(
                name, _one_line(error)))
    try:
        # A fatal-error run prints neither the summary nor a table: that too is stdout.
        if _STDOUT_ONLY_LINE.search(text) or not _TABLE_HEADER.search(text):
            return parse_compiler_stdout(text), KIND_STDOUT
        return parse_operation_log(text), KIND_LOG
    except CompilerOutputError as error:
        raise InputError("{}: {}".format(name, _one_line(error)))


class LocalFiles:
    """Files of the file system, for arguments that are paths."""

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def isfile(self, path: str) -> bool:
        return os.path.isfile(path)

    def listdir(self, path: str) -> List[str]:
        return sorted(os.listdir(path))

    def read_text(self, path: str) -> str:
        try:
            with open(path, "r", encoding="utf-8") as handle:
                return handle.read()
        except UnicodeDecodeError:
            raise InputError("{} is not a text file".format(path))
        except OSError as error:
            raise InputError("cannot read {}: {}".format(path, error.strerror or error))

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)


class RevisionFiles:
    """Files of one git revision, DVC-tracked ones included, read without a checkout."""

    def __init__(self, repo_root: str, commit: str, label: str) -> None:
        try:
            from dvc.api import DVCFileSystem
        except ImportError:
            raise InputError("reading git revision {} needs DVC installed (pip install dvc)"
                             .format(label))
        self.label = label
        try:
            self.fs = DVCFileSystem(repo_root, rev=commit)
        except Exception as error:  # DVC raises many types; the user needs one line
            raise InputError("cannot open {} at {} with DVC: {}".format(
                repo_root, label, _one_line(error)))

    def isdir(self, path: str) -> bool:
        return self._ask(self.fs.isdir, path)

    def isfile(self, path: str) -> bool:
        return self._ask(self.fs.isfile, path)

    def listdir(self, path: str) -> List[str]:
        return sorted(posixpath.basename(entry.rstrip("/"))
                      for entry in self._ask(self.fs.ls, path, detail=False))

    def read_text(self, path: str) -> str:
        data = self._ask(self.fs.read_bytes, path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("{} at {} is not a text file".format(path, self.label))

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)

    def _ask(self, operation, path: str, **options):
        try:
            return operation(path, **options)
        except Exception as error:  # missing cache objects, unreachable remotes, ...
            raise InputError("cannot read {} at {} through DVC ({}: {}); is it in the DVC "
                             "cache (dvc fetch)?".format(path, self.label,
                                                         type(error).__name__, _one_line(error)))


def load_from_directory(files, directory: str, compile_dir: str) -> Tuple[CompileResult, str, str]:
    """(result, file used, kind) from a compile output directory or a project root.

    compile_result.json is preferred (it knows whether the result was predicted, and has the
    memory lines), then compiler_stdout.txt, then a single `.log` file.
    """
    names = files.listdir(directory)
    for preferred in (RESULT_FILE, STDOUT_FILE):
        if preferred in names and files.isfile(files.join(directory, preferred)):
            path = files.join(directory, preferred)
            result, kind = parse_result_text(files.read_text(path), path)
            return result, path, kind
    logs = [name for name in names if name.endswith(".log")
            and files.isfile(files.join(directory, name))]
    if len(logs) == 1:
        path = files.join(directory, logs[0])
        result, kind = parse_result_text(files.read_text(path), path)
        return result, path, kind
    if len(logs) > 1:
        raise InputError("{} holds several .log files ({}); name one of them".format(
            directory, ", ".join(logs)))
    nested = files.join(directory, compile_dir)
    if files.isdir(nested):
        return load_from_directory(files, nested, compile_dir)
    raise InputError("{} holds no {}, {}, .log file or {}/ directory".format(
        directory, RESULT_FILE, STDOUT_FILE, compile_dir))


# --- the toolchain recorded in dvc.lock -------------------------------------------------------

def toolchain_from_lock(text: str, where: str) -> Optional[Dict[str, str]]:
    """The toolchain.yaml params dvc.lock records for the compile stage; None if it has none."""
    try:
        lock = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError("{} is not valid YAML: {}".format(where, _one_line(error)))
    stage = ((lock or {}).get("stages") or {}).get(COMPILE_STAGE) if isinstance(lock, dict) \
        else None
    params = ((stage or {}).get("params") or {}).get(TOOLCHAIN_PARAMS_FILE)
    if not isinstance(params, dict):
        return None
    return {str(key): str(value) for key, value in sorted(params.items())}


def _lock_toolchain(files, lock_path: str, where: str) -> Tuple[Optional[Dict[str, str]], str]:
    """(toolchain, phrase saying where it came from) for one side."""
    if not files.isfile(lock_path):
        return None, "no toolchain recorded (no {})".format(LOCK_FILE)
    toolchain = toolchain_from_lock(files.read_text(lock_path), where)
    if toolchain is None:
        return None, "no toolchain recorded ({} has no {} stage params from {})".format(
            LOCK_FILE, COMPILE_STAGE, TOOLCHAIN_PARAMS_FILE)
    return toolchain, "toolchain from {} (stage {})".format(LOCK_FILE, COMPILE_STAGE)


# --- git ----------------------------------------------------------------------------------------

def _git(repo: str, *arguments: str) -> Optional[str]:
    """git's stdout, or None when git fails or is not installed."""
    try:
        done = subprocess.run(["git", "-C", repo] + list(arguments), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def repository_root(repo: str) -> Optional[str]:
    return _git(repo, "rev-parse", "--show-toplevel")


def resolve_revision(repo_root: str, revision: str) -> Optional[str]:
    """The commit `revision` names in the repository, or None."""
    if revision.startswith("-"):
        return None  # never let an argument reach git as an option
    return _git(repo_root, "rev-parse", "--verify", "--quiet", revision + "^{commit}")


# --- one argument -------------------------------------------------------------------------------

def load_side(argument: str, repo: str, compile_dir: str) -> LoadedSide:
    """Read one argument as a file, a directory or a git revision, in that order."""
    files = LocalFiles()
    if os.path.isfile(argument):
        result, kind = parse_result_text(files.read_text(argument), argument)
        return LoadedSide("{} ({} file)".format(argument, kind), result, None)
    if os.path.isdir(argument):
        result, path, kind = load_from_directory(files, argument, compile_dir)
        toolchain, origin = None, "no toolchain"
        if os.path.isfile(os.path.join(argument, LOCK_FILE)):
            toolchain, origin = _lock_toolchain(
                files, os.path.join(argument, LOCK_FILE), os.path.join(argument, LOCK_FILE))
        return LoadedSide("{} (directory: {}, {}; {})".format(argument, path, kind, origin),
                          result, toolchain)

    root = repository_root(repo)
    if root is None:
        raise InputError("{!r} is neither a file nor a directory, and {} is not a git "
                         "repository to look it up as a revision".format(
                             argument, os.path.abspath(repo)))
    commit = resolve_revision(root, argument)
    if commit is None:
        raise InputError("{!r} is neither a file, a directory nor a git revision of {}".format(
            argument, root))
    label = "{} ({})".format(argument, commit[:12])
    revision_files = RevisionFiles(root, commit, label)
    if not revision_files.isdir(compile_dir):
        raise InputError("git revision {} has no {}/ (no compile result committed through "
                         "DVC at that revision)".format(label, compile_dir))
    result, path, kind = load_from_directory(revision_files, compile_dir, compile_dir)
    toolchain, origin = _lock_toolchain(revision_files, LOCK_FILE,
                                        "{} at {}".format(LOCK_FILE, label))
    return LoadedSide("git revision {}: {} through DVC, {}; {}".format(label, path, kind, origin),
                      result, toolchain)


def _one_line(error: Any) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())


# --- command line -------------------------------------------------------------------------------

EPILOG = """examples:
  oplog-diff main HEAD                     compile results of two commits (no checkout)
  oplog-diff main . --fail-on-regression   committed result against the work tree
  oplog-diff old_stdout.txt models/edgetpu --markdown

An argument is read as an existing file, else an existing directory, else a git revision.
Regression (exit 1 with --fail-on-regression): B refused while A compiled, fewer operations
mapped to the Edge TPU, or more off-chip memory. Exit 2: bad arguments or unreadable input."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, and keeps the line breaks of the examples in the epilog."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oplog-diff", description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=_HelpFormatter)
    parser.add_argument("a", metavar="A", help="the baseline: file, directory or git revision")
    parser.add_argument("b", metavar="B", help="compared with A: file, directory or git revision")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--markdown", action="store_true",
                        help="print Markdown tables (for a CI comment) instead of plain text")
    layout.add_argument("--json", action="store_true",
                        help="print a JSON structure with sorted keys (every row) for scripts")
    parser.add_argument("--all-rows", action="store_true",
                        help="list unchanged operator rows too (plain text and Markdown)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when B regressed against A")
    parser.add_argument("--repo", default=".",
                        help="git repository in which revisions are looked up")
    parser.add_argument("--compile-dir", default=COMPILE_DIR,
                        help="compile output directory inside the repository or a work tree")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    sides = []
    for name, argument in (("A", args.a), ("B", args.b)):
        try:
            sides.append(load_side(argument, args.repo, args.compile_dir))
        except InputError as error:
            print("oplog-diff: error: {}: {}".format(name, error), file=sys.stderr)
            return EXIT_BAD_INPUT
    side_a, side_b = sides

    difference = diff_results(side_a.result, side_b.result, side_a.toolchain, side_b.toolchain)
    if args.json:
        output = render_json(difference, side_a.description, side_b.description)
    elif args.markdown:
        output = render_markdown(difference, side_a.description, side_b.description,
                                 all_rows=args.all_rows)
    else:
        output = render_text(difference, side_a.description, side_b.description,
                             all_rows=args.all_rows)
    sys.stdout.write(output)
    if args.fail_on_regression and difference.regressions:
        return EXIT_REGRESSION
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
