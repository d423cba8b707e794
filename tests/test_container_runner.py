"""The docker runner (facenet_edgetpu/core/runner.py): confinement, identity, and its errors.

Tests that need a Docker engine and the registry-free image (`make image-local`) skip with
the reason when either is missing, unless FACENET_REQUIRE_DOCKER=1 (set by .ci/run), which
makes them fail instead: in CI the container path is mandatory.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest
import yaml

from facenet_edgetpu.core import runner
from tests.hostile import stage_argv
from tests.conftest import (
    IMAGE, REPO, copy_repository, pipeline_env, run, set_params)

# ------------------------------------------------------------------------------------------
# Helpers shared with test_container_pipeline.py
# ------------------------------------------------------------------------------------------

def stages_cmd(repo, *args, env=None, check=False):
    return run([sys.executable, "-m"] + list(args), repo, check=check, env=env or pipeline_env())


def dvc(repo, *args, check=True):
    return run([sys.executable, "-m", "dvc"] + list(args), repo, check=check, env=pipeline_env())


def docker_repo_copy(destination, image=IMAGE):
    """A copy of the repository set to the docker runner, toolchain written (from the image)."""
    copy_repository(destination)
    set_params(destination, {"runner.kind": "docker", "runner.image": image})
    stages_cmd(destination, "facenet_edgetpu", "toolchain", check=True)
    return destination


def partials(folder):
    return sorted(name for name in os.listdir(folder) if ".partial-" in name) \
        if os.path.isdir(folder) else []


def owners(root):
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.lstat(os.path.join(folder, name)).st_uid)
    return found


@pytest.fixture(scope="module")
def docker_repo(docker_image, default_archive, tmp_path_factory):
    """A docker-runner copy where fetch_inputs (host), crop_faces and representative_dataset
    (container) ran through `dvc repro`."""
    repo = docker_repo_copy(str(tmp_path_factory.mktemp("docker_repo")))
    dvc(repo, "repro", "representative_dataset")
    return repo


@pytest.fixture
def scratch_repo(docker_repo, tmp_path):
    """A throw-away copy of docker_repo, for tests that break or change it."""
    target = str(tmp_path / "repo")
    shutil.copytree(docker_repo, target, symlinks=True)
    return target


# ------------------------------------------------------------------------------------------
# Without an engine: the plan, the options, the errors
# ------------------------------------------------------------------------------------------

def test_local_is_the_default_and_the_container_side_always_runs_locally(monkeypatch):
    assert runner.configured({"inputs": {}}) == {"kind": "local", "image": IMAGE}
    chosen = runner.configured({"runner": {"kind": "docker", "image": "x:1"}})
    assert chosen == {"kind": "docker", "image": "x:1"}
    monkeypatch.setenv(runner.RUNTIME_ENV, "docker sha256:abc linux/amd64")
    assert runner.configured({"runner": {"kind": "docker", "image": "x:1"}})["kind"] == "local"
    assert runner.local_runtime() == "docker sha256:abc linux/amd64"
    monkeypatch.delenv(runner.RUNTIME_ENV)
    assert runner.local_runtime() == "local {} {}".format(platform.system(), platform.machine())


def test_a_stage_can_run_elsewhere_than_the_others():
    params = {"runner": {"kind": "docker", "image": "convert:1",
                         "stages": {"fidelity": {"kind": "docker", "image": "evaluate:2"},
                                    "compile": {"kind": "local"}}}}
    assert runner.configured(params, "quantize") == {"kind": "docker", "image": "convert:1"}
    assert runner.configured(params, "fidelity") == {"kind": "docker", "image": "evaluate:2"}
    assert runner.configured(params, "compile")["kind"] == "local"
    # The network stage always runs on the host.
    assert runner.configured(params, "fetch_inputs")["kind"] == "local"
    assert runner.unknown_stage_runners(params, ["quantize", "fidelity", "compile"]) == []
    assert runner.unknown_stage_runners(params, ["quantize", "compile"]) == ["fidelity"]
    with pytest.raises(runner.PipelineError, match="runner.stages.fidelity: kind docker needs"):
        runner.configured({"runner": {"stages": {"fidelity": {"kind": "docker"}}}}, "fidelity")
    with pytest.raises(runner.PipelineError, match="'runner.stages.fidelity.kind' must be one"):
        runner.configured({"runner": {"stages": {"fidelity": {"kind": "podman"}}}}, "fidelity")


def test_the_runner_and_entry_point_do_not_import_tensorflow():
    done = run([sys.executable, "-c",
                "import sys, facenet_edgetpu.__main__, facenet_edgetpu.core.runner; "
                "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                "('tensorflow', 'keras', 'numpy', 'cv2')))"], REPO)
    assert done.stdout.strip() == "[]"


def test_bad_runner_params_are_refused():
    with pytest.raises(runner.PipelineError, match="runner.kind|'kind'"):
        runner.configured({"runner": {"kind": "podman"}})


def test_every_stage_gets_a_read_only_repo_and_writable_output_folders_only(tmp_path):
    repo = copy_repository(str(tmp_path / "repo"))
    params = yaml.safe_load(open(os.path.join(repo, "params.yaml"), encoding="utf-8"))
    for stage in yaml.safe_load(open(os.path.join(repo, "dvc.yaml")))["stages"]:
        deps, outs = runner.stage_paths(stage, repo, params)
        for dep in deps + outs:   # make every path exist, as it does when DVC runs the stage
            if not os.path.exists(dep):
                os.makedirs(os.path.dirname(dep), exist_ok=True)
                open(dep, "a").close()
        mounts = runner.stage_mounts(stage, repo, params)
        assert mounts[repo] == runner.Mount(repo, True)
        writable = {path for path, mount in mounts.items() if not mount.read_only}
        assert writable == {os.path.dirname(out) for out in outs}, stage
        for dep in deps:
            inside_writable = any(runner._inside(dep, folder) for folder in writable)
            assert not inside_writable or mounts[dep].read_only, (stage, dep)
        assert all(target == mount.source for target, mount in mounts.items())


def test_run_options_confine_the_container():
    repo = "/some/repo,with a comma"
    mounts = {repo: runner.Mount(repo, True), repo + "/data": runner.Mount(repo + "/data", False)}
    options = runner.run_options("docker sha256:abc linux/amd64", mounts, repo)
    text = " ".join(options)
    for expected in ("--network none", "--cap-drop ALL", "--security-opt no-new-privileges",
                     "--read-only", "--user {}:{}".format(os.getuid(), os.getgid()),
                     "{}=docker sha256:abc linux/amd64".format(runner.RUNTIME_ENV)):
        assert expected in text
    assert '"source=/some/repo,with a comma",' in text and "readonly" in text
    assert "--privileged" not in text
    assert "--user 4242:4343" in " ".join(runner.run_options("i", mounts, repo, user=(4242, 4343)))


def test_exit_codes_are_explained():
    assert "killed (SIGKILL): out of memory" in runner.explain_exit("quantize", "i", 137, True)
    assert "killed (SIGKILL)" in runner.explain_exit("quantize", "i", 137, False)
    assert "signal 15" in runner.explain_exit("quantize", "i", 143, False)
    assert "docker run failed" in runner.explain_exit("quantize", "i", 125, False)
    assert "exit 1" in runner.explain_exit("quantize", "i", 1, False)


def test_no_engine_gives_a_clear_error_and_touches_nothing(tmp_path):
    repo = copy_repository(str(tmp_path / "repo"))
    set_params(repo, {"runner.kind": "docker", "runner.image": IMAGE})
    env = pipeline_env()
    env["DOCKER_HOST"] = "unix://{}/no-engine.sock".format(tmp_path)
    for args in (["facenet_edgetpu", "crop_faces"], ["facenet_edgetpu", "toolchain"]):
        done = stages_cmd(repo, *args, env=env)
        assert done.returncode == 1, done.stdout
        assert ("Docker engine is not reachable" in done.stdout
                or "`docker` command is not installed" in done.stdout), done.stdout
        assert "Traceback" not in done.stdout
    assert not os.path.exists(os.path.join(repo, "toolchain.yaml"))
    assert not os.path.exists(os.path.join(repo, "data", "faces"))


def test_no_docker_command_gives_a_clear_error(tmp_path):
    repo = copy_repository(str(tmp_path / "repo"))
    set_params(repo, {"runner.kind": "docker", "runner.image": IMAGE})
    env = pipeline_env()
    env["PATH"] = str(tmp_path / "empty")
    done = stages_cmd(repo, "facenet_edgetpu", "crop_faces", env=env)
    assert done.returncode == 1 and "`docker` command is not installed" in done.stdout
    assert "runner.kind: local" in done.stdout


FAKE_DOCKER = '''#!{python}
"""A stand-in for the docker CLI: the container writes a partial file and an output, then
dies as if killed (exit 137)."""
import json, os, platform, sys
args = sys.argv[1:]
if args[:1] == ["version"]:
    print("20.10.0")
elif args[:2] == ["image", "inspect"]:
    arch = {{"x86_64": "amd64", "aarch64": "arm64"}}.get(platform.machine(), platform.machine())
    print(json.dumps({{"Id": "sha256:" + "0" * 64, "Os": "linux", "Architecture": arch}}))
elif args[:1] == ["run"]:
    repo = args[args.index("--workdir") + 1]
    os.makedirs(os.path.join(repo, "data", ".preprocessed.partial-x1"))
    os.makedirs(os.path.join(repo, "data", "preprocessed"))
    sys.exit(137)
elif args[:1] == ["inspect"]:
    print("false")
'''


def test_a_killed_stage_leaves_no_partial_or_output_behind(tmp_path):
    """With a fake docker CLI (no engine needed): the runner's clean-up after a kill."""
    repo = copy_repository(str(tmp_path / "repo"))
    set_params(repo, {"runner.kind": "docker", "runner.image": IMAGE})
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "docker").write_text(FAKE_DOCKER.format(python=sys.executable))
    (fake_bin / "docker").chmod(0o755)
    os.makedirs(os.path.join(repo, "data", "faces"), exist_ok=True)
    open(os.path.join(repo, "data", ".unrelated.partial-old"), "w").close()
    env = pipeline_env()
    env["PATH"] = "{}{}{}".format(fake_bin, os.pathsep, env["PATH"])
    done = stages_cmd(repo, "facenet_edgetpu", "representative_dataset", env=env)
    assert done.returncode == 1
    assert "representative_dataset was killed (SIGKILL)" in done.stdout, done.stdout
    assert not os.path.exists(os.path.join(repo, "data", "preprocessed"))
    # the run's temporary file is gone; one that was there before the run is not its to remove
    assert partials(os.path.join(repo, "data")) == [".unrelated.partial-old"]


