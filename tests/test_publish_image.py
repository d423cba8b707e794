"""The toolchain image by digest: pushed to a registry, pulled by an engine that lacks it.

The registry-free image (`make image-local`) is pushed to Debian's docker-registry on
loopback. A second Docker engine, started empty by the test, runs the pipeline with
`runner.image: 127.0.0.1:<port>/facenet-edgetpu-local@sha256:<digest>`: toolchain.yaml's
`runtime` records the digest, the engine pulls the image by it, and the stages give the local
runner's artifacts byte for byte. Marked `publish` (run by tools/ci_publish_check.sh).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
import yaml

from tests import publish_servers as servers
from tests.conftest import copy_repository, pipeline_env, run, set_params
from tests.test_container_pipeline import RUN_TO_RUN, output_files, sha256

pytestmark = pytest.mark.publish
COMPARED_STAGES = ("crop_faces", "representative_dataset", "quantize", "compile")


def docker(*args, host=None, check=True):
    command = ["docker"] + (["--host", host] if host else []) + list(args)
    return run(command, os.getcwd(), check=check)


@pytest.fixture(scope="module")
def pushed_image(docker_image, tmp_path_factory):
    """(digest reference, image id) of the registry-free image pushed to a loopback registry."""
    with servers.registry(str(tmp_path_factory.mktemp("registry"))) as registry:
        name = "{}/facenet-edgetpu-local".format(registry.address)
        docker("tag", docker_image, name + ":publish-test")
        try:
            docker("push", "--quiet", name + ":publish-test")
            inspected = docker("image", "inspect", "--format",
                               "{{.Id}}{{range .RepoDigests}} {{.}}{{end}}",
                               docker_image).stdout.split()
            reference = next(entry for entry in inspected[1:] if entry.startswith(name + "@"))
            yield reference, inspected[0]
        finally:
            docker("image", "rm", name + ":publish-test", check=False)


@pytest.fixture(scope="module")
def empty_engine(tmp_path_factory):
    with servers.docker_engine(str(tmp_path_factory.mktemp("engine"))) as engine:
        yield engine


def test_an_engine_lacking_the_image_pulls_it_by_digest_and_the_stages_match(
        pushed_image, empty_engine, pipeline_repo, tmp_path):
    reference, image_id = pushed_image
    digest = reference.split("@", 1)[1]
    assert docker("image", "inspect", reference, host=empty_engine.host,
                  check=False).returncode != 0, "the second engine should start without it"
    repo = copy_repository(str(tmp_path / "repo"))
    set_params(repo, {"runner.kind": "docker", "runner.image": reference})
    env = pipeline_env()
    env["DOCKER_HOST"] = empty_engine.host
    run([sys.executable, "-m", "facenet_edgetpu", "toolchain"], repo, env=env)

    pulled = docker("image", "inspect", "--format", "{{.Id}}", reference, host=empty_engine.host)
    assert pulled.stdout.strip() == image_id
    with open(os.path.join(repo, "toolchain.yaml"), "r", encoding="utf-8") as handle:
        runtime = yaml.safe_load(handle)["compile"]["runtime"]
    assert runtime.startswith("docker {} linux/".format(image_id))
    assert runtime.endswith(" @" + digest)

    run([sys.executable, "-m", "dvc", "repro", "compile"], repo, env=env)
    local = output_files(pipeline_repo[0])
    by_digest = output_files(repo)
    compared = [path for path, stage in by_digest.items()
                if stage in COMPARED_STAGES and path not in RUN_TO_RUN]
    assert "models/facenet_keras.tflite" in compared
    assert "models/edgetpu/compile_result.json" in compared
    different = [path for path in sorted(compared)
                 if sha256(os.path.join(repo, path)) !=
                 sha256(os.path.join(pipeline_repo[0], path))]
    assert set(compared) <= set(local) and different == []


def test_an_unreachable_registry_is_one_clear_line_and_writes_nothing(docker_image, tmp_path):
    digest = "sha256:" + hashlib.sha256(b"no such manifest").hexdigest()
    closed = "127.0.0.1:{}/facenet-edgetpu-local@{}".format(servers.free_ports(1)[0], digest)
    repo = copy_repository(str(tmp_path / "repo"))
    set_params(repo, {"runner.kind": "docker", "runner.image": closed})
    done = run([sys.executable, "-m", "facenet_edgetpu", "toolchain"], repo,
               env=pipeline_env(), check=False)
    assert done.returncode == 1
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and "Cannot pull image " + closed in lines[0], done.stdout
    assert "registry is reachable" in lines[0]
    assert not os.path.exists(os.path.join(repo, "toolchain.yaml"))
    assert subprocess.run(["docker", "image", "inspect", closed], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0
