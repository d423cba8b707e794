"""TensorFlow access shared by the stages that run it, the same under TF 1.15 and TF 2.x.

TensorFlow is imported on first use, so modules that only define schemas or pure functions
stay cheap to import.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from facenet_edgetpu.lib.keras_loader import load_model


def tensorflow() -> Any:
    import tensorflow as tf

    return tf


def graph_mode(tf: Any = None) -> bool:
    """True under TF 1.x, or TF 2.x with eager execution disabled: use the v1 APIs then."""
    tf = tf or tensorflow()
    return int(tf.__version__.split(".")[0]) < 2 or not tf.executing_eagerly()


def load_keras_model(h5_path: str, lambda_functions: Optional[Mapping[str, str]] = None) -> Any:
    """The Keras model with batch size 1 (the Edge TPU needs a static batch), in inference mode."""
    tf = tensorflow()
    if graph_mode(tf):
        tf.compat.v1.keras.backend.clear_session()
        tf.compat.v1.keras.backend.set_learning_phase(0)
    else:
        tf.keras.backend.clear_session()
    return load_model(h5_path, lambda_sources=lambda_functions, batch_size=1)
