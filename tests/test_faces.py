"""Pre-whitening and resizing as the seed does them."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from facenet_edgetpu.lib import faces


def test_prewhiten_matches_the_seed_formula():
    rng = np.random.RandomState(0)
    image = rng.uniform(0, 1, size=(4, 5, 3))
    mean, std = image.mean(), image.std()
    expected = ((image - mean) / max(std, 1.0 / np.sqrt(image.size))).astype(np.float32)
    result = faces.prewhiten(image)
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, expected)
    assert abs(float(result.mean())) < 1e-6 and abs(float(result.std()) - 1.0) < 1e-5


def test_prewhiten_of_a_flat_image_uses_the_std_floor():
    flat = np.full((2, 2, 3), 0.5)
    result = faces.prewhiten(flat)
    assert np.all(np.isfinite(result)) and np.all(result == 0)
    almost_flat = flat.copy()
    almost_flat[0, 0, 0] += 1e-6
    # std is far below 1/sqrt(12), so the floor divides: the result stays small.
    assert np.abs(faces.prewhiten(almost_flat)).max() < 1e-5


def test_model_input_resizes_like_skimage_reflect_and_maps_to_unit_range():
    rng = np.random.RandomState(1)
    image = rng.randint(0, 256, size=(37, 29, 3)).astype(np.uint8)
    result = faces.model_input(image, (160, 160))
    assert result.shape == (160, 160, 3) and result.dtype == np.float32
    resized = resize(image, (160, 160), mode="reflect")
    assert 0.0 <= resized.min() and resized.max() <= 1.0
    np.testing.assert_allclose(result, faces.prewhiten(resized), rtol=0, atol=1e-6)


def test_read_image_channel_order(tmp_path):
    import cv2
    image = np.zeros((3, 3, 3), dtype=np.uint8)
    image[..., 0] = 255  # blue in OpenCV's BGR order
    path = str(tmp_path / "blue.png")
    cv2.imwrite(path, image)
    assert faces.read_image(path, "bgr")[0, 0].tolist() == [255, 0, 0]
    assert faces.read_image(path, "rgb")[0, 0].tolist() == [0, 0, 255]
    with pytest.raises(faces.ImageError, match="not a readable image"):
        faces.read_image(str(tmp_path / "missing.png"))
