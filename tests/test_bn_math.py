"""bnlib.bn_math: the H-matrix formulas, checked against algebra, TF and the layer."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from bnlib import bn_math
from bnlib.bn_math import (DELTA, batch_norm_backward, batch_norm_forward,
                           batch_norm_inference, batch_stats, moving_average_trace,
                           normalize, population_stats, steps_to_forget,
                           unbiased_variance, update_moving)


def skewed_H(rows=128, units=32, seed=0):
    """Gamma-distributed columns, each with its own shape, scale and shift."""
    rng = np.random.default_rng(seed)
    shape = rng.uniform(1.0, 5.0, units)
    scale = rng.uniform(0.5, 3.0, units)
    shift = rng.uniform(-5.0, 5.0, units)
    return shift + rng.gamma(shape, scale, size=(rows, units))


def test_defaults_match_the_models():
    from bnlib.models import BN_EPSILON, BN_MOMENTUM

    assert DELTA == BN_EPSILON
    assert bn_math.MOMENTUM == BN_MOMENTUM


def test_batch_stats_are_per_column_with_biased_variance():
    H = skewed_H()
    mu, sigma = batch_stats(H, delta=0.25)
    assert mu.shape == sigma.shape == (H.shape[1],)
    np.testing.assert_allclose(mu, H.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.sqrt(0.25 + H.var(axis=0, ddof=0)),
                               rtol=1e-12)
    # hand-computed on a 2 x 1 matrix: mean 2, variance 1
    mu, sigma = batch_stats(np.array([[1.0], [3.0]]), delta=0.0)
    assert mu[0] == 2.0 and sigma[0] == 1.0


@pytest.mark.parametrize("delta", [0.0, 1e-8, DELTA, 0.5])
def test_normalized_columns_have_mean_0_and_variance_v_over_v_plus_delta(delta):
    H = skewed_H()
    H_norm = normalize(H, delta)
    assert H_norm.shape == H.shape
    np.testing.assert_allclose(H_norm.mean(axis=0), 0.0, atol=1e-12)
    variance = H.var(axis=0)
    np.testing.assert_allclose(H_norm.var(axis=0), 1.0 / (1.0 + delta / variance),
                               rtol=1e-12)
    if delta == 0.0:
        np.testing.assert_allclose(H_norm.var(axis=0), 1.0, rtol=1e-12)


def test_broadcasting_uses_the_column_statistics():
    H = skewed_H()
    mu, sigma = batch_stats(H)
    H_norm = normalize(H)
    i, j = 5, 7
    assert H_norm[i, j] == pytest.approx((H[i, j] - mu[j]) / sigma[j], rel=1e-14)


def test_constant_column_gives_zeros_thanks_to_delta():
    H = skewed_H()
    H[:, 3] = 0.0  # a dead ReLU unit
    H[:, 4] = 3.0
    H_norm = normalize(H)
    assert np.all(np.isfinite(H_norm))
    assert np.all(H_norm[:, 3] == 0.0) and np.all(H_norm[:, 4] == 0.0)
    with np.errstate(invalid="ignore"):
        without_delta = normalize(H, delta=0.0)
    assert np.all(np.isnan(without_delta[:, 3]))


def test_gamma_sigma_beta_mu_restores_H():
    H = skewed_H()
    mu, sigma = batch_stats(H)
    out, _ = batch_norm_forward(H, gamma=sigma, beta=mu)
    np.testing.assert_allclose(out, H, rtol=0, atol=1e-10)


def test_output_mean_and_std_are_beta_and_gamma():
    H = skewed_H()
    rng = np.random.default_rng(1)
    gamma, beta = rng.uniform(0.5, 2.0, H.shape[1]), rng.normal(size=H.shape[1])
    out, _ = batch_norm_forward(H, gamma, beta, delta=0.0)
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=1e-12)


def test_bias_cancels():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(128, 20))
    W = rng.normal(size=(20, 16))
    b = rng.normal(scale=10.0, size=16)
    np.testing.assert_allclose(normalize(X @ W + b), normalize(X @ W), atol=1e-10)
    # and its gradient is zero: every column of dH sums to zero
    _, cache = batch_norm_forward(X @ W + b, np.ones(16), np.zeros(16))
    dH, _, _ = batch_norm_backward(rng.normal(size=(128, 16)), cache)
    np.testing.assert_allclose(dH.sum(axis=0), 0.0, atol=1e-10)


def _random_problem(rows, units, seed):
    rng = np.random.default_rng(seed)
    H = skewed_H(rows, units, seed)
    gamma = rng.uniform(0.5, 2.0, units)
    beta = rng.normal(size=units)
    dout = rng.normal(size=(rows, units))
    return H, gamma, beta, dout


def test_backward_matches_tensorflow_gradient_tape():
    import tensorflow as tf

    H, gamma, beta, dout = _random_problem(128, 32, seed=3)
    _, cache = batch_norm_forward(H, gamma, beta, DELTA)
    dH, dgamma, dbeta = batch_norm_backward(dout, cache)

    H_tf, gamma_tf, beta_tf = (tf.Variable(a) for a in (H, gamma, beta))
    with tf.GradientTape() as tape:
        mean, variance = tf.nn.moments(H_tf, axes=[0])
        out = tf.nn.batch_normalization(H_tf, mean, variance, beta_tf, gamma_tf,
                                        DELTA)
        loss = tf.reduce_sum(out * dout)  # so that dL/d out = dout
    grads = tape.gradient(loss, [H_tf, gamma_tf, beta_tf])
    for ours, theirs in zip((dH, dgamma, dbeta), grads):
        assert theirs.dtype == tf.float64
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(dH, grads[0].numpy(), rtol=1e-9, atol=1e-12)


def test_backward_matches_finite_differences():
    H, gamma, beta, dout = _random_problem(8, 5, seed=4)

    def loss(H, gamma, beta):
        return np.sum(batch_norm_forward(H, gamma, beta, DELTA)[0] * dout)

    _, cache = batch_norm_forward(H, gamma, beta, DELTA)
    analytic = batch_norm_backward(dout, cache)
    step = 1e-6
    args = [H, gamma, beta]
    for k, grad in enumerate(analytic):
        numeric = np.zeros_like(args[k])
        for index in np.ndindex(args[k].shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[k][index] += step
            minus[k][index] -= step
            numeric[index] = (loss(*plus) - loss(*minus)) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-7)


def test_mean_of_the_output_does_not_depend_on_H():
    # L = mean of each output column: dL/dH = 0, dL/dbeta = 1
    H, gamma, beta, _ = _random_problem(64, 6, seed=5)
    _, cache = batch_norm_forward(H, gamma, beta)
    dH, dgamma, dbeta = batch_norm_backward(np.full(H.shape, 1.0 / 64), cache)
    np.testing.assert_allclose(dH, 0.0, atol=1e-12)
    np.testing.assert_allclose(dgamma, 0.0, atol=1e-12)
    np.testing.assert_allclose(dbeta, 1.0, rtol=1e-12)


def test_inference_with_batch_statistics_equals_training_mode():
    H, gamma, beta, _ = _random_problem(32, 4, seed=6)
    out, _ = batch_norm_forward(H, gamma, beta)
    same = batch_norm_inference(H, gamma, beta, H.mean(axis=0), H.var(axis=0))
    np.testing.assert_allclose(same, out, atol=1e-12)


def test_update_moving_one_step():
    assert update_moving(1.0, 3.0, 0.9) == pytest.approx(0.9 * 1.0 + 0.1 * 3.0)
    np.testing.assert_allclose(update_moving(np.zeros(3), np.arange(3.0), 0.99),
                               [0.0, 0.01, 0.02])


@pytest.mark.parametrize("momentum", [0.9, 0.99])
def test_moving_average_forgets_its_init_geometrically(momentum):
    x0, v, steps = 1.0, 5.0, 300
    trace = moving_average_trace(np.full(steps, v), init=x0, momentum=momentum)
    k = np.arange(1, steps + 1)
    np.testing.assert_allclose(trace, v + momentum ** k * (x0 - v), rtol=1e-12)
    # vectors: one moving average per unit
    trace = moving_average_trace(np.full((10, 2), v), init=[0.0, 1.0],
                                 momentum=momentum)
    assert trace.shape == (10, 2)
    np.testing.assert_allclose(trace[-1], v + momentum ** 10 * (np.array([0, 1]) - v))


def test_steps_to_forget():
    assert steps_to_forget(0.99, 0.01) == 459   # 0.99**458 > 0.01 > 0.99**459
    assert 0.99 ** 459 < 0.01 < 0.99 ** 458
    assert steps_to_forget(0.9, 0.5) == 7


def test_unbiased_variance_is_bessels_correction():
    x = skewed_H(rows=16, units=3)
    np.testing.assert_allclose(unbiased_variance(x.var(axis=0), 16),
                               x.var(axis=0, ddof=1), rtol=1e-12)


def test_population_stats():
    data = skewed_H(rows=40 * 16, units=3, seed=7)
    batches = data.reshape(40, 16, 3)
    mean, variance = population_stats(batches)
    # equal batches: the mean of batch means is the mean of all the data
    np.testing.assert_allclose(mean, data.mean(axis=0), rtol=1e-12)
    expected = 16 / 15 * np.mean([b.var(axis=0) for b in batches], axis=0)
    np.testing.assert_allclose(variance, expected, rtol=1e-12)


def test_corrected_batch_variance_is_unbiased_on_average():
    # variance 4; batches of 4 rows: the 1/m variance averages 3, corrected 4
    rng = np.random.default_rng(8)
    batches = rng.normal(scale=2.0, size=(50_000, 4, 1))
    mean, variance = population_stats(batches)
    assert variance[0] == pytest.approx(4.0, rel=0.01)
    assert batches.var(axis=1).mean() == pytest.approx(3.0, rel=0.01)
    assert abs(mean[0]) < 0.02


@pytest.mark.parametrize("fused", [False, True])
def test_manual_batch_norm_layer_matches_numpy_in_training_mode(fused):
    from bnlib.layers import ManualBatchNorm

    rng = np.random.default_rng(9)
    shape = (16, 4, 4, 8) if fused else (64, 8)
    inputs = (3.0 + 2.0 * rng.normal(size=shape)).astype("float32")
    layer = ManualBatchNorm(fused=fused)
    layer.build(inputs.shape)
    gamma = rng.uniform(0.5, 2.0, 8)
    beta = rng.normal(size=8)
    layer.gamma.assign(gamma.astype("float32"))
    layer.beta.assign(beta.astype("float32"))
    outputs = np.asarray(layer(inputs, training=True))

    H = inputs.reshape(-1, 8).astype("float64")  # rows = every position
    expected, cache = batch_norm_forward(H, gamma, beta, DELTA)
    np.testing.assert_allclose(outputs.reshape(-1, 8), expected, rtol=0, atol=1e-5)
    # one moving-average step from the initial (0, 1)
    np.testing.assert_allclose(np.asarray(layer.moving_mean),
                               update_moving(0.0, cache["mu"]), atol=1e-5)
    np.testing.assert_allclose(np.asarray(layer.moving_variance),
                               update_moving(1.0, H.var(axis=0)), atol=1e-5)
    # inference mode uses those moving averages
    np.testing.assert_allclose(
        np.asarray(layer(inputs, training=False)).reshape(-1, 8),
        batch_norm_inference(H, gamma, beta, update_moving(0.0, cache["mu"]),
                             update_moving(1.0, H.var(axis=0))),
        rtol=0, atol=1e-4)


# ----------------------------------------------------- LayerNorm and GroupNorm
def test_layer_norm_normalizes_rows_where_bn_normalizes_columns():
    rng = np.random.default_rng(4)
    H = rng.normal(3.0, 2.0, size=(6, 5))
    out = bn_math.layer_norm(H, delta=0.0)
    np.testing.assert_allclose(out.mean(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=1), 1.0, atol=1e-12)
    # the transpose of BN on the transposed matrix
    np.testing.assert_allclose(out, bn_math.normalize(H.T, delta=0.0).T, atol=1e-12)


def test_layer_and_group_norm_equal_keras_layers():
    import keras

    rng = np.random.default_rng(5)
    H = rng.normal(1.0, 3.0, size=(4, 12)).astype(np.float32)
    keras_ln = keras.layers.LayerNormalization(epsilon=bn_math.DELTA)
    np.testing.assert_allclose(keras_ln(H).numpy(), bn_math.layer_norm(H),
                               rtol=1e-4, atol=1e-5)
    X = rng.normal(-2.0, 1.5, size=(3, 4, 4, 8)).astype(np.float32)
    for groups in (1, 2, 8):
        keras_gn = keras.layers.GroupNormalization(groups=groups,
                                                   epsilon=bn_math.DELTA)
        np.testing.assert_allclose(keras_gn(X).numpy(),
                                   bn_math.group_norm(X, groups), rtol=1e-4,
                                   atol=1e-4, err_msg=f"groups={groups}")
    with pytest.raises(ValueError, match="must divide"):
        bn_math.group_norm(X, 3)


def test_bn_over_two_examples_gives_plus_minus_one():
    """With a batch of two, a dense layer's BN output is +-1 up to delta."""
    H = np.array([[0.3, -2.0, 7.0], [1.1, 5.0, 7.5]])
    out = bn_math.normalize(H, delta=0.0)
    np.testing.assert_allclose(np.abs(out), 1.0)
    np.testing.assert_allclose(out[0], -out[1])
