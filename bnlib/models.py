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

from .config import BN_POSITIONS

BN_MOMENTUM = 0.99  # tf.layers / Keras default
BN_EPSILON = 1e-3   # tf.layers / Keras default
PARAMS_WITHOUT_BN = 4_259_274


def keras_batch_norm(name: str, momentum: float = BN_MOMENTUM,
                     epsilon: float = BN_EPSILON, **kwargs) -> keras.layers.Layer:
    """The stock Keras layer with the article's (tf.layers) settings."""
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon,
                                           name=name, **kwargs)


def build_cnn(norm_conv: str | bool = "none", norm_dense: str | bool = "none",
              dropout: float = 0.0, *, bn_position: str = "after_relu",
              bn_layer: Callable[[str], keras.layers.Layer] | None = None,
              norm_layer: Callable[[str, str], keras.layers.Layer] | None = None,
              input_layer: keras.layers.Layer | None = None,
              seed: int | None = None, dtype: str | None = None,
              name: str = "article_cnn") -> keras.Model:
    """Build the article's CNN; inputs are float32 images (N, 32, 32, 3).

    ``norm_conv`` / ``norm_dense`` name the normalization of the convolutions
    and of the dense layer (``True`` means ``"batch"``, ``False`` ``"none"``).
    ``bn_layer(name)`` makes each Batch Normalization layer (default: Keras'
    ``BatchNormalization`` with momentum 0.99, epsilon 1e-3); pass e.g.
    ``bnlib.layers.ManualBatchNorm`` to swap in another implementation.
    ``norm_layer(kind, name)``, if given, makes every normalization layer of
    any kind instead (the runner's :func:`bnlib.training.norm_layer_factory`).
    ``input_layer`` is applied to the image first (input scaling, or BN on the
    input). ``dtype`` is a Keras dtype policy for every layer but the logits,
    which stay float32 (e.g. ``"mixed_bfloat16"``).
    """
    if bn_position not in BN_POSITIONS:
        raise ValueError(f"bn_position must be one of {BN_POSITIONS}, "
                         f"got {bn_position!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    norm_conv, norm_dense = (("batch" if kind is True else "none" if kind is False
                              else kind) for kind in (norm_conv, norm_dense))
    if norm_layer is None:
        make_bn = bn_layer or keras_batch_norm

        def norm_layer(kind, layer_name):
            if kind != "batch":
                raise ValueError(f"build_cnn makes only 'batch' layers without a "
                                 f"norm_layer factory, got {kind!r}")
            return make_bn(layer_name)
    before = bn_position == "before_relu"

    def block(x, layer_factory, kind: str, tag: str):
        """layer -> ReLU with the norm after the ReLU (article) or before it (paper)."""
        if kind != "none" and before:
            x = layer_factory(activation=None, use_bias=False)(x)
            x = norm_layer(kind, f"bn_{tag}")(x)
            return keras.layers.ReLU(name=f"relu_{tag}", dtype=dtype)(x)
        x = layer_factory(activation="relu", use_bias=True)(x)
        return norm_layer(kind, f"bn_{tag}")(x) if kind != "none" else x

    def conv(filters, tag):
        return lambda **kw: keras.layers.Conv2D(filters, 5, padding="same",
                                                name=tag, dtype=dtype, **kw)

    inputs = keras.Input(shape=(32, 32, 3), dtype="float32", name="image")
    x = input_layer(inputs) if input_layer is not None else inputs
    x = block(x, conv(32, "conv1"), norm_conv, "conv1")
    x = keras.layers.MaxPooling2D(2, name="pool1", dtype=dtype)(x)
    x = block(x, conv(64, "conv2"), norm_conv, "conv2")
    x = keras.layers.MaxPooling2D(2, name="pool2", dtype=dtype)(x)
    x = keras.layers.Flatten(name="flatten", dtype=dtype)(x)
    x = block(x, lambda **kw: keras.layers.Dense(1024, name="dense1", dtype=dtype,
                                                 **kw),
              norm_dense, "dense1")
    if dropout > 0:
        x = keras.layers.Dropout(dropout, seed=seed, name="dropout", dtype=dtype)(x)
    logits = keras.layers.Dense(10, name="logits", dtype="float32")(x)
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


# --------------------------------------------------------------------------- Figure 1
MLP_UNITS = (100, 100, 100)   # Ioffe & Szegedy (2015), section 4.1
MLP_INIT_STDDEV = 0.01        # "small random Gaussian values" (the paper gives no scale)


def build_sigmoid_mlp(normalized: bool = False, *,
                      norm_layer: Callable[[str, str], keras.layers.Layer] | None = None,
                      input_layer: keras.layers.Layer | None = None,
                      dtype: str | None = None,
                      name: str = "sigmoid_mlp") -> keras.Model:
    """The network of the BN paper's Figure 1, on CIFAR-10 images.

        flatten (32*32*3 = 3072) -> 3 x [dense 100 -> [BN] -> sigmoid] -> dense 10

    The paper feeds 28x28 MNIST digits; MNIST is not available offline, so the
    book flattens a CIFAR-10 image instead. With ``normalized``, BN sits where
    the paper puts it, on ``XW`` before the sigmoid, and the dense layer's bias
    is dropped (BN's beta replaces it). Weights start from N(0, 0.01^2), the
    paper's "small random Gaussian values", drawn from Keras' global seed
    (``keras.utils.set_random_seed``, as every run sets); biases at zero. The hidden layers
    are ``dense1``-``dense3`` and their nonlinearities ``sigmoid_dense1``-``3``,
    so :mod:`bnlib.probes` can read the sigmoid's input.
    """
    if norm_layer is None:
        def norm_layer(kind, layer_name):
            return keras_batch_norm(layer_name)

    def normal_init():
        return keras.initializers.RandomNormal(stddev=MLP_INIT_STDDEV)

    inputs = keras.Input(shape=(32, 32, 3), dtype="float32", name="image")
    x = input_layer(inputs) if input_layer is not None else inputs
    x = keras.layers.Flatten(name="flatten", dtype=dtype)(x)
    for number, units in enumerate(MLP_UNITS, start=1):
        tag = f"dense{number}"
        x = keras.layers.Dense(units, use_bias=not normalized,
                               kernel_initializer=normal_init(),
                               name=tag, dtype=dtype)(x)
        if normalized:
            x = norm_layer("batch", f"bn_{tag}")(x)
        x = keras.layers.Activation("sigmoid", name=f"sigmoid_{tag}", dtype=dtype)(x)
    logits = keras.layers.Dense(10, kernel_initializer=normal_init(), name="logits",
                                dtype="float32")(x)
    return keras.Model(inputs, logits, name=name)
