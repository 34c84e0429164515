"""ManualBatchNorm computes the same function as keras.layers.BatchNormalization.

Every check runs for a dense input (N, C) and a convolutional one (N, H, W, C),
on the tf.nn path (fused=False) and on the fused kernel (fused=True): outputs in
training and inference mode, gradients, and the moving statistics after several
training steps, all to 1e-5.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from bnlib.layers import ManualBatchNorm  # noqa: E402
from bnlib.models import BN_EPSILON, BN_MOMENTUM  # noqa: E402

TOL = 1e-5
SHAPES = {"dense": (32, 6), "conv": (8, 5, 4, 3)}
STEPS = 4
# (momentum, epsilon): the article's tf.layers defaults, and a faster pair
# so that a momentum or epsilon mix-up cannot hide behind 0.99.
SETTINGS = [(BN_MOMENTUM, BN_EPSILON), (0.9, 1e-5)]


def max_err(a, b) -> float:
    """max |a - b|, relative to max |b| when that is above 1 (sums grow with m)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b))))


def make_pair(shape, fused, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, **kwargs):
    """Both layers, built, with the same random gamma and beta."""
    manual = ManualBatchNorm(momentum=momentum, epsilon=epsilon, fused=fused, **kwargs)
    stock = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon)
    manual.build(shape)
    stock.build(shape)
    rng = np.random.default_rng(1)
    channels = shape[-1]
    gamma = rng.uniform(0.5, 2.0, channels).astype(np.float32)
    beta = rng.normal(0.0, 1.0, channels).astype(np.float32)
    for layer in (manual, stock):
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
    return manual, stock


def batches(shape, count=STEPS, seed=0):
    """Fixed-seed batches with a non-zero mean and a non-unit spread per channel."""
    rng = np.random.default_rng(seed)
    shift = rng.uniform(-3.0, 5.0, shape[-1])
    scale = rng.uniform(0.5, 4.0, shape[-1])
    return [(shift + scale * rng.standard_normal(shape)).astype(np.float32)
            for _ in range(count)]


