"""The article's small CIFAR-10 CNN, with Batch Normalization where asked.

    conv 5x5x32 same, ReLU -> [BN] -> maxpool 2
    conv 5x5x64 same, ReLU -> [BN] -> maxpool 2
    flatten (8*8*64 = 4096) -> dense 1024, ReLU -> [BN] -> [dropout]
    dense 10 (logits)

``bn_position="after_relu"`` is the article's placement (``tf.layers`` BN on the
ReLU output). ``"before_relu"`` is the paper's: BN on XW, where the layer's bias
is dropped because the normalization subtracts it away again.
"""

from __future__ import annotations

from typing import Callable

import keras

BN_MOMENTUM = 0.99  # tf.layers / Keras default
BN_EPSILON = 1e-3   # tf.layers / Keras default
BN_POSITIONS = ("after_relu", "before_relu")
PARAMS_WITHOUT_BN = 4_259_274


def keras_batch_norm(name: str, momentum: float = BN_MOMENTUM,
                     epsilon: float = BN_EPSILON) -> keras.layers.Layer:
    """The stock Keras layer with the article's (tf.layers) settings."""
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon,
                                           name=name)


def build_cnn(bn_conv: bool = False, bn_dense: bool = False, dropout: float = 0.0,
              *, bn_position: str = "after_relu",
              bn_layer: Callable[[str], keras.layers.Layer] | None = None,
              seed: int | None = None, name: str = "article_cnn") -> keras.Model:
    """Build the article's CNN; inputs are float32 images (N, 32, 32, 3).

    ``bn_layer(name)`` makes each normalization layer (default: Keras'
    ``BatchNormalization`` with momentum 0.99, epsilon 1e-3); pass e.g.
    ``bnlib.layers.ManualBatchNorm`` to swap in another implementation.
    """
    if bn_position not in BN_POSITIONS:
        raise ValueError(f"bn_position must be one of {BN_POSITIONS}, "
                         f"got {bn_position!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    make_bn = bn_layer or keras_batch_norm
    before = bn_position == "before_relu"

    def block(x, layer_factory, use_bn: bool, tag: str):
        """layer -> ReLU with BN after the ReLU (article) or before it (paper)."""
        if use_bn and before:
            x = layer_factory(activation=None, use_bias=False)(x)
            x = make_bn(f"bn_{tag}")(x)
            return keras.layers.ReLU(name=f"relu_{tag}")(x)
        x = layer_factory(activation="relu", use_bias=True)(x)
        return make_bn(f"bn_{tag}")(x) if use_bn else x

    def conv(filters, tag):
        return lambda **kw: keras.layers.Conv2D(filters, 5, padding="same",
                                                name=tag, **kw)

    inputs = keras.Input(shape=(32, 32, 3), dtype="float32", name="image")
    x = block(inputs, conv(32, "conv1"), bn_conv, "conv1")
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = block(x, conv(64, "conv2"), bn_conv, "conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = block(x, lambda **kw: keras.layers.Dense(1024, name="dense1", **kw),
              bn_dense, "dense1")
    if dropout > 0:
        x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    logits = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inputs, logits, name=name)


def expected_param_count(bn_conv: bool, bn_dense: bool,
                         bn_position: str = "after_relu") -> int:
    """Parameter count (BN's moving statistics included) worked out by hand."""
    count = PARAMS_WITHOUT_BN
    for units, used in ((32, bn_conv), (64, bn_conv), (1024, bn_dense)):
        if used:
            count += 4 * units  # gamma, beta, moving mean, moving variance
            if bn_position == "before_relu":
                count -= units  # the bias BN cancels is not created
    return count
