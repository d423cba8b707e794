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
                shutil.copy(os.path.join(src, split, person, name),
                            os.path.join(dst, split, person))
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
    # 6 val faces of 5 people always hold a same-person pair, which crop_all requires of val.
    first, metrics = crop_faces.crop_all(photos, str(tmp_path / "a"), dict(PARAMS, max_faces=6))
    again, _ = crop_faces.crop_all(photos, str(tmp_path / "b"), dict(PARAMS, max_faces=6))
    other, _ = crop_faces.crop_all(photos, str(tmp_path / "c"), dict(PARAMS, max_faces=6, seed=1))
    assert metrics["train"]["cropped"] == 6 and metrics["val"]["cropped"] == 6
    assert metrics["train"]["not_tried"] > 0
    assert first == again
    assert [e["photo"] for e in first] != [e["photo"] for e in other]


def test_too_few_faces_names_the_folder_and_the_params(default_inputs, tmp_path):
    _, photos = default_inputs
    subset = photos_subset(photos, str(tmp_path / "photos"), per_person=1)
    # A second val photo of one person: the val layout the evaluation needs (a same-person pair).
    val_madonna = os.path.join(photos, "val", "madonna")
    second = sorted(os.listdir(val_madonna))[1]
    shutil.copy(os.path.join(val_madonna, second), os.path.join(subset, "val", "madonna"))
    with pytest.raises(CropError, match=r"from the 5 photos in .*photos/train.*min_faces is 50"
                                        r".*crop_faces.min_size"):
        crop_faces.crop_all(subset, str(tmp_path / "faces"), dict(PARAMS, min_faces=50))


def test_photos_outside_person_folders_are_refused(tmp_path):
    os.makedirs(str(tmp_path / "photos" / "train"))
    os.makedirs(str(tmp_path / "photos" / "val"))
    (tmp_path / "photos" / "train" / "loose.jpg").write_bytes(b"x")
    with pytest.raises(CropError, match="loose.jpg: photos must sit in"):
        crop_faces.person_photos(str(tmp_path / "photos"), "train")


def test_missing_split_folder_is_explained(tmp_path):
    with pytest.raises(CropError, match="val is missing"):
        crop_faces.person_photos(str(tmp_path), "val")


def test_photos_differing_only_in_extension_get_a_crop_each(default_inputs, tmp_path):
    """dup.jpg and dup.png in one person folder: two crops, two manifest entries, one each."""
    _, photos = default_inputs
    subset = photos_subset(photos, str(tmp_path / "photos"), per_person=2)
    person = os.path.join(subset, "train", "madonna")
    face = cv2.imread(os.path.join(person, sorted(os.listdir(person))[0]))
    assert cv2.imwrite(os.path.join(person, "dup.jpg"), face)
    assert cv2.imwrite(os.path.join(person, "dup.png"), cv2.flip(face, 1))   # another picture
    out = str(tmp_path / "faces")
    manifest, metrics = crop_faces.crop_all(subset, out, PARAMS)
    dups = sorted(entry["crop"] for entry in manifest if "/dup." in entry["crop"])
    assert dups == ["train/madonna/dup.jpg.png", "train/madonna/dup.png.png"]
    on_disk = [os.path.join(root, name) for root, _, names in os.walk(out) for name in names]
    assert len(on_disk) == len(manifest) == metrics["train"]["cropped"] + \
        metrics["val"]["cropped"]
    assert len({entry["crop"] for entry in manifest}) == len(manifest)
    # Each crop is of its own photo: the flipped picture gives the mirrored crop.
    crops = [cv2.imread(os.path.join(out, crop)) for crop in dups]
    assert not np.array_equal(crops[0], crops[1])


def photos_with_train_only(default_inputs, tmp_path):
    _, photos = default_inputs
    subset = photos_subset(photos, str(tmp_path / "photos"), per_person=2)
    shutil.rmtree(os.path.join(subset, "val"))
    return subset


@pytest.mark.parametrize("val_layout, message", [
    (None, r"photos/val is missing: the photos folder \(inputs.photos in params.yaml\) must hold"),
    ({}, r"photos/val holds no person folders"),
    ({"ann": 0, "bob": 2}, r"photos/val/ann holds no photos: put the person's photos in it"),
    ({"ann": 2}, r"photos/val holds 2 photos of 1 person; the fidelity stage's face verification "
                 r"needs photos of at least two people and two photos of one person"),
    ({"ann": 1, "bob": 1}, r"photos/val holds 2 photos of 2 people"),
])
def test_a_val_split_that_cannot_be_evaluated_is_refused_before_any_cropping(
        default_inputs, tmp_path, val_layout, message):
    subset = photos_with_train_only(default_inputs, tmp_path)
    if val_layout is not None:
        os.makedirs(os.path.join(subset, "val"))
        source = os.path.join(subset, "train", "madonna")
        for person, count in val_layout.items():
            os.makedirs(os.path.join(subset, "val", person))
            for name in sorted(os.listdir(source))[:count]:
                shutil.copy(os.path.join(source, name), os.path.join(subset, "val", person))
    out = tmp_path / "faces"
    out.mkdir()
    with pytest.raises(CropError, match=message):
        crop_faces.crop_all(subset, str(out), PARAMS)
    assert list(out.iterdir()) == []   # no train photo was cropped first


def test_val_crops_that_cannot_be_evaluated_stop_the_stage(default_inputs, tmp_path):
    """The val photos are enough, but the detector finds faces of one person only."""
    subset = photos_with_train_only(default_inputs, tmp_path)
    val = os.path.join(subset, "val")
    source = os.path.join(subset, "train", "madonna")
    shutil.copytree(source, os.path.join(val, "madonna"))
    os.makedirs(os.path.join(val, "nobody"))
    cv2.imwrite(os.path.join(val, "nobody", "blank.png"), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(CropError, match=r"photos/val gave 2 faces of 1 person; the fidelity "
                                        r"stage's face verification needs faces of at least two "
                                        r"people.*crop_faces.min_size is 40 px"):
        crop_faces.crop_all(subset, str(tmp_path / "faces"), PARAMS)


def test_hidden_files_are_not_photos(default_inputs, tmp_path):
    _, photos = default_inputs
    subset = photos_subset(photos, str(tmp_path / "photos"), per_person=2)
    for folder in ("train", os.path.join("train", "madonna"), os.path.join("val", "madonna")):
        with open(os.path.join(subset, folder, ".DS_Store"), "wb") as handle:
            handle.write(b"\0\0\0\1Bud1")
    layout = crop_faces.check_layout(subset)
    assert len(layout["train"]) == len(layout["val"]) == 10
    assert not any(".DS_Store" in photo for photos in layout.values() for photo in photos)


def test_a_missing_photos_folder_says_what_to_set(tmp_path):
    with pytest.raises(CropError, match=r"nowhere not found: the photos folder \(inputs.photos "
                                        r"in params.yaml\).*run fetch_inputs"):
        crop_faces.check_layout(str(tmp_path / "nowhere"))
