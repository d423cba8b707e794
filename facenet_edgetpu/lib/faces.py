"""Face preprocessing shared by every stage that feeds FaceNet: resize, then pre-whiten.

It follows the seed exactly: `skimage.transform.resize(mode='reflect')` (which also maps
uint8 pixels to 0..1), then per-image standardisation
`(x - mean) / max(std, 1 / sqrt(x.size))`, as float32.
"""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np
from skimage.transform import resize

from facenet_edgetpu.core.errors import PipelineError
from facenet_edgetpu.core.params import Field

CHANNEL_ORDERS = ("rgb", "bgr")
# `representative_dataset.channels`, which every stage that feeds faces to a model reads: the
# seed fed OpenCV's BGR order; the Keras FaceNet was trained on RGB images.
CHANNELS_FIELD = Field(str, choices=CHANNEL_ORDERS)


class ImageError(PipelineError, ValueError):
    """A file that should be an image could not be read as one."""


def read_image(path: str, channels: str = "rgb") -> np.ndarray:
    """Read a colour image as uint8 HxWx3 in the given channel order."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError("{}: not a readable image".format(path))
    if channels == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def prewhiten(image: np.ndarray) -> np.ndarray:
    """Per-image standardisation as in the seed; the std floor keeps flat images finite."""
    pixels = np.asarray(image, dtype=np.float64)
    std_floor = 1.0 / np.sqrt(pixels.size)
    whitened = (pixels - pixels.mean()) / max(pixels.std(), std_floor)
    return whitened.astype(np.float32)


def model_input(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize an HxWx3 uint8 face to `size` (height, width) and pre-whiten it."""
    resized = resize(image, size, mode="reflect")
    return prewhiten(resized)
