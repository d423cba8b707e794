"""Check a release bundle against its provenance statement.

Every subject of the statement must be in the bundle with the same sha256, and the bundle
must hold nothing else (the statement itself aside). Each file that was changed, added or
removed is named on its own line. A bundle is a folder, or a .tar.gz of one, which is read
into a temporary folder first (members that would land outside it are refused).
"""
from __future__ import annotations

import json
import os
import posixpath
import tarfile
import tempfile
from typing import Any, Dict, List, NamedTuple, Optional

from facenet_edgetpu.core import artifacts
from facenet_edgetpu.publish import provenance
from facenet_edgetpu.publish.bundle import STATEMENT_FILE, bundle_files
from facenet_edgetpu.publish.errors import PublishError, one_line


class Verdict(NamedTuple):
    statement: Dict[str, Any]
    checked: int                 # subjects that matched
    problems: List[str]          # one line per changed, added or removed file


def load_statement(path: str) -> Dict[str, Any]:
    """The statement at `path`, checked to be an in-toto Statement v1 with sha256 subjects."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            statement = json.load(handle)
    except FileNotFoundError:
        raise PublishError("{} is missing: a bundle holds its provenance statement there; "
                           "write the bundle again with `make publish`".format(path)) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise PublishError("{} is not JSON ({}): the provenance statement is damaged; take it "
                           "from the original bundle again".format(
                               path, one_line(error))) from error
    if not isinstance(statement, dict) or statement.get("_type") != provenance.STATEMENT_TYPE:
        raise PublishError("{} is not an in-toto statement (_type must be {})".format(
            path, provenance.STATEMENT_TYPE))
    if statement.get("predicateType") != provenance.PREDICATE_TYPE:
        raise PublishError("{} holds a {!r} predicate, not SLSA provenance ({})".format(
            path, statement.get("predicateType"), provenance.PREDICATE_TYPE))
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects or not all(
            isinstance(entry, dict) and isinstance(entry.get("name"), str)
            and isinstance((entry.get("digest") or {}).get("sha256"), str)
            for entry in subjects):
        raise PublishError("{}: `subject` must list files with a name and a sha256 "
                           "digest".format(path))
    for entry in subjects:
        name = entry["name"]
        if (name.startswith("/") or ".." in name.split("/") or name == STATEMENT_FILE
                or posixpath.normpath(name) != name):
            raise PublishError("{}: subject {!r} is not a plain relative path inside the "
                               "bundle".format(path, name))
    return statement


def check_folder(folder: str, statement_path: Optional[str] = None) -> Verdict:
    statement_path = statement_path or os.path.join(folder, STATEMENT_FILE)
    statement = load_statement(statement_path)
    expected = {entry["name"]: entry["digest"]["sha256"] for entry in statement["subject"]}
    present = set(bundle_files(folder)) - {STATEMENT_FILE}
    problems, checked = [], 0
    for name in sorted(set(expected) | present):
        if name not in present:
            problems.append("removed: {} (listed in the statement, not in the bundle)".format(
                name))
        elif name not in expected:
            problems.append("added: {} (in the bundle, not in the statement)".format(name))
        else:
            actual = artifacts.sha256_of(os.path.join(folder, *name.split("/")))
            if actual != expected[name]:
                problems.append("changed: {} (sha256 {}, the statement says {})".format(
                    name, actual, expected[name]))
            else:
                checked += 1
    return Verdict(statement, checked, problems)


def _extract(archive: str, destination: str) -> str:
    """Unpack a bundle archive; the single top-level folder it holds."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                name = posixpath.normpath(member.name)
                if (name.startswith("/") or name.split("/")[0] == ".."
                        or not (member.isfile() or member.isdir())):
                    raise PublishError("{}: member {!r} is not a plain file or folder inside "
                                       "the bundle; refusing to unpack it".format(
                                           archive, member.name))
            tar.extractall(destination, members=members)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise PublishError("{} is not a readable .tar.gz bundle: {}".format(
            archive, one_line(error))) from error
    tops = sorted(os.listdir(destination))
    if len(tops) != 1 or not os.path.isdir(os.path.join(destination, tops[0])):
        raise PublishError("{} should hold one bundle folder, holds {}".format(
            archive, ", ".join(tops) or "nothing"))
    return os.path.join(destination, tops[0])


def verify(bundle: str, statement_path: Optional[str] = None) -> Verdict:
    """Check a bundle folder or archive; raises PublishError when it cannot be read at all."""
    if os.path.isdir(bundle):
        return check_folder(bundle, statement_path)
    if not os.path.isfile(bundle):
        raise PublishError("{} is neither a bundle folder nor a bundle archive".format(bundle))
    with tempfile.TemporaryDirectory(prefix="bundle-verify-") as scratch:
        return check_folder(_extract(bundle, scratch), statement_path)
