"""lib/input_quantization.py: the model's input quantization and the seed's, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from facenet_edgetpu.lib import input_quantization as Q


# --- input quantization ---------------------------------------------------------------------

def test_seed_quantize_wraps_above_255():
    # scale = 255 / (2 - -1) = 85: -85 + 128 = 43; 128; 42.5 + 128 = 170.5 -> 170;
    # 170 + 128 = 298, which the uint8 cast wraps to 298 - 256 = 42.
    q = Q.seed_quantize(np.array([-1.0, 0.0, 0.5, 2.0], np.float32))
    assert q.dtype == np.uint8 and q.tolist() == [43, 128, 170, 42]
    assert Q.seed_wrapped(np.array([-1.0, 0.0, 0.5, 2.0])) == 1


def test_seed_quantize_wraps_below_0_and_truncates_towards_zero():
    # scale 85: -170 + 128 = -42 -> 256 - 42 = 214; 85 + 128 = 213.
    assert Q.seed_quantize(np.array([-2.0, 0.0, 1.0])).tolist() == [214, 128, 213]
    # scale 255 / 4: -2.02 -> -0.775, truncated to 0 (not floored to -1 -> 255);
    # 1.98 -> 254.225 -> 254.
    assert Q.seed_quantize(np.array([-2.02, 0.0, 1.98])).tolist() == [0, 128, 254]
    assert Q.seed_wrapped(np.array([-2.02, 0.0, 1.98])) == 0


def test_seed_quantize_matches_the_seeds_code_where_the_cast_is_defined():
    image = np.array([-1.0, -0.3, 0.2, 1.0])  # symmetric: nothing leaves 0..255
    scale = (255 - 0) / (image.max() - image.min())
    expected = (image * scale + 128).astype(np.uint8)
    assert Q.seed_quantize(image).tolist() == expected.tolist() == [0, 89, 153, 255]


def test_seed_quantize_of_a_constant_image_is_the_zero_point():
    assert Q.seed_quantize(np.full((2, 2), 0.7)).tolist() == [[128, 128], [128, 128]]


def test_model_quantize_rounds_half_away_from_zero_and_clips_uint8():
    x = np.array([0.25, -0.25, 0.75, 1.25, 200.0, -10.0], np.float32)
    q = Q.model_quantize(x, scale=0.5, zero_point=10, dtype=np.uint8)
    # x / 0.5 = .5, -.5, 1.5, 2.5 (np.round would give 2), 400, -20; + 10; clip to 0..255.
    assert q.dtype == np.uint8 and q.tolist() == [11, 9, 12, 13, 255, 0]


def test_model_quantize_int8():
    x = np.array([3.5, -3.5, 126.6, -128.4, -129.0, 1000.0])
    q = Q.model_quantize(x, scale=1.0, zero_point=0, dtype=np.int8)
    assert q.dtype == np.int8 and q.tolist() == [4, -4, 127, -128, -128, 127]


def test_dequantize():
    assert Q.dequantize(np.array([141, 0, 255], np.uint8), 0.5, 141).tolist() == \
        [0.0, -70.5, 57.0]


def test_seed_input_for_int8_models_shifts_by_128():
    q = np.array([0, 128, 255], np.uint8)
    assert Q.seed_input_for(np.uint8, q) is q
    shifted = Q.seed_input_for(np.int8, q)
    assert shifted.dtype == np.int8 and shifted.tolist() == [-128, 0, 127]
    with pytest.raises(Q.QuantizedInputError):
        Q.seed_input_for(np.float32, q)
