"""Write stage outputs so that a failure never leaves a half-written artifact behind.

Files are written to a temporary sibling and renamed into place; directories are built in a
temporary sibling and swapped in whole. JSON is written with sorted keys and no timestamps,
so the same inputs give byte-identical files.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterable, Iterator, List

from facenet_edgetpu.core.errors import PipelineError

PARTIAL_MARK = ".partial-"


class ArtifactError(PipelineError, ValueError):
    """A stage output another stage reads is missing, unreadable, or not what it should be."""


def _partial_prefix(path: str) -> str:
    return ".{}{}".format(os.path.basename(os.path.normpath(path)), PARTIAL_MARK)


def _temporary_sibling(path: str, directory: bool) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    prefix = _partial_prefix(path)
    try:
        os.makedirs(parent, exist_ok=True)
        if directory:
            return tempfile.mkdtemp(prefix=prefix, dir=parent)
        handle, temp = tempfile.mkstemp(prefix=prefix, dir=parent)
    except FileExistsError as error:  # the parent "folder" is a file
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path) from error
    except OSError as error:  # name the output, not a random temporary name
        raise OSError(error.errno, error.strerror, path) from error
    os.close(handle)
    return temp


def stale_partials(outputs: Iterable[str]) -> List[str]:
    """The temporary siblings of `outputs` present on disk: what a killed run left behind
    (a run that Python saw ending removes its own)."""
    found = []
    for output in outputs:
        parent = os.path.dirname(os.path.abspath(output))
        if os.path.isdir(parent):
            prefix = _partial_prefix(output)
            found.extend(os.path.join(parent, name) for name in sorted(os.listdir(parent))
                         if name.startswith(prefix))
    return found


@contextlib.contextmanager
def _naming_the_output(path: str, temp: str) -> Iterator[None]:
    """Report a system error while an output is staged against the output itself: a full disk
    fails write() or close() with an OSError that names no file, and other refusals name the
    temporary sibling (or a file in it), which means nothing to the user (core/entry.py prints
    the name)."""
    try:
        yield
    except OSError as error:
        name = temp if error.filename is None else error.filename
        inside = isinstance(name, str) and (name == temp or name.startswith(temp + os.sep))
        if error.errno is None or not inside:
            raise
        raise OSError(error.errno, error.strerror, path + name[len(temp):]) from error


def remove(path: str) -> None:
    """Delete a file or a directory tree if it exists."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


@contextlib.contextmanager
def staged_file(path: str) -> Iterator[str]:
    """Yield a temporary path to write; it replaces `path` only if the block succeeds."""
    temp = _temporary_sibling(path, directory=False)
    try:
        with _naming_the_output(path, temp):
            yield temp
            os.chmod(temp, 0o644)
            os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


@contextlib.contextmanager
def staged_dir(path: str) -> Iterator[str]:
    """Yield a temporary directory to fill; it replaces `path` only if the block succeeds."""
    temp = _temporary_sibling(path, directory=True)
    try:
        with _naming_the_output(path, temp):
            yield temp
            os.chmod(temp, 0o755)
            remove(path)
            os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            shutil.rmtree(temp)


def write_bytes(path: str, data: bytes) -> None:
    with staged_file(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def json_text(data: Any) -> str:
    """The project's one JSON layout: sorted keys, two-space indent, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_json(path: str, data: Any) -> None:
    write_text(path, json_text(data))


def read_json(path: str, stage: str) -> Any:
    """Parse a JSON file that `stage` wrote; a missing or damaged one is an ArtifactError
    saying which file and which stage makes it again."""
    rerun = "rerun the stage that writes it (dvc repro {})".format(stage)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ArtifactError("{} not found: {}".format(path, rerun)) from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ArtifactError("{} is not valid JSON ({}): it was cut short or edited by hand; "
                            "delete it and run {} again (dvc repro makes it)".format(
                                path, error, stage)) from None


def sha256_of(path: str) -> str:
    """The sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
