"""Read one side of a comparison of compile results from a command-line argument.

An argument may be a compiler stdout file, an operation log (`*_edgetpu.log`), a
`compile_result.json` (real or predicted), a directory holding one of those, a DVC project's work
tree, or a git revision of a repository, read through git and DVC without a checkout. In a DVC
project the compile result is found through its dvc.yaml: the first stage output directory that
holds one (or the one the caller names).

How an argument is understood, first match wins: an existing file (JSON when it starts with
"{", compiler stdout when it has the summary lines, else an operation log); an existing
directory; a git revision (anything `git rev-parse --verify REV^{commit}` accepts; write
`NAME^{commit}` when a file of the same name exists). The toolchain shown beside a result is what
dvc.lock records for the stage that wrote it: its params from files other than params.yaml (such
as a toolchain.yaml of versions), at that revision or in that work tree.

Example:
    side = load_side("HEAD~1", repo=".", compile_dir=None)
    print(side.description, side.result.operations_on_edgetpu)
"""
from __future__ import annotations

import abc
import json
import os
import posixpath
import re
import subprocess
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar

import yaml

from edgetpu_analyzer.parse import CompilerOutputError, parse_compiler_stdout, parse_operation_log
from edgetpu_analyzer.result import CompileResult

DVC_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"             # DVC's default params file: parameters, not toolchain
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
                name, _one_line(error))) from error
    try:
        # A fatal-error run prints neither the summary nor a table: that too is stdout.
        if _STDOUT_ONLY_LINE.search(text) or not _TABLE_HEADER.search(text):
            return parse_compiler_stdout(text), KIND_STDOUT
        return parse_operation_log(text), KIND_LOG
    except CompilerOutputError as error:
        raise InputError("{}: {}".format(name, _one_line(error))) from error


class FileTree(abc.ABC):
    """Where a compile result is looked for: the file system, or a git revision."""

    @abc.abstractmethod
    def isdir(self, path: str) -> bool:
        """True for an existing directory."""

    @abc.abstractmethod
    def isfile(self, path: str) -> bool:
        """True for an existing file."""

    @abc.abstractmethod
    def listdir(self, path: str) -> List[str]:
        """Names in a directory, sorted."""

    @abc.abstractmethod
    def read_text(self, path: str) -> str:
        """A UTF-8 text file's content (InputError when it cannot be read)."""

    @abc.abstractmethod
    def join(self, *parts: str) -> str:
        """A path made of parts, with this tree's separator."""


_Answer = TypeVar("_Answer")


class LocalFiles(FileTree):
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
            raise InputError("{} is not a text file".format(path)) from None
        except OSError as error:
            raise InputError("cannot read {}: {}".format(path, error.strerror or error)) from error

    def join(self, *parts: str) -> str:
        return os.path.join(*parts)


