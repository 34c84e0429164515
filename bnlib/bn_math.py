"""Batch Normalization as plain NumPy on the H matrix (notebook 01).

``H`` has one row per example of the minibatch and one column per unit
(``m`` rows). Every statistic is taken down a column, so unit ``j`` is
normalized with its own ``mu_j`` and ``sigma_j``:

    mu_j    = 1/m * sum_i H[i, j]
    v_j     = 1/m * sum_i (H[i, j] - mu_j)**2        (biased, 1/m)
    sigma_j = sqrt(delta + v_j)
    H'      = (H - mu) / sigma                        (broadcast over rows)
    out     = gamma * H' + beta

The functions are written for reading, not speed; the layers in
``bnlib.layers`` compute the same thing with TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np

DELTA = 1e-3      # the same as bnlib.models.BN_EPSILON (Keras' default)
MOMENTUM = 0.99   # the same as bnlib.models.BN_MOMENTUM (Keras' default)


# --------------------------------------------------------------------- forward
def batch_stats(H, delta=DELTA):
    """Per-column mean and standard deviation of ``H`` (shape ``(m, units)``).

    ``mu_j = 1/m sum_i H_ij`` and ``sigma_j = sqrt(delta + 1/m sum_i
    (H_ij - mu_j)^2)``: the biased (1/m) variance, with ``delta`` keeping
    ``sigma_j`` away from zero when a column is constant.
    """
    mu = H.mean(axis=0)
    variance = ((H - mu) ** 2).mean(axis=0)
    sigma = np.sqrt(delta + variance)
    return mu, sigma


def normalize(H, delta=DELTA):
    """``H' = (H - mu) / sigma``; the ``(units,)`` vectors broadcast over rows."""
    mu, sigma = batch_stats(H, delta)
    return (H - mu) / sigma


def batch_norm_forward(H, gamma, beta, delta=DELTA):
    """Training-mode Batch Normalization: ``gamma * H' + beta``.

    Returns ``(out, cache)``; ``cache`` holds what the backward pass needs.
    """
    mu, sigma = batch_stats(H, delta)
    H_hat = (H - mu) / sigma
    out = gamma * H_hat + beta
    cache = {"H": H, "H_hat": H_hat, "mu": mu, "sigma": sigma, "gamma": gamma}
    return out, cache


def batch_norm_inference(H, gamma, beta, mean, variance, delta=DELTA):
    """Inference-mode Batch Normalization with fixed statistics.

    ``gamma * (H - mean) / sqrt(variance + delta) + beta``: the batch plays no
    part, each row is transformed on its own.
    """
    return gamma * (H - mean) / np.sqrt(variance + delta) + beta


