"""The network at initialization, before a single update (chapter 05).

Seconds of compute that explain what the input scale does to the untrained
network: the first loss against ln 10 (what a network that knows nothing and
says so would score), the spread of its logits, and how many first-layer ReLU
units are active on almost none or almost all of a batch (a unit that is always
off passes no gradient; one that is always on is linear).
"""

from __future__ import annotations

import math

import numpy as np

from .config import RunConfig
from .data import fixed_sample

CHANCE_LOSS = math.log(10)  # cross-entropy of a uniform guess over 10 classes
RARELY, MOSTLY = 0.05, 0.95  # "active on fewer than 5 % / more than 95 %"


def at_initialization(config: RunConfig, seed: int, data, batch_size: int = 512
                      ) -> dict:
    """Loss, logit spread and first-layer ReLU activity of ``config``'s network
    as ``seed`` initializes it, on ``batch_size`` training images
    (:func:`bnlib.data.fixed_sample`) in
    training mode (BN normalizes with the batch's statistics, as at step 1).

    ``standardize`` uses the channel statistics of the whole training split,
    as a run does. Returns ``loss``, ``loss_over_chance`` (loss / ln 10),
    ``logit_std``, ``rarely_active`` and ``mostly_active`` (shares of conv1's
    ReLU units, one unit per position and channel, active on fewer than 5 % /
    more than 95 % of the batch).
    """
    import keras
    import tensorflow as tf

    from .training import build_run_model, channel_statistics

    statistics = (channel_statistics(data.x_train)
                  if config.input_scaling == "standardize" else None)
    model = build_run_model(config, seed, input_statistics=statistics)
    names = {layer.name for layer in model.layers}
    relu = model.get_layer("relu_conv1" if "relu_conv1" in names else "conv1")
    probe = keras.Model(model.inputs, [relu.output, model.output])
    images, labels = fixed_sample(data.x_train, data.y_train, batch_size)
    images = tf.constant(images, tf.float32)
    labels = tf.constant(labels.astype(np.int32))
    activations, logits = probe(images, training=True)
    loss = float(tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.cast(logits, tf.float32))))
    active = (activations.numpy() > 0).mean(axis=0)  # per unit: share of the batch
    return {"loss": loss, "loss_over_chance": loss / CHANCE_LOSS,
            "logit_std": float(np.std(logits.numpy())),
            "rarely_active": float((active < RARELY).mean()),
            "mostly_active": float((active > MOSTLY).mean())}


def initialization_table(configs, data, seeds=(0, 1, 2), batch_size: int = 512
                         ) -> list[dict]:
    """:func:`at_initialization` for each configuration, mean over ``seeds``."""
    rows = []
    for config in configs:
        measured = [at_initialization(config, seed, data, batch_size)
                    for seed in seeds]
        row = {"name": config.name, "label": config.label, "seeds": len(seeds)}
        for key in measured[0]:
            row[key] = float(np.mean([m[key] for m in measured]))
        rows.append(row)
    return rows
