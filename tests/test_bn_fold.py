"""lib/bn_fold.py on hand-written Keras configs: which batch norms fold, and the folded numbers
in float64 (the folding of a real model is in tests/test_conversion_stages.py)."""
from __future__ import annotations

import numpy as np
import pytest

from facenet_edgetpu.lib import bn_fold


def layer(name, class_name, inbound, **config):
    config["name"] = name
    return {"class_name": class_name, "config": config,
            "inbound_nodes": [[[source, 0, 0, {}] for source in inbound]] if inbound else []}


def model_config(*layers, outputs=("out",)):
    return {"class_name": "Model", "config": {"layers": list(layers), "output_layers": [
        [name, 0, 0] for name in outputs]}}


def chain(conv_config=None, norm_config=None, extra=()):
    """input -> conv -> bn -> out (an activation), plus `extra` layers."""
    return model_config(
        layer("input", "InputLayer", []),
        layer("conv", "Conv2D", ["input"], **(conv_config or {"activation": "linear"})),
        layer("bn", "BatchNormalization", ["conv"], **(norm_config or {"axis": -1})),
        layer("out", "Activation", ["bn"], activation="relu"), *extra)


def test_a_linear_conv_followed_by_its_batch_norm_folds():
    assert bn_fold.foldable_pairs(chain()) == [("conv", "bn")]
    assert bn_fold.foldable_pairs(chain(norm_config={"axis": [3]})) == [("conv", "bn")]


@pytest.mark.parametrize("config", [
    chain(conv_config={"activation": "relu"}),                  # activation between them
    chain(norm_config={"axis": 1}),                             # not the channel axis
    chain(extra=[layer("side", "Activation", ["conv"])]),       # conv used twice
])
def test_batch_norms_that_would_not_fold_exactly_stay(config):
    assert bn_fold.foldable_pairs(config) == []


def test_a_batch_norm_after_another_kind_of_layer_stays():
    config = model_config(layer("input", "InputLayer", []),
                          layer("pool", "MaxPooling2D", ["input"]),
                          layer("bn", "BatchNormalization", ["pool"]),
                          layer("out", "Activation", ["bn"]))
    assert bn_fold.foldable_pairs(config) == []


def test_folding_rewires_the_graph_and_computes_the_same_affine_map():
    rng = np.random.RandomState(0)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    gamma, beta, mean = (rng.standard_normal(4).astype(np.float32) for _ in range(3))
    variance = rng.uniform(0.1, 2.0, 4).astype(np.float32)
    config = chain(conv_config={"activation": "linear", "use_bias": False},
                   norm_config={"axis": -1, "epsilon": 1e-3})
    weights = {"conv": [kernel], "bn": [gamma, beta, mean, variance], "out": []}
    folded, new_weights, removed = bn_fold.fold_batch_norms(config, weights)
    assert removed == ["bn"]
    assert [item["config"]["name"] for item in folded["config"]["layers"]] == [
        "input", "conv", "out"]
    assert folded["config"]["layers"][2]["inbound_nodes"][0][0][0] == "conv"
    assert folded["config"]["layers"][1]["config"]["use_bias"] is True
    assert "bn" not in new_weights and config["config"]["layers"][2]["config"]["name"] == "bn"
    new_kernel, new_bias = new_weights["conv"]
    assert new_kernel.dtype == new_bias.dtype == np.float32
    # y = (x*k - mean) / sqrt(var + eps) * gamma + beta, for any x, computed in float64
    inputs = rng.standard_normal((5, 3 * 3 * 2))
    before = (inputs @ kernel.reshape(-1, 4).astype(np.float64) - mean) / np.sqrt(
        variance.astype(np.float64) + np.float64(np.float32(1e-3))) * gamma + beta
    after = inputs @ new_kernel.reshape(-1, 4).astype(np.float64) + new_bias
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def test_the_output_layer_itself_can_be_a_folded_batch_norm():
    config = model_config(layer("input", "InputLayer", []),
                          layer("dense", "Dense", ["input"], activation="linear"),
                          layer("bn", "BatchNormalization", ["dense"]), outputs=("bn",))
    weights = {"dense": [np.ones((2, 3), np.float32), np.zeros(3, np.float32)],
               "bn": [np.ones(3), np.zeros(3), np.zeros(3), np.ones(3)]}
    folded, _, removed = bn_fold.fold_batch_norms(config, weights)
    assert removed == ["bn"] and folded["config"]["output_layers"] == [["dense", 0, 0]]


ROOT = np.sqrt(4.0 + np.float64(np.float32(1e-3)))  # Keras adds epsilon in float32


# gamma 2, beta 3, mean 1, variance 4; a missing gamma is 1 and a missing beta is 0
@pytest.mark.parametrize("norm_config,weights,multiplier,offset", [
    ({}, [[2.0], [3.0], [1.0], [4.0]], 2.0 / ROOT, 3.0 - 2.0 / ROOT),
    ({"scale": False}, [[3.0], [1.0], [4.0]], 1.0 / ROOT, 3.0 - 1.0 / ROOT),
    ({"center": False}, [[2.0], [1.0], [4.0]], 2.0 / ROOT, -2.0 / ROOT),
])
def test_batch_norm_factors_follow_scale_and_center(norm_config, weights, multiplier, offset):
    found_multiplier, found_offset = bn_fold.batch_norm_factors(norm_config, weights)
    assert found_multiplier.dtype == np.float64
    assert found_multiplier[0] == pytest.approx(multiplier, rel=1e-15)
    assert found_offset[0] == pytest.approx(offset, rel=1e-15)
