"""The seed's crop rules, the skip counts, and the error for too few faces."""
from __future__ import annotations

import os
import shutil

import cv2
import numpy as np
import pytest

from facenet_edgetpu.stages import crop_faces
from facenet_edgetpu.stages.crop_faces import CropError

PARAMS = dict(scale_factor=1.1, min_neighbors=3, min_size=40, margin=10, max_faces=300,
              min_faces=1, seed=0)


def test_widest_detection_wins_and_ties_keep_the_first():
    assert crop_faces.widest([(0, 0, 10, 50), (5, 5, 30, 30), (9, 9, 30, 12)]) == (5, 5, 30, 30)
    assert crop_faces.widest([]) is None


@pytest.mark.parametrize("face, expected", [
    ((10, 20, 100, 100), (5, 15, 110, 110)),   # 5 px on each side
    ((5, 5, 100, 100), (0, 0, 110, 110)),      # touches the top-left corner: kept
    ((4, 20, 100, 100), None),                 # left edge would be -1
    ((10, 4, 100, 100), None),                 # top edge would be -1
    ((95, 20, 100, 100), None),                # right edge 200 > width 199
    ((10, 96, 100, 100), None),                # bottom edge 201 > height 200
])
def test_margin_box_follows_the_seed(face, expected):
    assert crop_faces.margin_box(face, 10, (200, 199, 3)) == expected


def test_odd_margin_is_split_like_the_seed():
    # The seed uses margin // 2 on each side, so an odd margin loses one pixel.
    assert crop_faces.margin_box((10, 10, 20, 20), 7, (100, 100, 3)) == (7, 7, 26, 26)


def photos_subset(src, dst, per_person):
    for split in ("train", "val"):
        for person in sorted(os.listdir(os.path.join(src, split))):
            os.makedirs(os.path.join(dst, split, person))
            for name in sorted(os.listdir(os.path.join(src, split, person)))[:per_person]:
                shutil.copy(os.path.join(src, split, person, name), os.path.join(dst, split, person))
    return dst


def test_real_photos_give_crops_manifest_and_counts(default_inputs, tmp_path):
    _, photos = default_inputs
    out = str(tmp_path / "faces")
    manifest, metrics = crop_faces.crop_all(photos, out, PARAMS)
    train = metrics["train"]
    assert train["photos"] == 93 and metrics["val"]["photos"] == 25
    assert train["cropped"] + train["no_face"] + train["margin_outside_image"] + \
        train["unreadable"] + train["not_tried"] == train["photos"]
    assert train["cropped"] >= 75 and metrics["val"]["cropped"] >= 20
    assert len(manifest) == train["cropped"] + metrics["val"]["cropped"]
    for entry in manifest:
        crop = cv2.imread(os.path.join(out, entry["crop"]))
        x, y, w, h = entry["box"]
        assert crop.shape == (h, w, 3)
        assert w >= PARAMS["min_size"] + PARAMS["margin"]
        source = cv2.imread(os.path.join(photos, entry["photo"]))
        assert np.array_equal(crop, source[y:y + h, x:x + w])
        assert entry["crop"].startswith(entry["split"] + "/" + entry["person"] + "/")


def test_seed_minimum_size_gives_few_faces(default_inputs, tmp_path):
    # The brief measured 30 crops of the 118 photos with the seed's 160 px minimum.
    _, photos = default_inputs
    _, metrics = crop_faces.crop_all(photos, str(tmp_path), dict(PARAMS, min_size=160))
    assert metrics["train"]["cropped"] + metrics["val"]["cropped"] == 30


def test_unreadable_files_are_skipped_and_counted(default_inputs, tmp_path):
    _, photos = default_inputs
    subset = photos_subset(photos, str(tmp_path / "photos"), per_person=2)
    with open(os.path.join(subset, "train", "madonna", "notes.txt"), "w") as handle:
        handle.write("not an image")
    with open(os.path.join(subset, "train", "madonna", "broken.jpg"), "wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0 truncated jpeg")
    manifest, metrics = crop_faces.crop_all(subset, str(tmp_path / "faces"), PARAMS)
    assert metrics["train"]["unreadable"] == 2
    assert metrics["train"]["photos"] == 12
    assert all("notes" not in entry["photo"] and "broken" not in entry["photo"]
               for entry in manifest)


def test_max_faces_caps_each_split_and_the_shuffle_is_seeded(default_inputs, tmp_path):
    _, photos = default_inputs
    first, metrics = crop_faces.crop_all(photos, str(tmp_path / "a"), dict(PARAMS, max_faces=5))
    again, _ = crop_faces.crop_all(photos, str(tmp_path / "b"), dict(PARAMS, max_faces=5))
    other, _ = crop_faces.crop_all(photos, str(tmp_path / "c"), dict(PARAMS, max_faces=5, seed=1))
    assert metrics["train"]["cropped"] == 5 and metrics["val"]["cropped"] == 5
    assert metrics["train"]["not_tried"] > 0
    assert first == again
    assert [e["photo"] for e in first] != [e["photo"] for e in other]


def test_too_few_faces_names_the_folder_and_the_params(default_inputs, tmp_path):
    _, photos = default_inputs
    subset = photos_subset(photos, str(tmp_path / "photos"), per_person=1)
    with pytest.raises(CropError, match=r"from the 5 photos in .*photos/train.*min_faces is 50"
                                        r".*crop_faces.min_size"):
        crop_faces.crop_all(subset, str(tmp_path / "faces"), dict(PARAMS, min_faces=50))


def test_photos_outside_person_folders_are_refused(tmp_path):
    os.makedirs(str(tmp_path / "photos" / "train"))
    os.makedirs(str(tmp_path / "photos" / "val"))
    (tmp_path / "photos" / "train" / "loose.jpg").write_bytes(b"x")
    with pytest.raises(CropError, match="loose.jpg: photos must sit in"):
        crop_faces.list_photos(str(tmp_path / "photos"), "train")


def test_missing_split_folder_is_explained(tmp_path):
    with pytest.raises(CropError, match="val is missing"):
        crop_faces.list_photos(str(tmp_path), "val")