class RevisionFiles(FileTree):
    """Files of one git revision, DVC-tracked ones included, read without a checkout."""

    def __init__(self, repo_root: str, commit: str, label: str) -> None:
        try:
            from dvc.api import DVCFileSystem
        except ImportError:
            raise InputError("reading git revision {} needs DVC installed (pip install dvc)"
                             .format(label)) from None
        self.label = label
        try:
            self.fs = DVCFileSystem(repo_root, rev=commit)
        except Exception as error:  # DVC raises many types; the user needs one line
            raise InputError("cannot open {} at {} with DVC: {}".format(
                repo_root, label, _one_line(error))) from error

    def isdir(self, path: str) -> bool:
        found: bool = self._ask(self.fs.isdir, path)
        return found

    def isfile(self, path: str) -> bool:
        found: bool = self._ask(self.fs.isfile, path)
        return found

    def listdir(self, path: str) -> List[str]:
        return sorted(posixpath.basename(entry.rstrip("/"))
                      for entry in self._ask(self.fs.ls, path, detail=False))

    def read_text(self, path: str) -> str:
        data: bytes = self._ask(self.fs.read_bytes, path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError("{} at {} is not a text file".format(path, self.label)) from None

    def join(self, *parts: str) -> str:
        return posixpath.join(*parts)

    def _ask(self, operation: Callable[..., _Answer], path: str, **options: Any) -> _Answer:
        try:
            return operation(path, **options)
        except Exception as error:  # missing cache objects, unreachable remotes, ...
            raise InputError("cannot read {} at {} through DVC ({}: {}); is it in the DVC "
                             "cache (dvc fetch)?".format(path, self.label, type(error).__name__,
                                                         _one_line(error))) from error


def load_from_directory(files: FileTree, directory: str) -> Tuple[CompileResult, str, str]:
    """(result, file used, kind) from a compile output directory.

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
    raise InputError("{} holds no {}, {} or .log file".format(directory, RESULT_FILE, STDOUT_FILE))


def holds_result(files: FileTree, directory: str) -> bool:
    return files.isdir(directory) and any(
        name in (RESULT_FILE, STDOUT_FILE) or name.endswith("_edgetpu.log")
        for name in files.listdir(directory))


def _read_yaml(files: FileTree, path: str, where: str) -> Any:
    try:
        return yaml.safe_load(files.read_text(path))
    except yaml.YAMLError as error:
        raise InputError("{} is not valid YAML: {}".format(where, _one_line(error))) from error


def stage_outputs(files: FileTree, root: str) -> List[Tuple[str, str]]:
    """(stage, output path) of every stage of the project's dvc.yaml, in file order."""
    dvc_yaml = files.join(root, DVC_FILE) if root else DVC_FILE
    if not files.isfile(dvc_yaml):
        return []
    data = _read_yaml(files, dvc_yaml, dvc_yaml)
    stages = data.get("stages") if isinstance(data, dict) else None
    found = []
    for name, spec in (stages or {}).items():
        for key in ("outs", "metrics", "plots"):
            for entry in (spec or {}).get(key) or []:
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                if isinstance(path, str) and "${" not in path:
                    found.append((str(name), path))
    return found


def find_compile_output(files: FileTree, root: str, compile_dir: Optional[str]
                        ) -> Tuple[str, Optional[str]]:
    """(directory, stage that writes it or None) of the compile result inside a project."""
    where = root or "the revision's root"
    if not files.isfile(files.join(root, DVC_FILE) if root else DVC_FILE) and not compile_dir:
        raise InputError("{} holds no {}, {} or .log file, and no {} to find one through".format(
            where, RESULT_FILE, STDOUT_FILE, DVC_FILE))
    outputs = stage_outputs(files, root)
    if compile_dir:
        writer = next((stage for stage, path in outputs if path.rstrip("/") ==
                       compile_dir.rstrip("/")), None)
        return (files.join(root, compile_dir) if root else compile_dir), writer
    for stage, path in outputs:
        full = files.join(root, path) if root else path
        if holds_result(files, full):
            return full, stage
    raise InputError("no output directory of a stage in {} holds a compile result ({}, {} or "
                     "*_edgetpu.log); name it with --compile-dir".format(
                         files.join(root, DVC_FILE) if root else DVC_FILE, RESULT_FILE,
                         STDOUT_FILE))


# --- the toolchain recorded in dvc.lock -------------------------------------------------------

def toolchain_from_lock(text: str, where: str, stage: str) -> Optional[Dict[str, str]]:
    """The params dvc.lock records for `stage` from files other than params.yaml (the versions
    it ran with, in a project that records them as params); None if it has none."""
    try:
        lock = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InputError("{} is not valid YAML: {}".format(where, _one_line(error))) from error
    recorded = ((lock or {}).get("stages") or {}).get(stage) if isinstance(lock, dict) else None
    params = (recorded or {}).get("params") or {}
    toolchain = {}
    for params_file, values in sorted(params.items()):
        if params_file != PARAMS_FILE and isinstance(values, dict):
            toolchain.update({str(key): str(value) for key, value in values.items()})
    return dict(sorted(toolchain.items())) or None


def _lock_toolchain(files: FileTree, lock_path: str, where: str, stage: Optional[str]
                    ) -> Tuple[Optional[Dict[str, str]], str]:
    """(toolchain, phrase saying where it came from) for one side."""
    if stage is None:
        return None, "no toolchain recorded (no stage of {} writes that folder)".format(DVC_FILE)
    if not files.isfile(lock_path):
        return None, "no toolchain recorded (no {})".format(LOCK_FILE)
    toolchain = toolchain_from_lock(files.read_text(lock_path), where, stage)
    if toolchain is None:
        return None, "no toolchain recorded ({} has no params of stage {} beyond {})".format(
            LOCK_FILE, stage, PARAMS_FILE)
    return toolchain, "toolchain from {} (stage {})".format(LOCK_FILE, stage)


# --- git ----------------------------------------------------------------------------------------

def git_stdout(repo: str, *arguments: str) -> Optional[str]:
    """git's stdout, or None when git fails or is not installed."""
    try:
        done = subprocess.run(["git", "-C", repo] + list(arguments), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True)
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def repository_root(repo: str) -> Optional[str]:
    return git_stdout(repo, "rev-parse", "--show-toplevel")


def resolve_revision(repo_root: str, revision: str) -> Optional[str]:
    """The commit `revision` names in the repository, or None."""
    if revision.startswith("-"):
        return None  # never let an argument reach git as an option
    return git_stdout(repo_root, "rev-parse", "--verify", "--quiet", revision + "^{commit}")


# --- one argument -------------------------------------------------------------------------------

def load_side(argument: str, repo: str, compile_dir: Optional[str]) -> LoadedSide:
    """Read one argument as a file, a directory or a git revision, in that order."""
    files = LocalFiles()
    if os.path.isfile(argument):
        result, kind = parse_result_text(files.read_text(argument), argument)
        return LoadedSide("{} ({} file)".format(argument, kind), result, None)
    if os.path.isdir(argument):
        if holds_result(files, argument):
            result, path, kind = load_from_directory(files, argument)
            return LoadedSide("{} (directory: {}, {}; no toolchain)".format(argument, path, kind),
                              result, None)
        directory, stage = find_compile_output(files, argument, compile_dir)
        result, path, kind = load_from_directory(files, directory)
        lock = os.path.join(argument, LOCK_FILE)
        toolchain, origin = _lock_toolchain(files, lock, lock, stage)
        return LoadedSide("{} (work tree: {}, {}; {})".format(argument, path, kind, origin),
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
    try:
        directory, stage = find_compile_output(revision_files, "", compile_dir)
    except InputError as error:
        raise InputError("git revision {}: {}".format(label, error)) from error
    if not revision_files.isdir(directory):
        raise InputError("git revision {} has no {}/ (no compile result committed through "
                         "DVC at that revision)".format(label, directory))
    result, path, kind = load_from_directory(revision_files, directory)
    toolchain, origin = _lock_toolchain(revision_files, LOCK_FILE,
                                        "{} at {}".format(LOCK_FILE, label), stage)
    return LoadedSide("git revision {}: {} through DVC, {}; {}".format(label, path, kind, origin),
                      result, toolchain)


def _one_line(error: Any) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())
