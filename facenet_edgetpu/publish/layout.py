"""Which of the pipeline's files a release carries, found through dvc.yaml as DVC reads it.

The stage names are fixed (fetch_inputs, quantize, compile, report, ...); the paths are not:
each file is looked up among the outputs its stage declares, so a restructured dvc.yaml, or
paths moved through params.yaml's `${...}` references, need no change here.

A release carries the Edge TPU model when the real compiler ran; when the compile stage only
predicted its output (`"predicted": true` in compile_result.json), it carries the quantized
model instead, and says so.
"""
from __future__ import annotations

import json
import os
import posixpath
from typing import Dict, List, NamedTuple, Tuple

from facenet_edgetpu.publish.errors import PublishError, one_line

FETCH_STAGE = "fetch_inputs"
QUANTIZE_STAGE = "quantize"
COMPILE_STAGE = "compile"
REPORT_STAGE = "report"

COMPILE_RESULT = "compile_result.json"
COMPILER_STDOUT = "compiler_stdout.txt"
EDGETPU_MODEL_SUFFIX = "_edgetpu.tflite"
OPERATION_LOG_SUFFIX = "_edgetpu.log"

# (what it is, the stage that writes it, how its path ends) for the single files a release needs.
STAGE_FILES = (
    ("the quantized model", QUANTIZE_STAGE, ".tflite"),
    ("the HTML report", REPORT_STAGE, ".html"),
)

RERUN_HINT = "run `make repro`, or `make pull` to fetch what CI built"


class Pipeline(NamedTuple):
    """What dvc.yaml declares: stage -> its outputs, and every metrics file (repository paths)."""

    outs: Dict[str, List[str]]
    metrics: List[str]


class ReleaseFiles(NamedTuple):
    model: str            # the model the release carries (repository path)
    predicted: bool       # True: no Edge TPU compiler ran, `model` is the quantized model
    compile_dir: str      # the compile stage's output directory
    files: List[str]      # every file of the release, sorted, `model` included


def declared_pipeline(repo: str) -> Pipeline:
    """Read dvc.yaml (params interpolated) with DVC's own loader."""
    try:
        from dvc.repo import Repo
        with Repo(repo) as dvc_repo:
            stages = list(dvc_repo.index.stages)
    except ImportError:
        raise PublishError("the publishing commands need DVC: install requirements/dev.lock "
                           "(make .venv/.installed)") from None
    except Exception as error:  # DVC raises many types; the user needs one line
        raise PublishError("cannot read the pipeline in {} with DVC: {}".format(
            os.path.abspath(repo), one_line(error))) from error
    outs = {stage.name: [posixpath.normpath(out.def_path) for out in stage.outs]
            for stage in stages}
    metrics = sorted(posixpath.normpath(out.def_path)
                     for stage in stages for out in stage.outs if out.metric)
    return Pipeline(outs, metrics)


def stage_outs(pipeline: Pipeline, stage: str) -> List[str]:
    if stage not in pipeline.outs:
        raise PublishError("dvc.yaml has no stage {!r}: the release needs its outputs".format(
            stage))
    return pipeline.outs[stage]


def _one_output(pipeline: Pipeline, what: str, stage: str, suffix: str) -> str:
    matches = [path for path in stage_outs(pipeline, stage) if path.endswith(suffix)]
    if len(matches) != 1:
        raise PublishError("dvc.yaml: stage {} should declare exactly one *{} output ({}), "
                           "found {}".format(stage, suffix, what, matches or "none"))
    return matches[0]


def _require_file(repo: str, path: str, what: str) -> str:
    if not os.path.isfile(os.path.join(repo, path)):
        raise PublishError("{} ({}) is missing: {}".format(path, what, RERUN_HINT))
    return path


def compile_outputs(repo: str, pipeline: Pipeline) -> Tuple[str, List[str]]:
    """(the compile stage's output directory, the names of the files in it)."""
    folders = [path for path in stage_outs(pipeline, COMPILE_STAGE)
               if os.path.isdir(os.path.join(repo, path))]
    if len(folders) != 1:
        declared = stage_outs(pipeline, COMPILE_STAGE)
        raise PublishError("the compile stage's output directory ({}) is missing: {}".format(
            ", ".join(declared), RERUN_HINT))
    return folders[0], sorted(os.listdir(os.path.join(repo, folders[0])))


def is_predicted(repo: str, result_path: str) -> bool:
    """Whether compile_result.json describes a prediction rather than the compiler's output."""
    try:
        with open(os.path.join(repo, result_path), "r", encoding="utf-8") as handle:
            result = json.load(handle)
    except ValueError as error:
        raise PublishError("{} is not valid JSON ({}): {}".format(
            result_path, one_line(error), RERUN_HINT)) from error
    if not isinstance(result, dict) or not isinstance(result.get("predicted"), bool):
        raise PublishError("{} has no true/false `predicted` field: is it a compile result "
                           "of this pipeline? {}".format(result_path, RERUN_HINT))
    return result["predicted"]


def release_files(repo: str, pipeline: Pipeline) -> ReleaseFiles:
    """The files of a release, checked to exist."""
    compile_dir, names = compile_outputs(repo, pipeline)
    result = _require_file(repo, posixpath.join(compile_dir, COMPILE_RESULT), "the compile result")
    predicted = is_predicted(repo, result)
    stdout = _require_file(repo, posixpath.join(compile_dir, COMPILER_STDOUT),
                           "the compiler's output")
    logs = [posixpath.join(compile_dir, name) for name in names
            if name.endswith(OPERATION_LOG_SUFFIX)]
    if not logs:
        raise PublishError("{} holds no *{} operation log: {}".format(
            compile_dir, OPERATION_LOG_SUFFIX, RERUN_HINT))
    quantized, report = (_require_file(repo, _one_output(pipeline, what, stage, suffix), what)
                         for what, stage, suffix in STAGE_FILES)
    if predicted:
        model = quantized
    else:
        compiled = [posixpath.join(compile_dir, name) for name in names
                    if name.endswith(EDGETPU_MODEL_SUFFIX)]
        if len(compiled) != 1:
            raise PublishError("{} says the compiler ran, but {} holds {} *{} models instead "
                               "of one: {}".format(result, compile_dir, len(compiled),
                                                   EDGETPU_MODEL_SUFFIX, RERUN_HINT))
        model = compiled[0]
    metrics = [_require_file(repo, path, "a metrics file") for path in pipeline.metrics]
    files = sorted(set([model, report, result, stdout] + logs + metrics))
    return ReleaseFiles(model, predicted, compile_dir, files)
