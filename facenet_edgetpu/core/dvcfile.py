"""Read the pipeline's stages from dvc.yaml: the one place that declares what each stage reads
and writes.

DVC resolves `${section.key}` references from params.yaml itself; the runner (which mounts a
stage's inputs and outputs into a container) and the entry point (which removes what a killed run
left behind) need the same resolved paths, so this module reads dvc.yaml the way DVC does for
the parts the project uses: `cmd`, `deps`, `outs`, `metrics`, `plots` and `params` of each
stage, with `${...}` interpolation from params.yaml.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import yaml

from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.params import PARAMS_FILE

DVC_FILE = "dvc.yaml"
OUTPUT_KEYS = ("outs", "metrics", "plots")
_REFERENCE = re.compile(r"\$\{([^}]+)\}")


class DvcFileError(PipelineError):
    """dvc.yaml is missing, malformed, or refers to a parameter params.yaml lacks."""


class StageSpec(NamedTuple):
    """One stage of dvc.yaml with every `${...}` resolved; paths relative to the repository."""

    name: str
    cmd: str
    deps: List[str]
    outs: List[str]                 # outs, metrics and plots alike: everything the stage writes
    params: List[Any]               # as written: section names, or {file: [keys]} mappings


def interpolate(text: str, params: Mapping[str, Any]) -> str:
    """Resolve dvc.yaml's `${a.b}` references from params.yaml (the only templating it uses)."""
    def lookup(match: "re.Match[str]") -> str:
        value = params  # type: Any
        for part in match.group(1).strip().split("."):
            if not isinstance(value, Mapping) or part not in value:
                raise DvcFileError("{}: cannot resolve ${{{}}} from {}".format(
                    DVC_FILE, match.group(1), PARAMS_FILE))
            value = value[part]
        return str(value)
    return _REFERENCE.sub(lookup, text)


def entry_path(entry: Any) -> str:
    """A deps/outs entry is a path, or a one-key mapping path -> options."""
    return str(next(iter(entry))) if isinstance(entry, Mapping) else str(entry)


def _normal(path: str) -> str:
    return os.path.normpath(path).replace(os.sep, "/")


def load_stages(repo: str, params: Mapping[str, Any]) -> Dict[str, StageSpec]:
    """Every stage of `<repo>/dvc.yaml`, in file order, resolved against `params`."""
    path = os.path.join(repo, DVC_FILE)
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as error:
        raise DvcFileError("cannot read {}: {}".format(path, error.strerror or error)) from error
    except yaml.YAMLError as error:
        raise DvcFileError("{} is not valid YAML: {}".format(path, error)) from error
    stages = (data or {}).get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise DvcFileError("{} has no `stages:` mapping".format(path))
    specs = {}
    for name, raw in stages.items():
        if not isinstance(raw, dict) or not isinstance(raw.get("cmd"), str):
            raise DvcFileError("{}: stage {} has no `cmd` string".format(path, name))

        specs[name] = StageSpec(name, " ".join(interpolate(raw["cmd"], params).split()),
                                _paths(raw, ("deps",), params), _paths(raw, OUTPUT_KEYS, params),
                                list(raw.get("params") or []))
    return specs


def _paths(stage: Mapping[str, Any], keys: Sequence[str], params: Mapping[str, Any]) -> List[str]:
    return [_normal(interpolate(entry_path(entry), params))
            for key in keys for entry in stage.get(key) or []]


def load_stage(repo: str, name: str, params: Mapping[str, Any]) -> StageSpec:
    stages = load_stages(repo, params)
    if name not in stages:
        raise DvcFileError("stage {} is not in {}".format(name, os.path.join(repo, DVC_FILE)))
    return stages[name]


def producer_of(path: str, stages: Mapping[str, StageSpec]) -> Optional[str]:
    """The stage whose outputs hold `path` (repository-relative), or None."""
    target = _normal(path)
    for spec in stages.values():
        for out in spec.outs:
            if target == out or target.startswith(out.rstrip("/") + "/"):
                return spec.name
    return None
