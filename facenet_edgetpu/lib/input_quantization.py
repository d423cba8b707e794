"""Feeding float faces to a quantized model: the model's own input quantization, the seed
article's hand-made one, and reading quantized outputs back (numpy only)."""
from __future__ import annotations

from typing import Any

import numpy as np

from facenet_edgetpu.core.errors import PipelineError


class QuantizedInputError(PipelineError, ValueError):
    """The quantized model takes an input type the evaluation cannot feed."""


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves away from zero (std::round, as TFLite rounds)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def model_quantize(x: np.ndarray, scale: float, zero_point: int, dtype: Any = np.uint8
                   ) -> np.ndarray:
    """Quantize a float input with the model's own scale and zero point.

    As TFLite's QUANTIZE op: zero_point + round(x / scale) with x / scale in float32 and
    halves rounded away from zero, then clipped to the range of `dtype` (uint8 or int8).
    """
    info = np.iinfo(dtype)
    ratio = np.asarray(x, np.float32) / np.float32(scale)
    q = round_half_away(ratio.astype(np.float64)) + int(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Real values of a quantized tensor: scale * (q - zero_point)."""
    return float(scale) * (np.asarray(q, np.float64) - int(zero_point))


def seed_quantize(x: np.ndarray) -> np.ndarray:
    """The seed's hand-made input quantization (000_*, section 3), arithmetic reproduced.

    The seed computes, on each pre-whitened image (float64),

        scale = (255 - 0) / (x.max() - x.min())
        q = (x * scale + 128).astype(np.uint8)

    i.e. the image's full range is made 255 wide but is centred on 128 rather than shifted
    to start at 0. Whenever the image is not symmetric around 0 (max != -min), one end leaves
    0..255. `astype(np.uint8)` does not clip: on x86-64 numpy converts through a wide integer,
    so it truncates towards zero and keeps the low 8 bits, i.e. wraps modulo 256 (-1.5 -> 255,
    256.3 -> 0, 269.7 -> 13): the brightest (or darkest) pixels turn into their opposite. That
    conversion is undefined behaviour in C, so other CPUs (the seed ran on an ARM board) may
    differ; this function spells the x86-64 result out so it is the same everywhere.
    A constant image (max == min) would divide by zero in the seed; here it maps to 128.
    """
    return np.mod(np.trunc(_seed_values(x)), 256).astype(np.uint8)


def _seed_values(x: np.ndarray) -> np.ndarray:
    """The seed's values before its uint8 cast: x * 255 / (max - min) + 128, in float64."""
    x = np.asarray(x, dtype=np.float64)
    spread = float(x.max() - x.min())
    scale = (255 - 0) / spread if spread > 0 else 0.0
    return x * scale + 128


def seed_wrapped(x: np.ndarray) -> int:
    """How many values of `x` the seed's uint8 cast wraps (outside 0..255 once truncated)."""
    truncated = np.trunc(_seed_values(x))
    return int(np.sum((truncated < 0) | (truncated > 255)))


def seed_input_for(dtype: Any, q_uint8: np.ndarray) -> np.ndarray:
    """The seed's uint8 input for a model whose input is `dtype` (uint8, or int8: q - 128)."""
    if np.dtype(dtype) == np.uint8:
        return q_uint8
    if np.dtype(dtype) == np.int8:
        return (q_uint8.astype(np.int16) - 128).astype(np.int8)
    raise QuantizedInputError("the quantized model's input is {}; expected uint8 or int8".format(
        np.dtype(dtype).name))