# ------------------------------------------------------------------------------------------
# With an engine and the image
# ------------------------------------------------------------------------------------------

def test_stages_ran_in_the_image_and_their_outputs_are_the_invoking_users(docker_repo):
    with open(os.path.join(docker_repo, "toolchain.yaml"), encoding="utf-8") as handle:
        recorded = yaml.safe_load(handle)
    identity = runner.image_identity(IMAGE)
    for stage in ("crop_faces", "representative_dataset"):
        assert recorded[stage]["runtime"] == identity, stage
        assert recorded[stage]["python"].startswith("3."), stage
    assert identity.startswith("docker sha256:")
    assert recorded["float_model"]["tensorflow"] != "absent"
    for out in ("data/faces", "data/preprocessed", "reports/crop_metrics.json"):
        path = os.path.join(docker_repo, out)
        assert os.path.exists(path), out
        assert owners(path) | {os.lstat(path).st_uid} == {os.getuid()}, out
    lock = yaml.safe_load(open(os.path.join(docker_repo, "dvc.lock"), encoding="utf-8"))
    assert {"fetch_inputs", "crop_faces", "representative_dataset"} <= set(lock["stages"])


PROBE = textwrap.dedent('''
    import json, os, socket
    result = {"uid": os.getuid(), "gid": os.getgid()}
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    result["cap_eff"] = status["CapEff"].strip()
    result["no_new_privs"] = status["NoNewPrivs"].strip()
    def can_write(path):
        try:
            with open(path, "w") as handle:
                handle.write("x")
            os.remove(path)
            return True
        except OSError:
            return False
    for name in ("repo", "outputs", "inputs", "params", "image"):
        result["write_" + name] = can_write(os.environ["PROBE_" + name.upper()])
    try:
        socket.create_connection(("151.101.0.223", 443), timeout=5).close()
        result["connect"] = "connected"
    except OSError as error:
        result["connect"] = str(error)
    try:
        socket.getaddrinfo("pypi.org", 443)
        result["dns"] = "resolved"
    except OSError as error:
        result["dns"] = str(error)
    result["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    print(json.dumps(result))
''')


