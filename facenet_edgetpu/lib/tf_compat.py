"""TensorFlow access shared by the stages that run it, the same under TF 1.15 and TF 2.x.

TensorFlow is imported on first use, so modules that only define schemas or pure functions
stay cheap to import.
"""
from __future__ import annotations

from typing import Any

# Every TensorFlow attribute path this module uses, for the TF 1.15 API check
# (tests/test_production_image.py).
TF_API = (
    "__version__",
    "executing_eagerly",
)


def tensorflow() -> Any:
    import tensorflow as tf

    return tf


def graph_mode(tf: Any = None) -> bool:
    """True under TF 1.x, or TF 2.x with eager execution disabled: use the v1 APIs then."""
    tf = tf or tensorflow()
    return int(tf.__version__.split(".")[0]) < 2 or not tf.executing_eagerly()
