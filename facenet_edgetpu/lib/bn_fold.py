"""Fold each BatchNormalization into the Conv2D / Dense layer before it, exactly (numpy only).

Why: the TFLite converter folds batch normalization itself, as w * (gamma * rsqrt(var + eps)),
with TensorFlow's Rsqrt kernel. That kernel uses the CPU's approximate reciprocal square root,
whose last bits differ between CPUs: the same h5 gave float models (and so quantized models)
that differed by 1-4 ULP in every folded weight from one machine to another. Folding here, in
float64 and rounding once to float32, gives the same constants on every machine, and the
converter then has no batch normalization left to fold.

`fold_batch_norms` works on the Keras model config (the JSON of a saved h5) and the layers'
weights: a BatchNormalization whose only input is a Conv2D or Dense layer with no activation,
used by nothing else, over the last axis, disappears; the layer before it gets a bias and the
folded weights; every reference to the removed layer points at the layer before it instead.
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

FOLDABLE = ("Conv2D", "Dense")
Weights = Dict[str, List[np.ndarray]]


def _layers(config: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return config["config"]["layers"]


def _inbound_names(layer: Mapping[str, Any]) -> List[str]:
    return [str(link[0]) for node in layer.get("inbound_nodes") or [] for link in node]


def _consumers(config: Mapping[str, Any]) -> Dict[str, int]:
    """Layer name -> how many times other layers or the model outputs use it."""
    counts = {}  # type: Dict[str, int]
    for layer in _layers(config):
        for name in _inbound_names(layer):
            counts[name] = counts.get(name, 0) + 1
    for output in config["config"].get("output_layers") or []:
        counts[str(output[0])] = counts.get(str(output[0]), 0) + 1
    return counts


def foldable_pairs(config: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """(layer, batch norm) pairs that fold exactly, in the config's order."""
    by_name = {layer["config"]["name"]: layer for layer in _layers(config)}
    consumers = _consumers(config)
    pairs = []
    for layer in _layers(config):
        if layer["class_name"] != "BatchNormalization":
            continue
        nodes = layer.get("inbound_nodes") or []
        if len(nodes) != 1 or len(nodes[0]) != 1:
            continue
        source = by_name.get(str(nodes[0][0][0]))
        if source is None or source["class_name"] not in FOLDABLE:
            continue
        axis = layer["config"].get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 3 if source["class_name"] == "Conv2D" else 1) or \
                source["config"].get("activation", "linear") != "linear" or \
                len(source.get("inbound_nodes") or []) != 1 or \
                consumers.get(source["config"]["name"], 0) != 1:
            continue
        pairs.append((source["config"]["name"], layer["config"]["name"]))
    return pairs


def batch_norm_factors(config: Mapping[str, Any], weights: Sequence[np.ndarray]
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """(multiplier, offset) per channel, in float64: y = x * multiplier + offset."""
    arrays = [np.asarray(w, dtype=np.float64) for w in weights]
    gamma = arrays.pop(0) if config.get("scale", True) else None
    beta = arrays.pop(0) if config.get("center", True) else None
    mean, variance = arrays
    epsilon = np.float64(np.float32(config.get("epsilon", 1e-3)))  # Keras adds it in float32
    multiplier = 1.0 / np.sqrt(variance + epsilon)
    if gamma is not None:
        multiplier = multiplier * gamma
    offset = -mean * multiplier + (beta if beta is not None else 0.0)
    return multiplier, offset


def fold_batch_norms(config: Mapping[str, Any], weights: Mapping[str, Sequence[np.ndarray]]
                     ) -> Tuple[Dict[str, Any], Weights, List[str]]:
    """(config, weights by layer name, removed batch norms) with every foldable pair folded."""
    folded = copy.deepcopy(dict(config))
    new_weights = {name: list(arrays) for name, arrays in weights.items()}
    pairs = foldable_pairs(folded)
    replaced = {norm: source for source, norm in pairs}
    by_name = {layer["config"]["name"]: layer for layer in _layers(folded)}
    for source, norm in pairs:
        multiplier, offset = batch_norm_factors(by_name[norm]["config"], weights[norm])
        kernel = np.asarray(weights[source][0], dtype=np.float64)
        bias = (np.asarray(weights[source][1], dtype=np.float64)
                if by_name[source]["config"].get("use_bias", True) else 0.0)
        new_weights[source] = [(kernel * multiplier).astype(np.float32),
                               (bias * multiplier + offset).astype(np.float32)]
        by_name[source]["config"]["use_bias"] = True
        del new_weights[norm]
    folded["config"]["layers"] = [layer for layer in _layers(folded)
                                  if layer["config"]["name"] not in replaced]
    for layer in _layers(folded):
        for node in layer.get("inbound_nodes") or []:
            for link in node:
                link[0] = replaced.get(str(link[0]), link[0])
    for output in folded["config"].get("output_layers") or []:
        output[0] = replaced.get(str(output[0]), output[0])
    return folded, new_weights, [norm for _, norm in pairs]


def layer_weights(model: Any, names: Optional[Sequence[str]] = None) -> Weights:
    """{layer name: its weights as numpy arrays} of a built Keras model."""
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers
            if names is None or layer.name in names}
