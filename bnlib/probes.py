"""Probes: extra series a run records at each evaluation, without changing it.

A probe is named in :attr:`bnlib.config.RunConfig.probes` as ``kind:argument``.
At every test evaluation the runner calls each probe, which returns one row of
numbers; the result JSON keeps them under ``probes[<name>]`` with their column
names under ``probe_columns[<name>]``, each row starting with the step.

A probe must not change the training trajectory: it reads the model in
inference mode on a fixed batch of test images and touches no variable, no
random-number generator and no optimizer state (a test trains the same run
with and without a probe and compares the curves bit for bit).

Kinds:

``activation_input:<layer>``
    The tensor fed to a layer's nonlinearity: the ReLU of ``conv1``, ``conv2``
    or ``dense1`` of the article's CNN, or the sigmoid of ``dense1``-``dense3``
    of the Figure 1 network (``model="sigmoid_mlp"``). That is the layer's
    ``XW + b`` with the article's placement (BN after the ReLU), the
    normalization's output with the paper's (BN before it). Records the 15th,
    50th and 85th percentiles of one fixed unit (unit 0; for a convolution,
    channel 0 over all positions) and of all units pooled, over the probe batch
    (Ioffe & Szegedy's Figure 1 b, c), and the spread of the per-unit medians
    over all units (their 15th, 50th and 85th percentiles).
"""

from __future__ import annotations

import numpy as np

PROBE_KINDS = {"activation_input": ("conv1", "conv2", "dense1", "dense2", "dense3")}
# the layers each model has a nonlinearity after
MODEL_LAYERS = {"article_cnn": ("conv1", "conv2", "dense1"),
                "sigmoid_mlp": ("dense1", "dense2", "dense3")}
PERCENTILES = (15, 50, 85)
PROBE_BATCH = 1000  # the first test images (or all of a smaller test subset)


def check_probe(config, spec: str) -> None:
    """Raise :class:`bnlib.config.ConfigError` unless ``spec`` names a probe."""
    from .config import ConfigError

    kind, _, argument = str(spec).partition(":")
    if kind not in PROBE_KINDS:
        forms = ", ".join(f"{k}:<{'|'.join(v)}>" for k, v in PROBE_KINDS.items())
        raise ConfigError(f"{config.name}: unknown probe {spec!r}; kinds: {forms}")
    layers = MODEL_LAYERS.get(config.model, PROBE_KINDS[kind])
    if argument not in layers:
        raise ConfigError(f"{config.name}: probe {kind} of model {config.model} "
                          f"takes one of {', '.join(layers)}, got {argument!r}")


class ActivationInputProbe:
    """Percentiles of the input of one layer's nonlinearity (see the module doc)."""

    def __init__(self, model, layer_name: str, images: np.ndarray):
        import keras
        import tensorflow as tf

        self.columns = (["step"] + [f"unit_p{p}" for p in PERCENTILES]
                        + [f"all_p{p}" for p in PERCENTILES]
                        + [f"median_p{p}" for p in PERCENTILES])
        names = {layer.name for layer in model.layers}
        separate = [f"{kind}_{layer_name}" for kind in ("relu", "sigmoid")
                    if f"{kind}_{layer_name}" in names]
        if separate:  # a layer of its own (BN before it, or the MLP's sigmoid)
            source = keras.Model(model.inputs, model.get_layer(separate[0]).input)
            finish = tf.identity
        else:  # the layer's own activation: recompute XW + b from its input
            layer = model.get_layer(layer_name)
            source = keras.Model(model.inputs, layer.input)
            if isinstance(layer, keras.layers.Dense):
                def finish(x):
                    return tf.matmul(x, tf.cast(layer.kernel, x.dtype)) + tf.cast(
                        layer.bias, x.dtype)
            else:
                def finish(x):
                    return layer.convolution_op(x, tf.cast(layer.kernel, x.dtype)) \
                        + tf.cast(layer.bias, x.dtype)
        self._images = tf.constant(images[:PROBE_BATCH])

        @tf.function(autograph=False)
        def values():
            x = source(tf.cast(self._images, tf.float32), training=False)
            x = tf.cast(finish(x), tf.float32)
            return tf.reshape(x, [-1, tf.shape(x)[-1]])

        self._values = values

    def __call__(self) -> list[float]:
        values = self._values().numpy()
        unit = np.percentile(values[:, 0], PERCENTILES)
        pooled = np.percentile(values, PERCENTILES)
        medians = np.percentile(np.median(values, axis=0), PERCENTILES)
        return [float(v) for v in (*unit, *pooled, *medians)]


def make_probes(config, model, x_test: np.ndarray) -> dict:
    """``{spec: probe}`` for the run's probes (empty when it has none)."""
    probes = {}
    for spec in config.probes:
        kind, _, argument = spec.partition(":")
        if kind == "activation_input":
            probes[spec] = ActivationInputProbe(model, argument, x_test)
    return probes