# --------------------------------------------------------------------- backward
def batch_norm_backward(dout, cache):
    """Gradients of a loss ``L`` given ``dout = dL/d out`` (Ioffe & Szegedy 2015).

    With ``g = dL/dH' = dout * gamma`` and ``sigma^2 = v + delta``:

        dL/dv   = sum_i g_i (H_i - mu) * (-1/2) * sigma^-3
        dL/dmu  = sum_i g_i * (-1/sigma) + dL/dv * sum_i -2 (H_i - mu) / m
        dL/dH_i = g_i / sigma + dL/dv * 2 (H_i - mu) / m + dL/dmu / m
        dL/dgamma = sum_i dout_i * H'_i,   dL/dbeta = sum_i dout_i

    (the second term of dL/dmu is zero, because the deviations sum to zero;
    it is kept to follow the paper line by line). Returns ``(dH, dgamma, dbeta)``.
    """
    H, H_hat = cache["H"], cache["H_hat"]
    mu, sigma, gamma = cache["mu"], cache["sigma"], cache["gamma"]
    m = H.shape[0]
    centered = H - mu

    dH_hat = dout * gamma
    dvar = np.sum(dH_hat * centered, axis=0) * -0.5 * sigma ** -3
    dmu = (np.sum(dH_hat * -1.0 / sigma, axis=0)
           + dvar * np.sum(-2.0 * centered, axis=0) / m)
    dH = dH_hat / sigma + dvar * 2.0 * centered / m + dmu / m

    dgamma = np.sum(dout * H_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    return dH, dgamma, dbeta


# --------------------------------------------------------------------- inference
def update_moving(moving, batch_value, momentum=MOMENTUM):
    """One moving-average step: ``momentum * moving + (1 - momentum) * batch``.

    After ``k`` steps with a constant ``batch_value = v`` from ``x0``, the value
    is ``v + momentum**k * (x0 - v)``: the start is forgotten geometrically.
    """
    return momentum * moving + (1.0 - momentum) * batch_value


def moving_average_trace(batch_values, init, momentum=MOMENTUM):
    """The moving average after each of the ``batch_values`` (first axis = steps)."""
    moving = np.asarray(init, dtype=float)
    trace = []
    for value in batch_values:
        moving = update_moving(moving, value, momentum)
        trace.append(moving)
    return np.array(trace)


def steps_to_forget(momentum=MOMENTUM, weight=0.01):
    """Steps until the initial value weighs less than ``weight``: momentum**k < weight."""
    return math.ceil(math.log(weight) / math.log(momentum))


def unbiased_variance(variance, m):
    """Bessel's correction ``m / (m - 1) * variance`` of a 1/m batch variance."""
    return variance * m / (m - 1)


def population_stats(batches):
    """Inference statistics of the paper (Algorithm 2, step 10).

    ``batches`` has shape ``(num_batches, m, units)``. Returns the average of
    the batch means, ``E[x] = E_B[mu_B]``, and the average of the biased batch
    variances scaled by ``m / (m - 1)``, ``Var[x] = m/(m-1) * E_B[v_B]``.
    """
    m = batches.shape[1]
    batch_means = batches.mean(axis=1)
    batch_variances = batches.var(axis=1)  # 1/m, as in training
    mean = batch_means.mean(axis=0)
    variance = unbiased_variance(batch_variances.mean(axis=0), m)
    return mean, variance


# --------------------------------------------------------------------- small batches
def ghost_batch_norm(H, g, delta=DELTA):
    """Ghost Batch Normalization before ``gamma``, ``beta``: each consecutive
    group of ``g`` rows of ``H`` is normalized with its own column statistics
    (:func:`normalize` on each group), as ``bnlib.layers.ManualBatchNorm(
    ghost_size=g)`` does in training. ``g = m`` is plain BN.

    With ``g = 2`` a column's two values ``a``, ``b`` become
    ``+-(a - b) / 2 / sqrt((a - b)**2 / 4 + delta)``: ``+1`` and ``-1`` up to
    ``delta``, whatever ``a`` and ``b`` were. The layer after a dense BN with
    statistics over two examples sees only which of the two is larger, unit by
    unit; how far apart they were is lost (chapter 08).
    """
    H = np.asarray(H)
    if g < 1 or len(H) % g:
        raise ValueError(f"g ({g}) must divide the rows of H ({len(H)}): every "
                         f"ghost group has g examples")
    groups = H.reshape(-1, g, *H.shape[1:])
    return np.concatenate([normalize(group, delta) for group in groups])


# ---------------------------------------------- the normalizations that followed BN
def layer_norm(H, gamma=1.0, beta=0.0, delta=DELTA):
    """Layer Normalization: each ROW of ``H`` (one example) is normalized with
    its own mean and variance over its units, where BN normalizes each column
    over the minibatch. No minibatch statistics, so training and inference
    compute the same function."""
    mu = H.mean(axis=1, keepdims=True)
    variance = ((H - mu) ** 2).mean(axis=1, keepdims=True)
    return gamma * (H - mu) / np.sqrt(delta + variance) + beta


def group_norm(X, groups, gamma=1.0, beta=0.0, delta=DELTA):
    """Group Normalization of a convolutional batch ``X`` (N, H, W, C): the C
    channels are split into ``groups`` consecutive groups, and each example's
    group is normalized over its positions and channels. ``groups=1`` is
    Layer Normalization of the whole feature map; ``groups=C`` normalizes
    each channel of each example on its own (Instance Normalization)."""
    n, h, w, c = X.shape
    if c % groups:
        raise ValueError(f"groups ({groups}) must divide the channels ({c})")
    grouped = X.reshape(n, h, w, groups, c // groups)
    mu = grouped.mean(axis=(1, 2, 4), keepdims=True)
    variance = ((grouped - mu) ** 2).mean(axis=(1, 2, 4), keepdims=True)
    normalized = ((grouped - mu) / np.sqrt(delta + variance)).reshape(n, h, w, c)
    return gamma * normalized + beta
