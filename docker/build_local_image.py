"""Build the registry-free toolchain image: `make image-local`
(or `python docker/build_local_image.py`).

No container registry is needed, only Debian's package mirror and the Python package index:

1. the locked wheels of the local toolchain (requirements/pipeline.lock) are downloaded on
   the host into a wheelhouse keyed on the lock's sha256 (pip checks every hash, for the
   image's Python and platform, not the host's);
2. debootstrap makes a minimal Debian root file system with Python (RELEASE, PACKAGES);
   it is kept as a tarball in the cache, keyed on the recipe;
3. `docker import` turns the tarball into a base image, tagged with the same key;
4. `docker build --network none` (docker/local.Dockerfile) installs them into /opt/venv
   without network, with `--require-hashes`.

The image is tagged `facenet-edgetpu-local:<key>`, where the key is a hash of the rootfs
recipe, the lock and the Dockerfile, and `facenet-edgetpu-local:latest` (what params.yaml's
runner.image names). A second build with the same inputs finds the tag and does nothing;
after `docker image rm` it is loaded again from a `docker save` kept in the cache (same image
id, so nothing reruns), and when only the lock changed the cached root file system is reused.
Each step writes to a temporary path and renames it into place, so an interrupted or failed
build (e.g. a hash that does not match the lock) leaves nothing half-written behind.

Environment: FACENET_CACHE (default ~/.cache/facenet-edgetpu), DEBIAN_MIRROR.
debootstrap needs root: the script uses sudo when it does not run as root.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Iterator

from facenet_edgetpu.core.artifacts import sha256_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK = os.path.join(REPO, "requirements", "pipeline.lock")
DOCKERFILE = os.path.join(REPO, "docker", "local.Dockerfile")
IMAGE = "facenet-edgetpu-local"
BASE_IMAGE = "facenet-edgetpu-base"

# The root file system. bookworm's python3 is 3.11, the local toolchain's minor version
# (bullseye has 3.9, trixie 3.13; the locked wheels are cp311).
RELEASE = "bookworm"
PYTHON = "3.11"
GLIBC = (2, 36)                      # bookworm's; the newest manylinux tag its wheels may use
PACKAGES = ("python3", "python3-venv", "ca-certificates")
VARIANT = "minbase"
RECIPE_VERSION = 1                   # bump to force a new root file system
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


class BuildError(RuntimeError):
    pass


def log(message: str) -> None:
    print("image-local: " + message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    log(what + " ...")
    start = time.monotonic()
    yield
    log("{} done in {:.0f} s".format(what, time.monotonic() - start))


def cache_dir() -> str:
    default = os.path.join(os.path.expanduser("~"), ".cache", "facenet-edgetpu")
    return os.environ.get("FACENET_CACHE", default)


def key_of(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def debian_arch() -> str:
    machine = platform.machine()
    if machine not in DEBIAN_ARCH:
        raise BuildError("no Debian architecture known for {}".format(machine))
    return DEBIAN_ARCH[machine]


def rootfs_key() -> str:
    return key_of("rootfs", RELEASE, sorted(PACKAGES), VARIANT, debian_arch(), RECIPE_VERSION)


def image_key(lock: str = LOCK) -> str:
    return key_of("image", rootfs_key(), sha256_of(lock), sha256_of(DOCKERFILE))


def run(command, what: str, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, **kwargs)
    if done.returncode != 0:
        raise BuildError("{} failed (exit {}): {}\n{}".format(
            what, done.returncode, " ".join(command), done.stdout.strip()[-4000:]))
    return done


def as_root(command):
    if os.geteuid() == 0:
        return list(command)
    if shutil.which("sudo") is None:
        raise BuildError("debootstrap needs root: run as root or install sudo")
    return ["sudo", "--"] + list(command)


def docker_has(reference: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", reference], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def check_docker() -> None:
    if shutil.which("docker") is None:
        raise BuildError("the `docker` command is not installed (https://docs.docker.com/engine/"
                         "install/)")
    done = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if done.returncode != 0:
        raise BuildError("the Docker engine is not reachable: {}. Start it (e.g. `sudo "
                         "systemctl start docker`).".format(done.stderr.strip()))


def configured_debian_mirror(sources_dir: str = "/etc/apt") -> str:
    """The Debian archive this machine's apt uses (deb822 `URIs:` or one-line `deb` entries).

    Taking it from the host's apt configuration keeps the image on the same mirror as the
    machine, with no host name written into the project.
    """
    paths = [os.path.join(sources_dir, "sources.list")]
    parts = os.path.join(sources_dir, "sources.list.d")
    if os.path.isdir(parts):
        paths += [os.path.join(parts, name) for name in sorted(os.listdir(parts))
                  if name.endswith((".list", ".sources"))]
    candidates = []
    for path in filter(os.path.isfile, paths):
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                words = line.split("#", 1)[0].split()
                if words[:1] == ["URIs:"]:
                    candidates.extend(words[1:])
                elif words[:1] == ["deb"]:
                    candidates.extend(word for word in words[1:] if "://" in word)
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    raise BuildError("no Debian archive found in {}/sources.list(.d); set DEBIAN_MIRROR to the "
                     "archive debootstrap should use".format(sources_dir))


def build_rootfs(tarball: str) -> None:
    """debootstrap into a temporary folder, clean it, tar it, rename the tar into place."""
    if shutil.which("debootstrap") is None:
        raise BuildError("debootstrap is not installed: `sudo apt-get install -y debootstrap` "
                         "(Debian/Ubuntu), then run again")
    mirror = os.environ.get("DEBIAN_MIRROR") or configured_debian_mirror()
    os.makedirs(os.path.dirname(tarball), exist_ok=True)
    work = tempfile.mkdtemp(prefix=".rootfs-", dir=os.path.dirname(tarball))
    rootfs = os.path.join(work, "rootfs")
    partial = tarball + ".partial"
    try:
        log("debootstrap {} ({}) from {}".format(RELEASE, ", ".join(PACKAGES), mirror))
        run(as_root(["debootstrap", "--variant=" + VARIANT, "--arch=" + debian_arch(),
                     "--include=" + ",".join(PACKAGES), RELEASE, rootfs, mirror]),
            "debootstrap")
        run(as_root(["sh", "-c", "rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* "
                     "var/log/* tmp/* dev/* proc/* sys/*", "clean"]), "cleaning the rootfs",
            cwd=rootfs)
        run(as_root(["tar", "--numeric-owner", "--sort=name", "-C", rootfs, "-cf", partial, "."]),
            "tar of the rootfs")
        if os.geteuid() != 0:
            run(as_root(["chown", "{}:{}".format(os.getuid(), os.getgid()), partial]), "chown")
        os.replace(partial, tarball)
    finally:
        run(as_root(["rm", "-rf", work]), "removing the temporary rootfs")
        if os.path.exists(partial):
            os.remove(partial)


def wheel_platforms():
    """pip's --platform values for manylinux wheels that run on GLIBC (newest first)."""
    arch = platform.machine()
    tags = ["manylinux_{}_{}_{}".format(GLIBC[0], minor, arch)
            for minor in range(GLIBC[1], 16, -1)]
    return tags + ["manylinux2014_" + arch, "manylinux2010_" + arch, "manylinux1_" + arch]