@pytest.mark.parametrize("momentum,epsilon", SETTINGS)
@pytest.mark.parametrize("fused", [False, True], ids=["tf_nn", "fused"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_training_steps_outputs_and_moving_statistics(kind, fused, momentum, epsilon):
    shape = SHAPES[kind]
    manual, stock = make_pair(shape, fused, momentum, epsilon)
    for x in batches(shape):
        out_manual = manual(x, training=True)
        out_stock = stock(x, training=True)
        assert max_err(out_manual, out_stock) < TOL
    # the moving statistics have moved away from their initial values ...
    assert max_err(stock.moving_mean, np.zeros(shape[-1])) > 1e-2
    assert max_err(stock.moving_variance, np.ones(shape[-1])) > 1e-2
    # ... in the same way for both layers
    assert max_err(manual.moving_mean, stock.moving_mean) < TOL
    assert max_err(manual.moving_variance, stock.moving_variance) < TOL
    # inference uses them, on a batch neither layer has seen
    fresh = batches(shape, count=1, seed=7)[0]
    assert max_err(manual(fresh, training=False), stock(fresh, training=False)) < TOL


@pytest.mark.parametrize("fused", [False, True], ids=["tf_nn", "fused"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_training_output_is_normalized_per_channel(kind, fused):
    shape = SHAPES[kind]
    layer = ManualBatchNorm(fused=fused, epsilon=1e-8)
    out = layer(batches(shape, count=1)[0], training=True).numpy()
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(out.mean(axis=axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=axes), 1.0, atol=1e-4)


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("fused", [False, True], ids=["tf_nn", "fused"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_gradients_match(kind, fused, training):
    shape = SHAPES[kind]
    manual, stock = make_pair(shape, fused, momentum=0.5)
    first, x = batches(shape, count=2)
    # non-trivial moving statistics for the inference-mode gradients
    manual(first, training=True)
    stock(first, training=True)
    x = tf.constant(x)
    # a random upstream gradient: the gradient of sum(y) w.r.t. x is ~0 in training
    upstream = tf.constant(np.random.default_rng(3).standard_normal(shape),
                           dtype=tf.float32)

    def grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, training=training) * upstream)
        return tape.gradient(loss, [x, layer.gamma, layer.beta])

    for name, g_manual, g_stock in zip(("input", "gamma", "beta"),
                                       grads(manual), grads(stock)):
        assert g_manual is not None, name
        assert max_err(g_manual, g_stock) < TOL, name


@pytest.mark.parametrize("fused", [False, True], ids=["tf_nn", "fused"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_no_update_leaves_moving_statistics_at_init(kind, fused):
    shape = SHAPES[kind]
    manual, stock = make_pair(shape, fused, update_moving_averages=False)
    for x in batches(shape):
        # the training-mode output does not depend on the moving statistics
        assert max_err(manual(x, training=True), stock(x, training=True)) < TOL
    np.testing.assert_array_equal(manual.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(manual.moving_variance.numpy(), 1.0)
    # so inference normalizes with mean 0, variance 1 instead of the data's
    fresh = batches(shape, count=1, seed=7)[0]
    expected = (manual.gamma.numpy() * fresh / np.sqrt(1.0 + BN_EPSILON)
                + manual.beta.numpy())
    assert max_err(manual(fresh, training=False), expected) < TOL
    assert max_err(manual(fresh, training=False), stock(fresh, training=False)) > 0.1


@pytest.mark.parametrize("fused", [False, True], ids=["tf_nn", "fused"])
@pytest.mark.parametrize("shape", [(1, 6), (1, 1, 1, 3)], ids=["dense", "conv_1x1"])
def test_batch_of_one_in_training_mode_gives_beta(shape, fused):
    manual, stock = make_pair(shape, fused)
    x = batches(shape, count=1)[0]
    out = manual(x, training=True).numpy()
    # one value per channel: it is its own mean, the variance is 0
    np.testing.assert_allclose(out.reshape(-1, shape[-1]),
                               manual.beta.numpy()[None, :], atol=TOL)
    assert max_err(out, stock(x, training=True)) < TOL
    assert np.all(np.isfinite(manual.moving_variance.numpy()))
    assert max_err(manual.moving_variance, stock.moving_variance) < TOL


def test_fused_kernel_returns_corrected_variance():
    """The reason for the m/(m-1) conversion in ManualBatchNorm._call_fused."""
    x = batches(SHAPES["conv"], count=1)[0]
    m = int(np.prod(x.shape[:-1]))
    empty = tf.zeros([0])
    _, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=tf.ones(3), offset=tf.zeros(3), mean=empty, variance=empty,
        epsilon=1e-3, is_training=True)
    plain_mean, plain_variance = tf.nn.moments(tf.constant(x), axes=[0, 1, 2])
    assert max_err(mean, plain_mean) < TOL
    assert max_err(variance, plain_variance * m / (m - 1)) < TOL
    assert max_err(variance, plain_variance) > 1e-3


def test_config_round_trip():
    layer = ManualBatchNorm(momentum=0.9, epsilon=1e-4, fused=True,
                            update_moving_averages=False, name="bn")
    clone = ManualBatchNorm.from_config(layer.get_config())
    for key in ("momentum", "epsilon", "fused", "update_moving_averages", "name"):
        assert getattr(clone, key) == getattr(layer, key)


def test_frozen_layer_runs_in_inference_mode_like_keras():
    """trainable=False: batch statistics unused, moving averages untouched."""
    import keras
    import numpy as np

    from bnlib.layers import ManualBatchNorm

    x = np.random.default_rng(7).normal(3.0, 2.0, size=(64, 8)).astype("float32")
    ours, theirs = ManualBatchNorm(), keras.layers.BatchNormalization(
        momentum=0.99, epsilon=1e-3)
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.trainable = False
    out_ours = np.asarray(ours(x, training=True))
    out_theirs = np.asarray(theirs(x, training=True))
    np.testing.assert_allclose(out_ours, out_theirs, atol=1e-6)
    np.testing.assert_allclose(out_ours, x / np.sqrt(1 + 1e-3), atol=1e-6)
    assert np.all(np.asarray(ours.moving_mean) == 0)
