"""The release bundle: a folder (and optionally a .tar.gz of it) with the model, the report, the
metrics, the compiler's output and a provenance statement covering every file.

    <bundle>/BUNDLE.md                       what the bundle holds, in words (and which model)
    <bundle>/<repository path of each file>  e.g. models/edgetpu/compiler_stdout.txt
    <bundle>/provenance.intoto.json          in-toto Statement v1, SLSA provenance v1

Files keep their repository paths, so a subject's name is both where the file lies in the
bundle and which pipeline output it is. The bundle is built in a temporary sibling folder and
swapped in whole; the archive is reproducible (sorted members, fixed owner and time).
"""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from typing import Any, Dict, List, NamedTuple, Optional

from facenet_edgetpu.core import artifacts
from facenet_edgetpu.publish import layout, provenance
from facenet_edgetpu.publish.errors import PublishError, one_line

STATEMENT_FILE = "provenance.intoto.json"
README_FILE = "BUNDLE.md"
DEFAULT_BUNDLE = "dist/bundle"


class Bundle(NamedTuple):
    path: str
    statement: Dict[str, Any]
    predicted: bool
    archive: Optional[str]


def check_up_to_date(repo: str) -> None:
    """Refuse to describe outputs that dvc.lock does not: `dvc status` must be clean."""
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=repo,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    try:
        status = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        status = None
    if status is None:
        raise PublishError("`dvc status` failed in {}: {}".format(
            os.path.abspath(repo), one_line(done.stderr.strip().splitlines()[-1:] or "")))
    missing = sorted(path for entries in status.values() for entry in entries
                     if isinstance(entry, dict)
                     for path, state in (entry.get("changed outs") or {}).items()
                     if state in ("deleted", "not in cache"))
    if missing:
        raise PublishError("outputs of the pipeline are missing ({}): {}".format(
            ", ".join(missing), layout.RERUN_HINT))
    if status:
        raise PublishError("the pipeline's outputs are not those dvc.lock records (dvc status: "
                           "{} changed): run `make repro` before publishing".format(
                               ", ".join(sorted(status))))


def model_note(repo: str, release: layout.ReleaseFiles) -> str:
    """One sentence on the model the bundle carries; BUNDLE.md and the statement both say it."""
    result = artifacts.read_json(os.path.join(
        repo, release.compile_dir, layout.COMPILE_RESULT), "compile")
    version = result.get("compiler_version") or "unknown"
    if release.predicted:
        return ("{} is the full-integer quantized model, NOT an Edge TPU model: no Edge TPU "
                "compiler ran when this was built. The files in {}/ are the analyzer's "
                "prediction of what edgetpu_compiler {} would print, not its output; compile "
                "the model with the real compiler before deploying it to an Edge TPU.".format(
                    release.model, release.compile_dir, version))
    return "{} is the Edge TPU model written by edgetpu_compiler {}.".format(
        release.model, version)


def readme_text(note: str, statement: Dict[str, Any], sizes: Dict[str, int]) -> str:
    source = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    lines = ["# FaceNet Edge TPU release bundle", "", note, "",
             "Built from git commit {}{}.".format(
                 source["digest"]["gitCommit"],
                 " ({})".format(source["uri"]) if "uri" in source else ""),
             "", "Every file below is a subject of {} (an in-toto Statement v1 with a SLSA "
             "provenance v1 predicate: inputs, commit, dvc.lock, toolchain, parameters). Check "
             "the bundle with:".format(STATEMENT_FILE), "",
             "    python -m facenet_edgetpu.publish verify <this folder>", "",
             "| file | bytes | sha256 |", "| --- | ---: | --- |"]
    lines += ["| {} | {} | `{}` |".format(entry["name"], sizes[entry["name"]],
                                          entry["digest"]["sha256"])
              for entry in statement["subject"] if entry["name"] in sizes]
    return "\n".join(lines) + "\n"


def write_archive(folder: str, archive: str, mtime: int) -> None:
    """A reproducible .tar.gz of `folder`: sorted members under the folder's name, owner 0."""
    top = os.path.basename(os.path.normpath(folder))

    def normalized(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    with artifacts.staged_file(archive) as temp:
        with open(temp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime,
                                                    filename="") as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                tar.add(folder, arcname=top, recursive=False, filter=normalized)
                for relative in sorted(bundle_files(folder)):
                    tar.add(os.path.join(folder, relative), arcname=top + "/" + relative,
                            filter=normalized)


def bundle_files(folder: str) -> List[str]:
    """Every file under `folder`, as sorted '/'-separated relative paths."""
    found = []
    for parent, directories, names in os.walk(folder):
        directories.sort()
        for name in names:
            relative = os.path.relpath(os.path.join(parent, name), folder)
            found.append(relative.replace(os.sep, "/"))
    return sorted(found)


def commit_time(repo: str) -> int:
    """SOURCE_DATE_EPOCH when set, else the commit's time: the archive's only timestamp."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%ct"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          universal_newlines=True)
    return int(done.stdout.strip()) if done.stdout.strip().isdigit() else 0


def write_bundle(repo: str = ".", out: str = DEFAULT_BUNDLE, archive: Optional[str] = None,
                 builder_id: str = provenance.DEFAULT_BUILDER_ID,
                 invocation_id: Optional[str] = None) -> Bundle:
    """Write the bundle of the pipeline results in `repo` to `out` (and `archive`)."""
    check_up_to_date(repo)
    release = layout.release_files(repo, layout.declared_pipeline(repo))
    note = model_note(repo, release)
    out = os.path.join(repo, out) if not os.path.isabs(out) else out
    with artifacts.staged_dir(out) as staging:
        sizes = {}
        for relative in release.files:
            target = os.path.join(staging, *relative.split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(repo, relative), target)
            sizes[relative] = os.path.getsize(target)
        subjects = [provenance.subject(
            relative, artifacts.sha256_of(os.path.join(staging, *relative.split("/"))),
            {"role": note} if relative == release.model else None)
            for relative in release.files]
        statement = provenance.build_statement(repo, subjects, note, builder_id, invocation_id)
        readme = readme_text(note, statement, sizes)
        with open(os.path.join(staging, README_FILE), "w", encoding="utf-8") as handle:
            handle.write(readme)
        subjects.append(provenance.subject(
            README_FILE, artifacts.sha256_of(os.path.join(staging, README_FILE))))
        statement["subject"] = sorted(subjects, key=lambda entry: entry["name"])
        with open(os.path.join(staging, STATEMENT_FILE), "w", encoding="utf-8") as handle:
            handle.write(artifacts.json_text(statement))
    if archive:
        archive = os.path.join(repo, archive) if not os.path.isabs(archive) else archive
        write_archive(out, archive, commit_time(repo))
    return Bundle(out, statement, release.predicted, archive)