def test_a_stage_container_has_no_network_no_privileges_and_read_only_inputs(docker_repo):
    params = yaml.safe_load(open(os.path.join(docker_repo, "params.yaml"), encoding="utf-8"))
    mounts = runner.stage_mounts("crop_faces", docker_repo, params)
    identity = runner.image_identity(IMAGE)
    probe_env = {"PROBE_REPO": os.path.join(docker_repo, "probe"),
                 "PROBE_OUTPUTS": os.path.join(docker_repo, "data", "probe"),
                 "PROBE_INPUTS": os.path.join(docker_repo, "data", "photos", "probe"),
                 "PROBE_PARAMS": os.path.join(docker_repo, "params.yaml"),
                 "PROBE_IMAGE": "/opt/probe"}
    command = ["docker"] + runner.run_options(identity, mounts, docker_repo) + ["--rm"]
    for key, value in probe_env.items():
        command += ["--env", "{}={}".format(key, value)]
    done = run(command + [IMAGE, "python", "-c", PROBE], docker_repo)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["uid"], result["gid"]) == (os.getuid(), os.getgid())
    assert result["cap_eff"] == "0000000000000000" and result["no_new_privs"] == "1"
    assert result["write_outputs"] is True
    assert not any(result["write_" + name] for name in ("repo", "inputs", "params", "image"))
    assert result["connect"] != "connected" and "unreachable" in result["connect"].lower()
    assert result["dns"] != "resolved"
    assert result["interfaces"] == ["lo"]


