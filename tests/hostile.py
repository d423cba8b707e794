"""Helpers for the hostile-input tests (issue 13): a pipeline folder to run stages in, their
command lines as dvc.yaml writes them, model-like files, and small file systems."""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from typing import Any, Iterator, List

import h5py
import numpy as np
import pytest

from facenet_edgetpu.core import dvcfile
from facenet_edgetpu.core.params import load_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_CI = os.environ.get("CI") == "true"


def run(argv: List[str], cwd: str, **options: Any) -> subprocess.CompletedProcess:
    """Run a command; stdout and stderr together in `.stdout`."""
    return subprocess.run(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, **options)


def make_pipeline_folder(folder: str) -> str:
    """params.yaml and dvc.yaml of the repository, and the toolchain.yaml this environment
    writes: what the entry point needs to run a stage as `dvc repro` does."""
    for name in (dvcfile.DVC_FILE, "params.yaml"):
        shutil.copy(os.path.join(REPO, name), os.path.join(folder, name))
    done = run([sys.executable, "-m", "facenet_edgetpu", "toolchain"], folder)
    assert done.returncode == 0, done.stdout
    return folder


def stage_argv(folder: str, stage: str, module_entry: bool = False) -> List[str]:
    """The stage's command from dvc.yaml (resolved with the folder's params.yaml), run by this
    interpreter; `module_entry` starts it the other way, `python -m facenet_edgetpu.stages.X`."""
    spec = dvcfile.load_stage(folder, stage, load_params(os.path.join(folder, "params.yaml")))
    words = shlex.split(spec.cmd)
    assert words[:4] == ["python", "-m", "facenet_edgetpu", stage], spec.cmd
    entry = ["-m", "facenet_edgetpu.stages." + stage] if module_entry else words[1:4]
    return [sys.executable] + entry + words[4:]


def keras_like_h5(path: str, weight_bytes: int = 4 << 20) -> str:
    """An HDF5 file as Keras saves a model: a `model_config` with a 160x160x3 input (what every
    reader checks first) and a weights group, big enough that its first MiB is not all of it."""
    config = {"class_name": "Model", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "name": "input_1",
         "config": {"batch_input_shape": [None, 160, 160, 3], "dtype": "float32",
                    "name": "input_1"}}]}}
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config).encode("utf-8")
        handle.attrs["keras_version"] = b"2.1.2"
        weights = handle.create_group("model_weights")
        weights.create_dataset("kernel", data=np.arange(weight_bytes // 4, dtype=np.float32))
    return path


def cut_short(source: str, target: str, size: int = 1 << 20) -> str:
    """The first `size` bytes of `source` (an interrupted copy) as `target`."""
    with open(source, "rb") as handle:
        head = handle.read(size)
    with open(target, "wb") as handle:
        handle.write(head)
    return target


@contextlib.contextmanager
def mounted_tmpfs(path: str, options: str) -> Iterator[str]:
    """A tmpfs mounted on `path` (e.g. "size=1m", "ro"), unmounted afterwards. Mounting needs
    root: skipped with the reason elsewhere, a failure in CI (CI=true), which runs as root."""
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    if done.returncode != 0:
        reason = "cannot mount a tmpfs (needs root): {}".format(done.stdout.strip())
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", path], check=True)


def partials(folder: str) -> List[str]:
    """The temporary siblings (core/artifacts.py) anywhere under `folder`."""
    found = []
    for root, dirs, files in os.walk(folder):
        found.extend(os.path.relpath(os.path.join(root, name), folder)
                     for name in dirs + files if ".partial-" in name)
    return sorted(found)
