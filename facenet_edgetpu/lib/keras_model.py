"""The Keras model of an h5, ready to convert: batch size 1, inference mode, and (for the
conversion) every batch normalization folded exactly (lib/bn_fold.py)."""
from __future__ import annotations

import json
from typing import Any, List, Mapping, Optional, Tuple

from facenet_edgetpu.lib.bn_fold import fold_batch_norms, layer_weights
from facenet_edgetpu.lib.keras_loader import load_model, prepared_config
from facenet_edgetpu.lib.tf_compat import graph_mode, tensorflow

# Every TensorFlow attribute path this module uses, for the TF 1.15 API check
# (tests/test_production_image.py).
TF_API = (
    "compat.v1.keras.backend.clear_session",
    "compat.v1.keras.backend.set_learning_phase",
    "keras.backend.clear_session",
    "keras.models.model_from_json",
)


def fresh_session() -> Any:
    """A new Keras graph/session in inference mode; returns tensorflow. Names of the layers
    built next are those of the config (an old graph would suffix them with _1)."""
    tf = tensorflow()
    if graph_mode(tf):
        tf.compat.v1.keras.backend.clear_session()
        tf.compat.v1.keras.backend.set_learning_phase(0)
    else:
        tf.keras.backend.clear_session()
    return tf


def load_keras_model(h5_path: str, lambda_functions: Optional[Mapping[str, str]] = None) -> Any:
    """The Keras model with batch size 1 (the Edge TPU needs a static batch), in inference mode."""
    fresh_session()
    return load_model(h5_path, lambda_sources=lambda_functions, batch_size=1)


def load_folded_keras_model(h5_path: str, lambda_functions: Optional[Mapping[str, str]] = None
                            ) -> Tuple[Any, List[str]]:
    """(model, removed batch norms): the Keras model with every batch normalization folded
    into the layer before it in float64, batch size 1, inference mode."""
    original = load_keras_model(h5_path, lambda_functions)
    config, objects = prepared_config(h5_path, lambda_functions, batch_size=1)
    folded_config, weights, removed = fold_batch_norms(config, layer_weights(original))
    del original
    model = fresh_session().keras.models.model_from_json(json.dumps(folded_config),
                                                         custom_objects=objects)
    for layer in model.layers:
        if layer.name in weights and weights[layer.name]:
            layer.set_weights(weights[layer.name])
    return model, removed
