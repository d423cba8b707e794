"""Record the toolchain the stages run with in toolchain.yaml, which every stage depends on.

DVC hashes files, not environments (treeverse/dvc#4640): a new TensorFlow would not rerun
the conversion by itself. So the versions that shape the artifacts (Python, TensorFlow, h5py,
NumPy, OpenCV, scikit-image, the Edge TPU compiler or "predicted", and where the stages run)
are written to toolchain.yaml, and each stage in dvc.yaml declares the keys it depends on as
params. The file is rewritten only when something changed, so an unchanged toolchain reruns
nothing. `python -m facenet_edgetpu <stage>` refuses to run when the file is stale.

Example:
    python -m facenet_edgetpu toolchain          # write toolchain.yaml if it changed
    python -m facenet_edgetpu toolchain --check  # exit 1 if it is stale
    python -m facenet_edgetpu toolchain --print  # print this environment's toolchain, write nothing

Under the docker runner (params.yaml `runner`), the toolchain is the image's: it is read by
running `--print` inside the image, and `runtime` holds the image's content id.
"""
from __future__ import annotations

import argparse
import platform
import sys
from typing import Dict, Optional

import yaml

from edgetpu_analyzer.compiler import CompilerUnusableError, find_compiler, query_compiler_version
from facenet_edgetpu.core import artifacts, runner
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.params import Field, section

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
            "its output where it is not installed.".format(compiler, error))


def current_toolchain(compiler: str) -> Dict[str, str]:
    """The toolchain of this interpreter and machine."""
    toolchain = {key: distribution_version(names) for key, names in DISTRIBUTIONS.items()}
    toolchain["python"] = platform.python_version()
    toolchain["edgetpu_compiler"] = compiler_version(compiler)
    toolchain["runtime"] = runner.local_runtime()
    return toolchain


def stage_toolchain(compiler: str) -> Dict[str, str]:
    """The toolchain the stages run with: this interpreter's, or the docker runner's image's."""
    chosen = runner.configured()
    if chosen["kind"] == "docker":
        return runner.container_toolchain(chosen["image"])
    return current_toolchain(compiler)


def recorded_toolchain(path: str = TOOLCHAIN_FILE) -> Optional[Dict[str, str]]:
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        return None


def toolchain_text(toolchain: Dict[str, str]) -> str:
    header = ("# Written by `python -m facenet_edgetpu toolchain` (make repro runs it); do not edit.\n"
              "# Every stage depends on the keys it uses (dvc.yaml), so a change reruns them.\n")
    return header + yaml.safe_dump(toolchain, default_flow_style=False, sort_keys=True)


def stale_keys(recorded: Optional[Dict[str, str]], actual: Dict[str, str]) -> Dict[str, tuple]:
    """Keys whose recorded value differs from the actual one: key -> (recorded, actual)."""
    recorded = recorded or {}
    return {key: (recorded.get(key), actual.get(key))
            for key in sorted(set(recorded) | set(actual)) if recorded.get(key) != actual.get(key)}


def compiler_param() -> str:
    return section("compile", {"compiler": Field(str, low=1)}, partial=True)["compiler"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    parser.add_argument("--print", action="store_true", dest="print_only",
                        help="print this environment's toolchain; write nothing")
    args = parser.parse_args(argv)
    if args.print_only:
        sys.stdout.write(toolchain_text(current_toolchain(compiler_param())))
        return 0
    try:
        actual = stage_toolchain(compiler_param())
    except PipelineError as error:
        print("toolchain: {}".format(error), file=sys.stderr)
        return 1
    differences = stale_keys(recorded_toolchain(), actual)
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
