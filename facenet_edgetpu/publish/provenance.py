"""The release's provenance: an in-toto Statement v1 with a SLSA provenance v1 predicate.

    {"_type": "https://in-toto.io/Statement/v1",
     "subject": [{"name": <path in the bundle>, "digest": {"sha256": ...}}, ...],
     "predicateType": "https://slsa.dev/provenance/v1",
     "predicate": {"buildDefinition": {"buildType", "externalParameters",
                                       "internalParameters", "resolvedDependencies"},
                   "runDetails": {"builder": {"id"}, "metadata": {"invocationId"}}}}

What the build depended on (SLSA's resolvedDependencies, "materials" in SLSA 0.2): the git
commit, the sha256 of dvc.lock, of the input model and of the PyPI archive the model and photos
come from, the photo folder's DVC hash, and the toolchain image when the stages ran in one
(its registry digest when it was pulled by digest). The parameters (params.yaml) are the
external parameters; the toolchain (the toolchain.yaml keys, as dvc.lock recorded them for the
stages) the internal ones. No timestamps: the same results give the same statement.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import yaml

from edgetpu_analyzer.result_sources import git_stdout
from facenet_edgetpu.core import artifacts
from facenet_edgetpu.publish.errors import PublishError, one_line

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:facenet-edgetpu-pipeline:dvc-repro:v1"      # docs/sharing.md describes it
DEFAULT_BUILDER_ID = "urn:facenet-edgetpu-pipeline:make-publish"
LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"
TOOLCHAIN_FILE = "toolchain.yaml"
DIGEST_MARK = "@sha256:"      # how the runtime toolchain key records an image pulled by digest


def read_yaml(repo: str, name: str, hint: str) -> Dict[str, Any]:
    path = os.path.join(repo, name)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise PublishError("{} is missing: {}".format(name, hint)) from None
    except yaml.YAMLError as error:
        raise PublishError("{} is not valid YAML: {}".format(name, one_line(error))) from error
    if not isinstance(data, dict):
        raise PublishError("{} does not hold a mapping: {}".format(name, hint))
    return data


# --- the source ---------------------------------------------------------------------------------

def without_credentials(url: str) -> str:
    """A remote URL without user:password@ (a token in a CI clone URL must not be published)."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url    # a path, or scp-like git@host:owner/name, which holds no secret
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def git_dependency(repo: str) -> Dict[str, Any]:
    """The commit built, where it came from, and which tracked files differ from it."""
    commit = git_stdout(repo, "rev-parse", "--verify", "HEAD^{commit}")
    if not commit:
        raise PublishError("{} is not a git repository with a commit: the provenance names the "
                           "commit the release was built from; commit first".format(
                               os.path.abspath(repo)))
    url = git_stdout(repo, "config", "--get", "remote.origin.url")
    changed = git_stdout(repo, "status", "--porcelain", "--untracked-files=no") or ""
    dependency: Dict[str, Any] = {
        "name": "source",
        "digest": {"gitCommit": commit},
        "annotations": {"uncommittedChanges": sorted(line[3:] for line in changed.splitlines())},
    }
    if url:
        dependency["uri"] = "git+{}@{}".format(without_credentials(url), commit)
    return dependency


# --- the inputs ---------------------------------------------------------------------------------

def lock_output_hash(lock: Mapping[str, Any], path: str) -> Optional[str]:
    """The md5 DVC recorded for `path` (a dependency or an output of any stage)."""
    for stage in (lock.get("stages") or {}).values():
        for entry in (stage.get("deps") or []) + (stage.get("outs") or []):
            if entry.get("path") == path and entry.get("md5"):
                return str(entry["md5"])
    return None