def test_the_same_image_reruns_nothing_and_a_different_image_reruns_the_stages(scratch_repo):
    again = stages_cmd(scratch_repo, "facenet_edgetpu", "toolchain", check=True)
    assert "up to date" in again.stdout
    status = dvc(scratch_repo, "status", "--json", "--with-deps", "representative_dataset").stdout
    assert json.loads(status[status.index("{"):]) == {}
    derived = "facenet-edgetpu-test:derived"
    build = subprocess.run(
        ["docker", "build", "--network", "none", "--tag", derived, "-"],
        input="FROM {}\nUSER root\nRUN echo changed > /etc/facenet-edgetpu-test\n"
              "USER 10001:10001\n".format(IMAGE),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert build.returncode == 0, build.stdout
    try:
        set_params(scratch_repo, {"runner.image": derived})
        changed = stages_cmd(scratch_repo, "facenet_edgetpu", "toolchain", check=True).stdout
        assert "runtime docker sha256:" in changed and runner.image_identity(derived) in changed
        status = dvc(scratch_repo, "status", "--json", "--with-deps",
                     "representative_dataset").stdout
        stale = json.loads(status[status.index("{"):])
        assert {"crop_faces", "representative_dataset"} <= set(stale)
        assert "fetch_inputs" not in stale        # runs on the host, no toolchain key
    finally:
        subprocess.run(["docker", "image", "rm", "--force", derived], stdout=subprocess.DEVNULL)
    set_params(scratch_repo, {"runner.image": IMAGE})
    stages_cmd(scratch_repo, "facenet_edgetpu", "toolchain", check=True)
    status = dvc(scratch_repo, "status", "--json", "--with-deps", "representative_dataset").stdout
    assert json.loads(status[status.index("{"):]) == {}


def test_a_missing_image_says_how_to_build_it(scratch_repo):
    set_params(scratch_repo, {"runner.image": "facenet-edgetpu-local:no-such-tag"})
    for args in (["facenet_edgetpu", "crop_faces"], ["facenet_edgetpu", "toolchain"]):
        done = stages_cmd(scratch_repo, *args)
        assert done.returncode == 1 and "is not in the local Docker engine" in done.stdout
        assert "make image-local" in done.stdout and "Traceback" not in done.stdout


def foreign_image_archive(tag, architecture):
    """A minimal `docker save` archive of an image built for another architecture."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as archive:
        data = b"not for this machine\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    layer = layer.getvalue()
    config = json.dumps({
        "architecture": architecture, "os": "linux", "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created_by": "test"}]}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": ["layer/layer.tar"]}]).encode()
    image = io.BytesIO()
    with tarfile.open(fileobj=image, mode="w") as archive:
        for name, data in ((config_name, config), ("layer/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return image.getvalue()


def test_an_image_for_another_architecture_is_refused(scratch_repo):
    foreign = "arm64" if runner.machine_arch() != "arm64" else "amd64"
    tag = "facenet-edgetpu-test:{}".format(foreign)
    loaded = subprocess.run(["docker", "load"], input=foreign_image_archive(tag, foreign),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert loaded.returncode == 0, loaded.stdout
    try:
        set_params(scratch_repo, {"runner.image": tag})
        done = stages_cmd(scratch_repo, "facenet_edgetpu", "crop_faces")
        assert done.returncode == 1, done.stdout
        assert "is built for linux/{}".format(foreign) in done.stdout
        assert "this machine runs linux/{}".format(runner.machine_arch()) in done.stdout
    finally:
        subprocess.run(["docker", "image", "rm", "--force", tag], stdout=subprocess.DEVNULL)


def test_a_failing_stage_is_reported_and_leaves_nothing_half_written(scratch_repo):
    set_params(scratch_repo, {"crop_faces.min_faces": 100000})
    done = dvc(scratch_repo, "repro", "crop_faces", check=False)
    assert done.returncode != 0
    assert "crop_faces failed" in done.stdout and "min_faces" in done.stdout, done.stdout
    assert "in a container of {}".format(IMAGE) in done.stdout
    assert not os.path.exists(os.path.join(scratch_repo, "data", "faces"))
    assert not os.path.exists(os.path.join(scratch_repo, "reports", "crop_metrics.json"))
    assert partials(os.path.join(scratch_repo, "data")) == []
    assert partials(os.path.join(scratch_repo, "reports")) == []


def wait_for_container(prefix, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        ids = subprocess.run(["docker", "ps", "--quiet", "--filter", "name=" + prefix],
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
        if ids:
            return ids[0]
        time.sleep(0.2)
    raise AssertionError("no container {}* appeared".format(prefix))


def container_gone(container, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter",
                                 "id=" + container], stdout=subprocess.PIPE,
                                universal_newlines=True).stdout.strip()
        if not listed:
            return True
        time.sleep(0.5)
    return False


@pytest.mark.parametrize("how", ["docker kill", "SIGTERM to the runner"])
def test_a_killed_container_is_reported_and_cleaned_up(scratch_repo, how):
    # float_model: its inputs are in scratch_repo, and loading the model takes seconds
    process = subprocess.Popen(stage_argv(scratch_repo, "float_model"), cwd=scratch_repo,
                               env=pipeline_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True)
    try:
        container = wait_for_container("facenet-float-model-", process)
        time.sleep(3)   # well into loading TensorFlow and the model
        if how == "docker kill":
            subprocess.run(["docker", "kill", container], stdout=subprocess.DEVNULL, check=True)
        else:
            process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, output
    if how == "docker kill":
        assert "float_model was killed (SIGKILL)" in output, output
    else:
        assert "interrupted by signal {}".format(int(signal.SIGTERM)) in output, output
    assert "Traceback" not in output
    assert container_gone(container)
    assert not os.path.exists(os.path.join(scratch_repo, "models", "facenet_float.tflite"))
    assert partials(os.path.join(scratch_repo, "models")) == []


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to hand the copy to another user "
                    "(as a non-root user, the other tests already show outputs are yours)")
def test_outputs_belong_to_a_non_root_invoking_user(scratch_repo):
    uid = gid = 4242
    for folder, dirs, files in os.walk(scratch_repo):
        for name in dirs + files:
            os.lchown(os.path.join(folder, name), uid, gid)
    os.lchown(scratch_repo, uid, gid)
    for out in ("data/faces", "reports/crop_metrics.json"):
        shutil.rmtree(os.path.join(scratch_repo, out), ignore_errors=True) \
            if out.endswith("faces") else os.remove(os.path.join(scratch_repo, out))
    runner.run_stage("crop_faces", IMAGE, stage_argv(scratch_repo, "crop_faces")[4:],
                     repo=scratch_repo, user=(uid, gid))
    for out in ("data/faces", "reports/crop_metrics.json"):
        path = os.path.join(scratch_repo, out)
        assert owners(path) | {os.lstat(path).st_uid} == {uid}, out
