"""Record the toolchain the stages run with in toolchain.yaml, which every stage depends on.

DVC hashes files, not environments (treeverse/dvc#4640): a new TensorFlow would not rerun
the conversion by itself. So the versions that shape the artifacts (Python, TensorFlow, h5py,
NumPy, OpenCV, scikit-image, the Edge TPU compiler or "predicted", and where the stage runs)
are written to toolchain.yaml, one section per stage holding the keys that stage declares as
params in dvc.yaml (`toolchain.yaml: [quantize.tensorflow, ...]`), as the environment its runner
gives it has them. The file is rewritten only when something changed, so an unchanged toolchain
reruns nothing. `python -m facenet_edgetpu <stage>` refuses to run when its section is stale.

Example:
    python -m facenet_edgetpu toolchain          # write toolchain.yaml if it changed
    python -m facenet_edgetpu toolchain --check  # exit 1 if it is stale
    python -m facenet_edgetpu toolchain --print  # print this environment's toolchain, write nothing

Before anything else it checks that `inputs.model` and `inputs.photos` in params.yaml exist
(unless a stage makes them), so a wrong path is reported before `dvc repro` starts.

A stage under the docker runner (params.yaml `runner`) gets the image's toolchain: it is read by
running `--print` inside the image, and `runtime` holds the image's content id.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from edgetpu_analyzer.compiler import CompilerUnusableError, find_compiler, query_compiler_version
from facenet_edgetpu.core import artifacts, dvcfile, runner
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.params import PARAMS_FILE, Field, inputs, load_params, section

TOOLCHAIN_FILE = "toolchain.yaml"
PREDICTED = "predicted"

# Key in toolchain.yaml -> distributions that provide it (the first one installed wins).
DISTRIBUTIONS = {
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
    "h5py": ("h5py",),
    "numpy": ("numpy",),
    "opencv": ("opencv-python-headless", "opencv-python"),
    "scikit-image": ("scikit-image",),
    "tflite": ("tflite",),
    "matplotlib": ("matplotlib",),
}
KNOWN_KEYS = tuple(sorted(DISTRIBUTIONS)) + ("edgetpu_compiler", "python", "runtime")


def distribution_version(names) -> str:
    """Version of the first installed distribution among `names`, or "absent"."""
    try:
        from importlib import metadata  # novermin (Python 3.7 falls back below)
        lookup, missing = metadata.version, metadata.PackageNotFoundError
    except ImportError:  # Python 3.7, in the TF 1.15 image
        import pkg_resources
        lookup = lambda name: pkg_resources.get_distribution(name).version  # noqa: E731
        missing = pkg_resources.DistributionNotFound
    for name in names:
        try:
            return lookup(name)
        except missing:
            continue
    return "absent"


def compiler_version(compiler: str) -> str:
    """`edgetpu_compiler --version` (e.g. "15.0.340273435"), or "predicted" when absent.

    The same discovery and version query as the compile stage's, so both agree on what runs.
    """
    try:
        path = find_compiler(compiler)
        return PREDICTED if path is None else query_compiler_version(path)
    except CompilerUnusableError as error:
        raise PipelineError(
            "params.yaml compile.compiler is {!r}, and {}. Set compile.compiler to the path of "
            "edgetpu_compiler, or to its name (edgetpu_compiler) to run it from PATH or predict "
            "its output where it is not installed.".format(compiler, error)) from error


def current_toolchain(compiler: str) -> Dict[str, str]:
    """Every toolchain key, as this interpreter and machine have it."""
    toolchain = {key: distribution_version(names) for key, names in DISTRIBUTIONS.items()}
    toolchain["python"] = platform.python_version()
    toolchain["edgetpu_compiler"] = compiler_version(compiler)
    toolchain["runtime"] = runner.local_runtime()
    return toolchain


def declared_keys(stages: Mapping[str, dvcfile.StageSpec]) -> Dict[str, List[str]]:
    """stage -> the toolchain keys it declares in dvc.yaml (`toolchain.yaml: [<stage>.<key>]`).

    Each stage has its own section because each stage may run elsewhere (params.yaml `runner`):
    its section records the environment it actually runs in.
    """
    keys = {}  # type: Dict[str, List[str]]
    for name, spec in stages.items():
        for entry in spec.params:
            if isinstance(entry, dict) and TOOLCHAIN_FILE in entry:
                for dotted in entry[TOOLCHAIN_FILE] or []:
                    section_name, _, key = str(dotted).partition(".")
                    if section_name != name or key not in KNOWN_KEYS:
                        raise PipelineError(
                            "{}: stage {} declares {}:{}, but a stage may only depend on its own "
                            "section's keys ({}.<key>, key one of {})".format(
                                dvcfile.DVC_FILE, name, TOOLCHAIN_FILE, dotted, name,
                                ", ".join(KNOWN_KEYS)))
                    keys.setdefault(name, []).append(key)
    return keys


def stage_toolchains(params: Mapping[str, Any], stages: Mapping[str, dvcfile.StageSpec]
                     ) -> Dict[str, Dict[str, str]]:
    """stage -> {key: value} in the environment its runner gives it (each image asked once)."""
    unknown = runner.unknown_stage_runners(params, list(stages))
    if unknown:
        raise PipelineError("params.yaml runner.stages names {}, which {} no stage of {} (stages: "
                            "{})".format(", ".join(unknown), "is" if len(unknown) == 1 else "are",
                                         dvcfile.DVC_FILE, ", ".join(stages)))
    compiler = compiler_param(params)
    environments = {}  # type: Dict[str, Dict[str, str]]
    sections = {}
    for stage, keys in sorted(declared_keys(stages).items()):
        chosen = runner.configured(params, stage)
        where = chosen["image"] if chosen["kind"] == "docker" else ""
        if where not in environments:
            environments[where] = runner.container_toolchain(where) if where else \
                current_toolchain(compiler)
        sections[stage] = {key: environments[where][key] for key in sorted(keys)}
    return sections


def recorded_toolchain(path: str = TOOLCHAIN_FILE) -> Dict[str, Dict[str, str]]:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            recorded = yaml.safe_load(handle)
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as error:
        raise PipelineError("{} is not valid YAML ({}): delete it and run `python -m "
                            "facenet_edgetpu toolchain`".format(path, error)) from error
    return recorded if isinstance(recorded, dict) else {}


def toolchain_text(toolchain: Mapping[str, Any]) -> str:
    header = ("# Written by `python -m facenet_edgetpu toolchain` (make repro runs it); do not "
              "edit.\n"
              "# One section per stage: the versions it runs with, where its runner puts it.\n"
              "# Every stage depends on its own section (dvc.yaml), so a change reruns it.\n")
    return header + yaml.safe_dump(dict(toolchain), default_flow_style=False, sort_keys=True)


def stale_keys(recorded: Optional[Mapping[str, Any]], actual: Mapping[str, Any]
               ) -> Dict[str, tuple]:
    """Keys whose recorded value differs from the actual one: key -> (recorded, actual)."""
    recorded = recorded or {}
    return {key: (recorded.get(key), actual.get(key))
            for key in sorted(set(recorded) | set(actual)) if recorded.get(key) != actual.get(key)}


def stale_sections(recorded: Mapping[str, Any], actual: Mapping[str, Mapping[str, str]]
                   ) -> Dict[str, tuple]:
    """"<stage>.<key>" -> (recorded, actual) for every difference, stage by stage."""
    differences = {}
    for stage in sorted(set(recorded) | set(actual)):
        old = recorded.get(stage) if isinstance(recorded.get(stage), dict) else None
        for key, change in stale_keys(old, actual.get(stage) or {}).items():
            differences["{}.{}".format(stage, key)] = change
    return differences


def check_stage(stage: str, spec: dvcfile.StageSpec, params: Mapping[str, Any]) -> None:
    """Refuse to run `stage` here when its toolchain.yaml section does not describe this
    environment (so dvc.lock never records its outputs under a stale toolchain)."""
    keys = declared_keys({stage: spec}).get(stage, [])
    if not keys:
        return
    everything = current_toolchain(compiler_param(params))
    actual = {key: everything[key] for key in keys}
    differences = stale_keys(recorded_toolchain().get(stage), actual)
    if differences:
        raise PipelineError(
            "{} does not match this environment for stage {} ({}). Run `python -m "
            "facenet_edgetpu toolchain` (make repro does it), then `dvc repro`, which reruns the "
            "stages the change affects.".format(TOOLCHAIN_FILE, stage, "; ".join(
                "{}: recorded {}, found {}".format(key, old, new)
                for key, (old, new) in differences.items())))


# inputs.<key> -> (what it must be, os.path test, what to set it to).
INPUT_KINDS = {
    "model": ("file", os.path.isfile, "your Keras .h5 model (saved with model.save())"),
    "photos": ("folder", os.path.isdir, "your photos folder, laid out as <photos>/train/<person>/ "
                                        "and <photos>/val/<person>/"),
}


def check_inputs(params: Mapping[str, Any], stages: Mapping[str, dvcfile.StageSpec]) -> None:
    """Refuse `inputs.*` paths that do not exist (or are the wrong kind), before DVC runs: DVC
    would only say "No such file or directory", after deleting the outputs of the stage that
    reads them. A path some stage produces (the default inputs, which fetch_inputs makes) need
    not exist yet."""
    paths = inputs(params)
    problems = []
    for key, (kind, is_kind, wanted) in INPUT_KINDS.items():
        path = paths[key]
        if dvcfile.producer_of(path, stages) is not None or is_kind(path):
            continue
        found = "does not exist" if not os.path.exists(path) else "is not a {}".format(kind)
        problems.append("inputs.{} is {!r}, which {} in {}: set it to {}".format(
            key, path, found, os.getcwd(), wanted))
    if problems:
        made = ", ".join(stages["fetch_inputs"].outs) if "fetch_inputs" in stages else ""
        raise PipelineError("{}: {}.{}".format(PARAMS_FILE, "; ".join(problems), (
            " The defaults ({}) are what the fetch_inputs stage downloads.".format(made)
            if made else "")))


def compiler_param(params: Optional[Mapping[str, Any]] = None) -> str:
    return section("compile", {"compiler": Field(str, low=1)}, params, partial=True)["compiler"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facenet_edgetpu toolchain",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print every key as this environment has it; write nothing")
    args = parser.parse_args(argv)
    try:
        params = load_params()
        if args.print_only:
            sys.stdout.write(yaml.safe_dump(current_toolchain(compiler_param(params)),
                                            default_flow_style=False, sort_keys=True))
            return 0
        stages = dvcfile.load_stages(".", params)
        check_inputs(params, stages)
        actual = stage_toolchains(params, stages)
    except PipelineError as error:
        print("toolchain: {}".format(error), file=sys.stderr)
        return 1
    differences = stale_sections(recorded_toolchain(), actual)
    if args.check:
        for key, (old, new) in differences.items():
            print("{}: recorded {!r}, actual {!r}".format(key, old, new), file=sys.stderr)
        return 1 if differences else 0
    if differences:
        artifacts.write_text(TOOLCHAIN_FILE, toolchain_text(actual))
        print("{} updated: {}".format(TOOLCHAIN_FILE, ", ".join(
            "{} {} -> {}".format(key, old, new) for key, (old, new) in differences.items())))
    else:
        print("{} is up to date".format(TOOLCHAIN_FILE))
    return 0
