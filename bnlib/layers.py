"""Batch Normalization written by hand on ``tf.nn``, as a Keras 3 layer.

``ManualBatchNorm`` is the layer notebook 02 builds: ``tf.nn.moments`` for the
minibatch statistics, ``tf.nn.batch_normalization`` for
``gamma * (h - mu) / sqrt(var + eps) + beta``, and moving averages of ``mu`` and
``var`` that are updated in training mode and used in inference mode. It
normalizes over every axis but the last, so a dense input (N, C) gets per-unit
statistics and a convolutional input (N, H, W, C) per-channel statistics.

With ``fused=True`` a 4-D input goes through TensorFlow's fused kernel
(``FusedBatchNormV3``), which computes the same function in one pass and is much
faster on a CPU; the dense (2-D) case keeps the ``tf.nn`` path. The fused kernel
returns the Bessel-corrected batch variance ``m/(m-1) * var``; the layer turns it
back into the plain variance so its moving averages match Keras' layer.

With ``ghost_size`` each group of that many consecutive examples is normalized
with its own statistics ("ghost BN", chapter 08); :class:`BatchRenorm` is the
same layer as Batch Renormalization (Ioffe 2017), per ghost group when
``ghost_size`` is set, which Keras' own ``BatchNormalization(renorm=True)``
cannot do.

Santurkar et al.'s (2018) random shift and rescaling (:class:`SanturkarNoise`)
comes after BN in :class:`NoisyBatchNorm` ("noisy BN") and alone, on the
unnormalized output, in :class:`NoiseOnly` (their "noise without BN" control).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .models import BN_EPSILON, BN_MOMENTUM


RENORM_CLIPPING_KEYS = ("rmax", "rmin", "dmax")  # as Keras' renorm_clipping
RENORM_MOMENTUM = 0.99  # Keras' default renorm_momentum


class ManualBatchNorm(keras.layers.Layer):
    """Batch Normalization over all axes but the last, with moving averages."""

    def __init__(self, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON,
                 fused: bool = False, update_moving_averages: bool = True,
                 ghost_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon
        self.fused = fused
        # False reproduces the classic bug of a forgotten update (notebook 02)
        self.update_moving_averages = update_moving_averages
        # ghost BN: statistics over groups of ghost_size examples (chapter 08)
        self.ghost_size = ghost_size

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        # float32 variables, never cast to a mixed-precision compute dtype
        weight = dict(shape=channels, dtype="float32", autocast=False)
        self.gamma = self.add_weight(initializer="ones", name="gamma", **weight)
        self.beta = self.add_weight(initializer="zeros", name="beta", **weight)
        self.moving_mean = self.add_weight(initializer="zeros", trainable=False,
                                           name="moving_mean", **weight)
        self.moving_variance = self.add_weight(initializer="ones", trainable=False,
                                               name="moving_variance", **weight)

    def call(self, inputs, training=False):
        # as Keras: a frozen layer (trainable=False) always runs in inference mode
        training = bool(training) and self.trainable
        if self.fused and len(inputs.shape) == 4 and not self.ghost_size:
            return self._call_fused(inputs, training)
        # statistics and normalization in float32, as Keras' layer does
        x = tf.cast(inputs, tf.float32)
        if training and self.ghost_size:
            return tf.cast(self._call_ghost(x), inputs.dtype)
        if training:
            axes = list(range(len(x.shape) - 1))
            mean, variance = tf.nn.moments(x, axes=axes)
            self._update(mean, variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        outputs = tf.nn.batch_normalization(x, mean, variance, offset=self.beta,
                                            scale=self.gamma,
                                            variance_epsilon=self.epsilon)
        return tf.cast(outputs, inputs.dtype)

    def _call_ghost(self, x):
        """Each group of ``ghost_size`` consecutive examples is normalized with
        its own statistics; the moving averages take their mean over groups."""
        shape = tf.shape(x)
        grouped = tf.reshape(x, tf.concat([[-1, self.ghost_size], shape[1:]], 0))
        axes = list(range(1, len(x.shape)))  # within a group: examples (and H, W)
        mean, variance = tf.nn.moments(grouped, axes=axes, keepdims=True)
        self._update(tf.reshape(tf.reduce_mean(mean, axis=0), [-1]),
                     tf.reshape(tf.reduce_mean(variance, axis=0), [-1]))
        outputs = tf.nn.batch_normalization(grouped, mean, variance,
                                            offset=self.beta, scale=self.gamma,
                                            variance_epsilon=self.epsilon)
        return tf.reshape(outputs, shape)

    def _call_fused(self, inputs, training):
        if not training:
            outputs, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=self.gamma, offset=self.beta, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=self.epsilon,
                is_training=False)
            return outputs
        empty = tf.zeros([0], dtype=tf.float32)  # statistics are float32
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
            epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        self._update(mean, corrected_variance * (count - 1.0) / count)
        return outputs

    def _update(self, mean, variance):
        if not self.update_moving_averages:
            return
        keep = self.momentum
        self.moving_mean.assign(keep * self.moving_mean + (1.0 - keep) * mean)
        self.moving_variance.assign(keep * self.moving_variance
                                    + (1.0 - keep) * variance)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum,
                "epsilon": self.epsilon, "fused": self.fused,
                "update_moving_averages": self.update_moving_averages,
                "ghost_size": self.ghost_size}


class BatchRenorm(ManualBatchNorm):
    """bnlib's BN layer as Batch Renormalization, over the whole batch or over
    ghost groups of ``ghost_size`` examples (which Keras' own
    ``BatchNormalization(renorm=True)`` cannot do; chapter 08).

    Batch Renormalization (Ioffe 2017, Algorithm 1), computed as Keras 3's
    ``BatchNormalization(renorm=True)`` computes it, with the same arguments
    and defaults (``renorm_clipping`` a dict of optional ``"rmax"``, ``"rmin"``,
    ``"dmax"``, missing ones meaning no bound; ``renorm_momentum`` 0.99). In
    training a group ``B`` (the whole batch, or each ghost group) with
    mean ``mu_B`` and ``sigma_B = sqrt(var_B + epsilon)`` is normalized as BN
    does and then corrected towards the moving statistics ``mu``, ``sigma``:

        x_hat = (x - mu_B) / sigma_B * r + d,   r = sigma_B / sigma,
        d = (mu_B - mu) / sigma,   out = gamma * x_hat + beta,

    ``r`` clipped to ``[rmin, rmax]``, ``d`` to ``[-dmax, dmax]``, both held
    constant by the gradient (``stop_gradient``). Unclipped, the training
    output is the moving-statistics normalization (what inference computes),
    while the gradient still flows through the group's ``mu_B`` and
    ``sigma_B`` as in BN. Each ghost group gets its own ``r`` and ``d``, from
    its own ``mu_B``, ``sigma_B`` against the same ``mu``, ``sigma``.

    Moving statistics, as Keras keeps them: ``renorm_mean`` /
    ``renorm_stddev`` (momentum ``renorm_momentum``) give ``r`` and ``d``
    (``sigma`` floored at ``sqrt(epsilon)``); ``moving_mean`` /
    ``moving_stddev`` (momentum ``momentum``) are for inference, and
    ``moving_variance = max(moving_stddev**2 - epsilon, 0)`` so that
    inference divides by ``moving_stddev``. Each is updated after ``r`` and
    ``d`` are taken, with the batch's ``mu_B`` and ``sigma_B`` (with ghost
    groups: their mean over the groups).

    Where this differs from the paper: the clipping is fixed for the whole
    run, as Keras' (default: none), where the paper ramps ``rmax`` from 1 to 3
    and ``dmax`` from 0 to 5 over training (pure BN at first, its moving
    averages not yet meaningful); and the paper keeps one pair ``mu``,
    ``sigma`` for both uses, which the two pairs above are whenever
    ``renorm_momentum == momentum`` (the defaults: 0.99 and 0.99).
    """

    def __init__(self, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON,
                 ghost_size: int | None = None, renorm_clipping: dict | None = None,
                 renorm_momentum: float = RENORM_MOMENTUM, **kwargs):
        super().__init__(momentum, epsilon, ghost_size=ghost_size, **kwargs)
        self.renorm_clipping = dict(renorm_clipping or {})
        unknown = set(self.renorm_clipping) - set(RENORM_CLIPPING_KEYS)
        if unknown:
            raise ValueError(f"renorm_clipping takes the keys "
                             f"{', '.join(RENORM_CLIPPING_KEYS)} (as Keras), got "
                             f"{sorted(unknown)}")
        self.renorm_momentum = renorm_momentum

    def build(self, input_shape):
        super().build(input_shape)
        weight = {"shape": (int(input_shape[-1]),), "dtype": "float32"}
        # Keras' three, in Keras' order (sqrt(1) = 1 for the stds)
        for name, initializer in (("moving_stddev", "ones"), ("renorm_mean", "zeros"),
                                  ("renorm_stddev", "ones")):
            setattr(self, name, self.add_weight(initializer=initializer,
                                                trainable=False, name=name, **weight))

    def call(self, inputs, training=False):
        training = bool(training) and self.trainable
        if not training:  # inference: the moving statistics, as plain BN
            return super().call(inputs, training=False)
        x = tf.cast(inputs, tf.float32)
        shape = tf.shape(x)
        size = self.ghost_size or shape[0]
        grouped = tf.reshape(x, tf.concat([[-1, size], shape[1:]], 0))
        axes = list(range(1, len(x.shape)))  # within a group: examples (and H, W)
        mean, variance = tf.nn.moments(grouped, axes=axes, keepdims=True)
        stddev = tf.sqrt(variance + self.epsilon)
        r, d = self._renorm_correction(mean, stddev)
        self._update_renorm(tf.reshape(tf.reduce_mean(mean, axis=0), [-1]),
                            tf.reshape(tf.reduce_mean(stddev, axis=0), [-1]))
        # gamma * (x_hat * r + d) + beta = x_hat * (gamma r) + (gamma d + beta)
        outputs = tf.nn.batch_normalization(grouped, mean, variance,
                                            offset=self.gamma * d + self.beta,
                                            scale=self.gamma * r,
                                            variance_epsilon=self.epsilon)
        return tf.cast(tf.reshape(outputs, shape), inputs.dtype)

    def _renorm_correction(self, mean, stddev):
        """``r`` and ``d`` of each group against the renorm moving statistics
        (before this step's update), clipped, without gradient."""
        # as Keras: sigma floored at sqrt(epsilon) early in training
        moving_stddev = tf.maximum(self.renorm_stddev, self.epsilon ** 0.5)
        r = stddev / moving_stddev
        d = (mean - self.renorm_mean) / moving_stddev
        clipping = self.renorm_clipping
        if clipping.get("rmin") is not None:
            r = tf.maximum(r, clipping["rmin"])
        if clipping.get("rmax") is not None:
            r = tf.minimum(r, clipping["rmax"])
        if clipping.get("dmax") is not None:
            d = tf.clip_by_value(d, -clipping["dmax"], clipping["dmax"])
        return tf.stop_gradient(r), tf.stop_gradient(d)

    def _update_renorm(self, mean, stddev):
        """Keras' renorm updates: the renorm pair with ``renorm_momentum``, the
        inference pair with ``momentum``, the variance from the inference std."""
        if not self.update_moving_averages:
            return
        keep = self.renorm_momentum
        self.renorm_mean.assign(keep * self.renorm_mean + (1.0 - keep) * mean)
        self.renorm_stddev.assign(keep * self.renorm_stddev + (1.0 - keep) * stddev)
        keep = self.momentum
        self.moving_mean.assign(keep * self.moving_mean + (1.0 - keep) * mean)
        moving_stddev = keep * self.moving_stddev + (1.0 - keep) * stddev
        self.moving_stddev.assign(moving_stddev)
        # ReLU: rounding must not make the variance negative
        self.moving_variance.assign(tf.nn.relu(moving_stddev * moving_stddev
                                               - self.epsilon))

    def get_config(self):
        return {**super().get_config(), "renorm_clipping": dict(self.renorm_clipping),
                "renorm_momentum": self.renorm_momentum}


def fused_batch_norm(name: str, momentum: float = BN_MOMENTUM,
                     epsilon: float = BN_EPSILON, **kwargs) -> ManualBatchNorm:
    """The runner's layer: the manual layer with the fused kernel for conv inputs."""
    return ManualBatchNorm(momentum=momentum, epsilon=epsilon, fused=True, name=name,
                           **kwargs)


def manual_batch_norm(name: str, momentum: float = BN_MOMENTUM,
                      epsilon: float = BN_EPSILON, **kwargs) -> ManualBatchNorm:
    """The manual layer on ``tf.nn`` only (notebook 02's layer)."""
    return ManualBatchNorm(momentum=momentum, epsilon=epsilon, name=name, **kwargs)


class SanturkarNoise:
    """The random shift and rescaling of Santurkar et al. (2018, section 2.1),
    as a mixin of a Keras layer: what :class:`NoisyBatchNorm` adds after BN and
    what :class:`NoiseOnly` adds alone.

    At every training step each unit (channel) draws a mean
    ``mu ~ U(-mean_range, mean_range)`` and a scale
    ``sigma ~ U(scale_low, scale_high)``; then each example (and, for a
    convolution, each position: height and width count as batch dimensions)
    draws ``m ~ U(mu - jitter, mu + jitter)`` and ``s ~ N(sigma, jitter**2)``
    (``jitter`` is a standard deviation there), and the layer outputs
    ``s * x + m``. The draws come from a Keras
    ``SeedGenerator`` seeded by ``seed``, whose state is one of the layer's
    variables, so a run checkpointed and resumed draws the same noise (and a
    probe that restores the model's variables leaves the noise where it was).
    """

    def init_noise(self, seed: int | None, mean_range: float, scale_low: float,
                   scale_high: float, jitter: float) -> None:
        """Keep the noise's parameters and create its seed generator (call
        from the layer's ``__init__``, after ``keras.layers.Layer.__init__``)."""
        self.seed = seed
        self.mean_range, self.scale_low, self.scale_high = mean_range, scale_low, scale_high
        self.jitter = jitter
        self.noise_seed = keras.random.SeedGenerator(seed, name="noise_seed")

    def add_noise(self, x):
        """``s * x + m`` with the per-step, per-unit and per-example draws."""
        channels = x.shape[-1]
        dtype = x.dtype
        mu = keras.random.uniform((channels,), -self.mean_range, self.mean_range,
                                  seed=self.noise_seed)
        sigma = keras.random.uniform((channels,), self.scale_low, self.scale_high,
                                     seed=self.noise_seed)
        shape = tf.shape(x)
        m = mu + keras.random.uniform(shape, -self.jitter, self.jitter,
                                      seed=self.noise_seed)
        s = sigma + self.jitter * keras.random.normal(shape, seed=self.noise_seed)
        return tf.cast(s, dtype) * x + tf.cast(m, dtype)

    def noise_config(self) -> dict:
        return {"seed": self.seed, "mean_range": self.mean_range,
                "scale_low": self.scale_low, "scale_high": self.scale_high,
                "jitter": self.jitter}


class NoisyBatchNorm(SanturkarNoise, ManualBatchNorm):
    """Batch Normalization followed, in training only, by the random shift and
    rescaling of Santurkar et al. (2018, section 2.1), "noisy BN".

    The layer outputs ``s * bn(x) + m`` with the draws of
    :class:`SanturkarNoise` (a new ``mu``, ``sigma`` per unit at every step, a
    new ``m``, ``s`` per example and position). The noise changes the
    distribution of the layer's output at every step, deliberately: if BN
    helped by keeping that distribution fixed, this layer should lose BN's
    benefit. At inference it is the plain BN layer.
    """

    def __init__(self, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON,
                 *, seed: int | None = None, mean_range: float = 0.5,
                 scale_low: float = 1.0, scale_high: float = 1.25,
                 jitter: float = 0.1, **kwargs):
        super().__init__(momentum=momentum, epsilon=epsilon, fused=True, **kwargs)
        self.init_noise(seed, mean_range, scale_low, scale_high, jitter)

    def call(self, inputs, training=False):
        outputs = super().call(inputs, training=training)
        if not (bool(training) and self.trainable):
            return outputs
        return self.add_noise(outputs)

    def get_config(self):
        return {**super().get_config(), **self.noise_config()}


class NoiseOnly(SanturkarNoise, keras.layers.Layer):
    """Noisy BN's noise without the BN: Santurkar et al.'s control for "the
    same noise without BN" (norm kind ``"noise"``, "BN noise only").

    In training the layer outputs ``s * x + m`` on its input ``x`` as it comes,
    not normalized, with the draws of :class:`SanturkarNoise` (defaults as
    :class:`NoisyBatchNorm`: per step and unit ``mu ~ U(-0.5, 0.5)``,
    ``sigma ~ U(1, 1.25)``; per example and position ``m ~ U(mu -+ 0.1)``,
    ``s ~ N(sigma, 0.1**2)``). At inference it is the identity. It has no trainable
    weights: comparing it with no normalization shows what the noise costs by
    itself, and with noisy BN whether BN still helps under that noise.
    """

    def __init__(self, *, seed: int | None = None, mean_range: float = 0.5,
                 scale_low: float = 1.0, scale_high: float = 1.25,
                 jitter: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.init_noise(seed, mean_range, scale_low, scale_high, jitter)

    def call(self, inputs, training=False):
        # as the BN layers: a frozen layer (trainable=False) runs in inference mode
        if not (bool(training) and self.trainable):
            return inputs
        return self.add_noise(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), **self.noise_config()}