def download_wheels(lock: str, wheelhouse: str) -> None:
    """pip download every locked wheel for the image's Python, checked against the lock."""
    os.makedirs(os.path.dirname(wheelhouse), exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".wheels-", dir=os.path.dirname(wheelhouse))
    try:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--require-hashes", "--only-binary", ":all:", "--python-version", PYTHON,
                   "--implementation", "cp", "--abi", "cp" + PYTHON.replace(".", ""),
                   "--dest", partial, "-r", lock]
        for tag in wheel_platforms():
            command += ["--platform", tag]
        run(command, "pip download of the locked wheels (a hash mismatch means the lock or "
                     "the index changed: re-lock with `make lock`, never edit the hash)")
        os.replace(partial, wheelhouse)
    finally:
        if os.path.exists(partial):
            shutil.rmtree(partial)
    prefix = os.path.basename(wheelhouse).split("-")[0] + "-"
    for name in os.listdir(os.path.dirname(wheelhouse)):   # wheelhouses of older locks
        if name.startswith(prefix) and name != os.path.basename(wheelhouse):
            shutil.rmtree(os.path.join(os.path.dirname(wheelhouse), name))


def build_image(base: str, lock: str, wheelhouse: str, tag: str, labels) -> None:
    context = tempfile.mkdtemp(prefix=".context-", dir=os.path.dirname(wheelhouse))
    try:
        os.mkdir(os.path.join(context, "wheels"))
        for name in os.listdir(wheelhouse):
            source, target = os.path.join(wheelhouse, name), os.path.join(context, "wheels", name)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        shutil.copy2(lock, os.path.join(context, "pipeline.lock"))
        shutil.copy2(DOCKERFILE, os.path.join(context, "Dockerfile"))
        command = ["docker", "build", "--network", "none", "--build-arg", "BASE=" + base,
                   "--tag", tag]
        for key, value in sorted(labels.items()):
            command += ["--label", "{}={}".format(key, value)]
        run(command + [context], "docker build")
    finally:
        shutil.rmtree(context)
        # the install stage (wheels and all) is not needed once the image exists
        subprocess.run(["docker", "image", "prune", "--force", "--filter",
                        "label=facenet-edgetpu.stage=install"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def save_image(tag: str, saved: str) -> None:
    """`docker save | gzip` to `saved` (renamed into place); older saved images are removed."""
    partial = saved + ".partial"
    try:
        run(["bash", "-c", 'set -o pipefail; docker save "$1" | gzip -1 > "$2"', "save", tag,
             partial], "docker save")
        os.replace(partial, saved)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    folder = os.path.dirname(saved)
    for name in os.listdir(folder):
        if name.startswith(IMAGE + "-") and os.path.join(folder, name) != saved:
            os.remove(os.path.join(folder, name))


def build(lock: str = LOCK, tag_latest: bool = True, save: bool = True) -> str:
    """Build (or find, or load) the image for `lock`; return its tag."""
    start = time.monotonic()
    check_docker()
    key = image_key(lock)
    tag = "{}:{}".format(IMAGE, key)
    cache = cache_dir()
    saved = os.path.join(cache, "images", "{}-{}.tar.gz".format(IMAGE, key))
    if docker_has(tag):
        log("{} is up to date".format(tag))
    elif os.path.exists(saved):
        with step("docker load {}".format(saved)):
            run(["docker", "load", "--quiet", "--input", saved], "docker load")
    else:
        # the wheels first: a lock that does not match the index stops the build early
        lock_hash = sha256_of(lock)
        wheelhouse = os.path.join(cache, "wheelhouse", "cp{}-{}".format(
            PYTHON.replace(".", ""), lock_hash[:16]))
        if not os.path.isdir(wheelhouse):
            with step("pip download of the locked wheels"):
                download_wheels(lock, wheelhouse)
        else:
            log("using the cached wheelhouse {}".format(wheelhouse))
        rkey = rootfs_key()
        base = "{}:{}-{}".format(BASE_IMAGE, RELEASE, rkey)
        if not docker_has(base):
            tarball = os.path.join(cache, "rootfs", "debian-{}-{}.tar".format(RELEASE, rkey))
            if not os.path.exists(tarball):
                with step("debootstrap of the root file system"):
                    build_rootfs(tarball)
            else:
                log("using the cached root file system {}".format(tarball))
            with step("docker import {}".format(base)):
                run(["docker", "import", "--message", "debootstrap {} {}".format(
                    RELEASE, " ".join(PACKAGES)), tarball, base], "docker import")
        with step("docker build (no network) of {}".format(tag)):
            build_image(base, lock, wheelhouse, tag, {
                "facenet-edgetpu.key": key, "facenet-edgetpu.lock-sha256": lock_hash,
                "facenet-edgetpu.base": base})
        if save:
            os.makedirs(os.path.dirname(saved), exist_ok=True)
            with step("docker save to {}".format(saved)):
                save_image(tag, saved)
    if tag_latest:
        run(["docker", "tag", tag, IMAGE + ":latest"], "docker tag")
    info = json.loads(run(["docker", "image", "inspect", "--format", "{{json .}}", tag],
                          "docker image inspect").stdout)
    log("{} ({}) id {} size {:.0f} MB, {:.0f} s".format(
        tag, IMAGE + ":latest" if tag_latest else "not tagged latest", info["Id"],
        info["Size"] / 1e6, time.monotonic() - start))
    return tag


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", default=LOCK, help="the lock to install (default: %(default)s)")
    parser.add_argument("--no-save", action="store_true",
                        help="do not keep a `docker save` of a new image in the cache")
    parser.add_argument("--print-tag", action="store_true",
                        help="print the tag the inputs give, build nothing")
    args = parser.parse_args(argv)
    if args.print_tag:
        print("{}:{}".format(IMAGE, image_key(args.lock)))
        return 0
    try:
        print(build(os.path.abspath(args.lock), tag_latest=os.path.abspath(args.lock) == LOCK,
                    save=not args.no_save))
    except BuildError as error:
        log("error: {}".format(error))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