def input_dependencies(repo: str, params: Mapping[str, Any],
                       lock: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """The PyPI archive of the default inputs, the input model file, the photo folder."""
    dependencies = []
    fetch = params.get("fetch_inputs") or {}
    if fetch.get("archive_sha256") and "==" in str(fetch.get("requirement", "")):
        name, version = str(fetch["requirement"]).split("==", 1)
        dependencies.append({"name": "photo and model archive",
                             "uri": "pkg:pypi/{}@{}".format(name.strip(), version.strip()),
                             "digest": {"sha256": str(fetch["archive_sha256"])}})
    inputs = params.get("inputs") or {}
    model = str(inputs.get("model", ""))
    if not model or not os.path.isfile(os.path.join(repo, model)):
        raise PublishError("the input model {!r} (params.yaml inputs.model) is missing: run "
                           "`make pull` or `make repro`".format(model))
    dependencies.append({"name": model,
                         "digest": {"sha256": artifacts.sha256_of(os.path.join(repo, model))}})
    photos = str(inputs.get("photos", ""))
    photos_md5 = lock_output_hash(lock, photos) if photos else None
    if photos_md5:
        dependencies.append({"name": photos, "digest": {"md5": photos_md5},
                             "annotations": {"hash": "the folder's DVC hash, from dvc.lock"}})
    return dependencies


# --- the toolchain ------------------------------------------------------------------------------

def _dotted(keys: Mapping[str, Any]) -> Iterator[Tuple[str, str]]:
    """toolchain.yaml keys as dvc.lock records them, one string value per dotted key: a stage
    that depends on the whole file records each stage's section as a mapping."""
    for key, value in keys.items():
        if isinstance(value, Mapping):
            for inner, item in value.items():
                yield "{}.{}".format(key, inner), str(item)
        else:
            yield str(key), str(value)


def recorded_toolchain(lock: Mapping[str, Any]) -> Dict[str, str]:
    """The toolchain.yaml keys dvc.lock recorded for the stages, merged; they must agree."""
    toolchain: Dict[str, str] = {}
    for stage_name, stage in sorted((lock.get("stages") or {}).items()):
        keys = ((stage.get("params") or {}).get(TOOLCHAIN_FILE) or {})
        for key, value in _dotted(keys):
            if key in toolchain and toolchain[key] != value:
                raise PublishError(
                    "dvc.lock records two toolchains ({} is {!r} for one stage, {!r} for {}): "
                    "some stages ran under another toolchain; run `make repro` first".format(
                        key, toolchain[key], value, stage_name))
            toolchain[key] = value
    if not toolchain:
        raise PublishError("dvc.lock records no toolchain.yaml keys: run `make repro` first")
    return dict(sorted(toolchain.items()))


def image_dependency(runtime: str, reference: str) -> Optional[Dict[str, Any]]:
    """The toolchain image `reference` (params.yaml runner), when the `runtime` key says a
    stage ran in one."""
    fields = runtime.split()
    if len(fields) < 3 or fields[0] != "docker":
        return None
    image_id, platform = fields[1], fields[2]
    annotations = {"imageId": image_id, "platform": platform}
    pulled = [field for field in fields[3:] if field.startswith(DIGEST_MARK)]
    if pulled:   # pulled by registry digest: the digest anyone can pull it by
        digest = pulled[0][len(DIGEST_MARK):]
        return {"name": "toolchain image", "uri": "docker://{}".format(reference),
                "digest": {"sha256": digest}, "annotations": annotations}
    annotations["note"] = "a local image (no registry digest): its content id is the digest"
    return {"name": "toolchain image {}".format(reference),
            "digest": {"sha256": image_id.split(":", 1)[-1]}, "annotations": annotations}


def image_dependencies(toolchain: Mapping[str, str], params: Mapping[str, Any]
                       ) -> List[Dict[str, Any]]:
    """One entry per toolchain image the stages ran in (each stage's `runtime` key; the image
    a stage names in runner.stages, else runner.image), by stage name, each image once."""
    runner = params.get("runner") or {}
    per_stage = runner.get("stages") or {}
    found: List[Dict[str, Any]] = []
    for key, runtime in sorted(toolchain.items()):
        stage, _, name = key.rpartition(".")
        if name != "runtime":
            continue
        reference = str((per_stage.get(stage) or {}).get("image") or runner.get("image", ""))
        image = image_dependency(runtime, reference)
        if image is not None and image not in found:
            found.append(image)
    return found


# --- the statement ------------------------------------------------------------------------------

def subject(name: str, sha256: str, annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    entry: Dict[str, Any] = {"name": name, "digest": {"sha256": sha256}}
    if annotations:
        entry["annotations"] = annotations
    return entry


def build_statement(repo: str, subjects: List[Dict[str, Any]], model_note: str,
                    builder_id: str = DEFAULT_BUILDER_ID,
                    invocation_id: Optional[str] = None) -> Dict[str, Any]:
    """The statement for `subjects` (already hashed) built by the pipeline in `repo`."""
    hint = "run `make repro` (or `make pull`) first"
    params = read_yaml(repo, PARAMS_FILE, hint)
    lock = read_yaml(repo, LOCK_FILE, hint)
    toolchain = recorded_toolchain(lock)
    dependencies = [git_dependency(repo),
                    {"name": LOCK_FILE, "digest": {"sha256": artifacts.sha256_of(
                        os.path.join(repo, LOCK_FILE))}}]
    dependencies += input_dependencies(repo, params, lock)
    dependencies += image_dependencies(toolchain, params)
    run_details: Dict[str, Any] = {"builder": {"id": builder_id}}
    if invocation_id:
        run_details["metadata"] = {"invocationId": invocation_id}
    return {
        "_type": STATEMENT_TYPE,
        "subject": sorted(subjects, key=lambda entry: entry["name"]),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"params": params},
                "internalParameters": {"toolchain": toolchain, "model": model_note},
                "resolvedDependencies": dependencies,
            },
            "runDetails": run_details,
        },
    }
