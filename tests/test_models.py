"""The article's CNN: shapes and parameter counts for every configuration."""

import numpy as np
import pytest

from bnlib import models
from bnlib.config import ARTICLE

GRID = ARTICLE.runs


@pytest.mark.parametrize("position", models.BN_POSITIONS)
@pytest.mark.parametrize("run", GRID, ids=lambda r: r.name)
def test_param_count_every_configuration(run, position):
    model = models.build_cnn(run.bn_conv, run.bn_dense, run.dropout,
                             bn_position=position)
    assert model.count_params() == models.expected_param_count(
        run.bn_conv, run.bn_dense, position)


def test_without_bn_the_article_count():
    assert models.build_cnn().count_params() == 4_259_274


def test_layer_order_matches_the_article():
    model = models.build_cnn(True, True, 0.4)
    names = [layer.name for layer in model.layers[1:]]
    assert names == ["conv1", "bn_conv1", "pool1", "conv2", "bn_conv2", "pool2",
                     "flatten", "dense1", "bn_dense1", "dropout", "logits"]
    assert model.get_layer("flatten").output.shape[-1] == 4096
    bn = model.get_layer("bn_conv1")
    assert (bn.momentum, bn.epsilon) == (0.99, 1e-3)


def test_paper_placement_drops_the_bias_and_normalizes_before_relu():
    model = models.build_cnn(True, True, bn_position="before_relu")
    names = [layer.name for layer in model.layers[1:]]
    assert names[:3] == ["conv1", "bn_conv1", "relu_conv1"]
    assert not model.get_layer("conv1").use_bias
    assert not model.get_layer("dense1").use_bias


def test_logits_shape():
    model = models.build_cnn(True, False, 0.2)
    logits = model(np.zeros((4, 32, 32, 3), np.float32), training=False)
    assert tuple(logits.shape) == (4, 10)


def test_bad_arguments():
    with pytest.raises(ValueError, match="bn_position"):
        models.build_cnn(bn_position="sideways")
    with pytest.raises(ValueError, match="dropout"):
        models.build_cnn(dropout=1.5)
