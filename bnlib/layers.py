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
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .models import BN_EPSILON, BN_MOMENTUM


class ManualBatchNorm(keras.layers.Layer):
    """Batch Normalization over all axes but the last, with moving averages."""

    def __init__(self, momentum: float = BN_MOMENTUM, epsilon: float = BN_EPSILON,
                 fused: bool = False, update_moving_averages: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum
        self.epsilon = epsilon
        self.fused = fused
        # False reproduces the classic bug of a forgotten update (notebook 02)
        self.update_moving_averages = update_moving_averages

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.gamma = self.add_weight(shape=channels, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=channels, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=channels, initializer="zeros",
                                           trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape=channels, initializer="ones",
                                               trainable=False, name="moving_variance")

    def call(self, inputs, training=False):
        # as Keras: a frozen layer (trainable=False) always runs in inference mode
        training = bool(training) and self.trainable
        if self.fused and len(inputs.shape) == 4:
            return self._call_fused(inputs, training)
        if training:
            axes = list(range(len(inputs.shape) - 1))
            mean, variance = tf.nn.moments(inputs, axes=axes)
            self._update(mean, variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return tf.nn.batch_normalization(inputs, mean, variance, offset=self.beta,
                                         scale=self.gamma,
                                         variance_epsilon=self.epsilon)

    def _call_fused(self, inputs, training):
        if not training:
            outputs, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=self.gamma, offset=self.beta, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=self.epsilon,
                is_training=False)
            return outputs
        empty = tf.zeros([0], dtype=inputs.dtype)
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma, offset=self.beta, mean=empty, variance=empty,
            epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), inputs.dtype)
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
                "update_moving_averages": self.update_moving_averages}


def fused_batch_norm(name: str, momentum: float = BN_MOMENTUM,
                     epsilon: float = BN_EPSILON) -> ManualBatchNorm:
    """The runner's layer: the manual layer with the fused kernel for conv inputs."""
    return ManualBatchNorm(momentum=momentum, epsilon=epsilon, fused=True, name=name)


def manual_batch_norm(name: str, momentum: float = BN_MOMENTUM,
                      epsilon: float = BN_EPSILON) -> ManualBatchNorm:
    """The manual layer on ``tf.nn`` only (notebook 02's layer)."""
    return ManualBatchNorm(momentum=momentum, epsilon=epsilon, name=name)
