"""The article's TensorFlow 1 model and training loop, runnable on TensorFlow 2.

The 2018 article builds its CNN with ``tf.layers`` in a TF1 graph: placeholders
for the images, the labels and an ``is_training`` switch,
``tf.layers.batch_normalization(..., training=is_training)`` after each ReLU,
and an ``AdamOptimizer`` whose ``minimize`` op runs under
``tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))`` so that
the moving averages of the batch statistics are updated at every step. This
module is that code on ``tf.compat.v1`` (a private ``tf.Graph`` and
``Session`` per trainer), with the update ops optional so that the article's
warning -- forget them and inference normalizes with the initial moving mean 0
and variance 1 -- can be measured.

``tf.compat.v1.layers`` lives in the ``tf-keras`` package (Keras 2). TensorFlow
routes to it only when ``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is
first imported; importing this module sets it when TensorFlow is not imported
yet, and raises :class:`LegacyKerasError` otherwise. ``import keras`` still
gives Keras 3 in the same process, so the rest of bnlib works alongside; only
``tf.keras`` becomes tf-keras.

:class:`TF1Trainer` has the interface of :class:`bnlib.training.Trainer`
(``train_step(index)``, ``evaluate()``, and the shared ``epoch_order`` and
``train_epoch``);
:func:`train_tf1` trains one configuration and returns its learning curve in
the format of :func:`bnlib.runner.run_one`.
"""

from __future__ import annotations

import os
import sys

LEGACY_KERAS_VAR = "TF_USE_LEGACY_KERAS"
_TRUE_VALUES = ("1", "true", "True")  # what TensorFlow accepts


class LegacyKerasError(ImportError):
    """TensorFlow was imported before ``TF_USE_LEGACY_KERAS=1`` was set."""


def _ensure_legacy_keras() -> None:
    if os.environ.get(LEGACY_KERAS_VAR) in _TRUE_VALUES:
        return
    if "tensorflow" in sys.modules:
        raise LegacyKerasError(
            f"bnlib.tf1 needs {LEGACY_KERAS_VAR}=1 set before TensorFlow is first "
            f"imported (TensorFlow then routes tf.compat.v1.layers to the tf-keras "
            f"package; Keras 3 has no tf.layers). TensorFlow is already imported in "
            f"this process without it ({LEGACY_KERAS_VAR}="
            f"{os.environ.get(LEGACY_KERAS_VAR)!r}). Fix: start Python with "
            f"{LEGACY_KERAS_VAR}=1 in the environment, or import bnlib.tf1 (or run "
            f"os.environ['{LEGACY_KERAS_VAR}'] = '1') before anything imports "
            f"tensorflow or keras; in Jupyter, restart the kernel and do it in the "
            f"first cell. `import keras` keeps giving Keras 3 with it set.")
    os.environ[LEGACY_KERAS_VAR] = "1"


_ensure_legacy_keras()

import dataclasses  # noqa: E402  (the variable must be set before TensorFlow loads)
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from .config import Protocol, RunConfig  # noqa: E402
from .training import EpochLoop, new_record, subset, train_epochs  # noqa: E402

tf1 = tf.compat.v1  # the TF1 API: tf1.layers is the article's tf.layers


# --------------------------------------------------------------------------- model
def article_cnn(x, is_training, config: RunConfig, *, momentum: float = 0.99,
                epsilon: float = 1e-3):
    """The article's ``CNN`` class body: logits of the 10 classes.

    BN sits after the ReLU and uses ``tf.layers``' defaults (momentum 0.99,
    epsilon 1e-3); ``training=is_training`` picks batch statistics (True) or the
    moving averages (False) at run time.
    """
    l_1 = tf1.layers.conv2d(inputs=x, filters=32, kernel_size=[5, 5],
                            padding="same", activation=tf.nn.relu)
    if config.bn_conv:
        l_1 = tf1.layers.batch_normalization(l_1, training=is_training,
                                             momentum=momentum, epsilon=epsilon)
    l_2 = tf1.layers.max_pooling2d(inputs=l_1, pool_size=[2, 2], strides=2)
    l_3 = tf1.layers.conv2d(inputs=l_2, filters=64, kernel_size=[5, 5],
                            padding="same", activation=tf.nn.relu)
    if config.bn_conv:
        l_3 = tf1.layers.batch_normalization(l_3, training=is_training,
                                             momentum=momentum, epsilon=epsilon)
    l_4 = tf1.layers.max_pooling2d(inputs=l_3, pool_size=[2, 2], strides=2)
    l_4_flat = tf.reshape(l_4, [-1, 4096])
    l_5 = tf1.layers.dense(inputs=l_4_flat, units=1024, activation=tf.nn.relu)
    if config.bn_dense:
        l_5 = tf1.layers.batch_normalization(l_5, training=is_training,
                                             momentum=momentum, epsilon=epsilon)
    if config.dropout:
        l_5 = tf1.layers.dropout(inputs=l_5, rate=config.dropout,
                                 training=is_training)
    return tf1.layers.dense(inputs=l_5, units=10)


def article_train_op(loss, config: RunConfig, *, use_update_ops: bool = True):
    """Adam on the loss; with ``use_update_ops`` the article's extra dependency.

    ``tf.layers.batch_normalization`` puts the assignments to its moving mean
    and variance into the graph collection ``UPDATE_OPS`` instead of running
    them itself. Nothing runs in a TF1 graph unless a fetched op depends on it,
    so the train op must depend on them; without it the moving averages keep
    their initial values (mean 0, variance 1) forever.
    """
    optimizer = tf1.train.AdamOptimizer(
        config.learning_rate, beta1=config.adam_beta_1,
        beta2=config.adam_beta_2, epsilon=config.adam_epsilon)
    extra_update_ops = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
    if not use_update_ops:
        return optimizer.minimize(loss)  # the article's warning: stats never move
    with tf.control_dependencies(extra_update_ops):
        return optimizer.minimize(loss)


@dataclasses.dataclass(frozen=True)
class ArticleGraph:
    """The handles of one built TF1 graph."""

    graph: tf.Graph
    x: tf.Tensor             # placeholder float32 (N, 32, 32, 3), raw 0-255 pixels
    y: tf.Tensor             # placeholder int32 (N,) class ids
    is_training: tf.Tensor   # placeholder bool scalar
    logits: tf.Tensor
    loss: tf.Tensor
    correct: tf.Tensor       # number of right predictions in the batch
    predicted: tf.Tensor
    train_op: tf.Operation
    update_ops: tuple        # the UPDATE_OPS collection
    model_variables: tuple   # the model's variables (moving statistics included)
    init_op: tf.Operation

    @property
    def num_params(self) -> int:
        return int(sum(np.prod(v.shape.as_list()) for v in self.model_variables))

    @property
    def moving_variables(self) -> tuple:
        return tuple(v for v in self.model_variables if "moving_" in v.name)


ARTICLE_SETTINGS = {"bn_position": "after_relu", "input_scaling": "raw",
                    "optimizer": "adam", "precision": "float32"}


def build_graph(config: RunConfig, *, seed: int = 0,
                use_update_ops: bool = True) -> ArticleGraph:
    """Placeholders, model, loss and train op in a new ``tf.Graph``."""
    for field, value in ARTICLE_SETTINGS.items():
        if getattr(config, field) != value:
            raise ValueError(f"bnlib.tf1 builds the article's model ({field} "
                             f"{value!r}); {config.name} has "
                             f"{getattr(config, field)!r}.")
    if {config.norm_conv, config.norm_dense} - {"none", "batch"}:
        raise ValueError(f"bnlib.tf1 builds the article's model (Batch "
                         f"Normalization only); {config.name} asks for "
                         f"{config.norm_conv!r} / {config.norm_dense!r}.")
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)  # graph-level seed: initial weights and dropout
        x = tf1.placeholder(tf.float32, shape=[None, 32, 32, 3], name="x")
        y = tf1.placeholder(tf.int32, shape=[None], name="y")
        is_training = tf1.placeholder(tf.bool, shape=[], name="is_training")
        # TF 1.x's default initializer for tf.layers kernels, seeded by the graph
        # seed (tf-keras would otherwise draw a seed from Python's `random`)
        with tf1.variable_scope(tf1.get_variable_scope(),
                                initializer=tf1.glorot_uniform_initializer()):
            logits = article_cnn(x, is_training, config,
                                 momentum=config.bn_momentum,
                                 epsilon=config.bn_epsilon)
        model_variables = tuple(tf1.global_variables())  # before Adam adds its own
        crossent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y,
                                                                  logits=logits)
        loss = tf.reduce_mean(crossent)
        predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, y), tf.int32))
        train_op = article_train_op(loss, config, use_update_ops=use_update_ops)
        update_ops = tuple(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS))
        init_op = tf1.global_variables_initializer()
    graph.finalize()  # nothing may add ops later (a classic TF1 slowdown)
    return ArticleGraph(graph, x, y, is_training, logits, loss, correct, predicted,
                        train_op, update_ops, model_variables, init_op)


# --------------------------------------------------------------------------- trainer
class TF1Trainer(EpochLoop):
    """The article's graph in a ``tf.compat.v1.Session``, fed from uint8 arrays.

    Same interface as :class:`bnlib.training.Trainer`: ``train_step(index)``
    feeds ``x_train[index]`` as float32 (no scaling, as the article) with
    ``is_training=True``, runs one Adam step and returns (loss, right
    predictions); ``evaluate()`` returns the test accuracy with
    ``is_training=False`` (moving statistics) in batches of 1000. The epoch
    loop, ``train_epoch``, is the Keras runner's (:class:`EpochLoop`).
    """

    def __init__(self, run_config: RunConfig, protocol: Protocol, x_train, y_train,
                 x_test, y_test, *, seed: int, use_update_ops: bool = True,
                 threads: int | None = None, eval_batch: int = 1000):
        super().__init__(protocol, len(x_train))  # the Keras runner's epoch loop
        self.x_train = np.asarray(x_train)
        self.y_train = np.asarray(y_train, dtype=np.int32)
        self.x_test = np.asarray(x_test)
        self.y_test = np.asarray(y_test, dtype=np.int32)
        self.eval_batch = eval_batch
        self.net = build_graph(run_config, seed=seed, use_update_ops=use_update_ops)
        session_config = tf1.ConfigProto(
            intra_op_parallelism_threads=threads or 0,  # 0: TensorFlow decides
            inter_op_parallelism_threads=max(1, min(2, threads)) if threads else 0)
        self.session = tf1.Session(graph=self.net.graph, config=session_config)
        self.session.run(self.net.init_op)

    @property
    def num_params(self) -> int:
        return self.net.num_params

    def train_step(self, index: np.ndarray) -> tuple[float, int]:
        """One training step; returns (mean loss, number of right predictions)."""
        net = self.net
        _, loss, correct = self.session.run(
            [net.train_op, net.loss, net.correct],
            feed_dict={net.x: self.x_train[index].astype(np.float32),
                       net.y: self.y_train[index], net.is_training: True})
        return float(loss), int(correct)

    def evaluate(self) -> float:
        net = self.net
        correct = 0
        for start in range(0, len(self.x_test), self.eval_batch):
            stop = start + self.eval_batch
            correct += int(self.session.run(net.correct, feed_dict={
                net.x: self.x_test[start:stop].astype(np.float32),
                net.y: self.y_test[start:stop], net.is_training: False}))
        return correct / len(self.x_test)

    def moving_statistics(self) -> dict[str, np.ndarray]:
        """Current values of every BN moving mean and variance, by variable name."""
        variables = self.net.moving_variables
        return {v.op.name: value for v, value in
                zip(variables, self.session.run(list(variables)))}

    def close(self) -> None:
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- loop
def train_tf1(run_config: RunConfig, protocol: Protocol, data, *, seed: int,
              use_update_ops: bool = True,
              progress: Callable[[int, int, float | None], None] | None = None,
              threads: int | None = None) -> dict:
    """Train one configuration the TF1 way; returns a result like ``run_one``'s.

    Same subset, shuffles and evaluation points as the Keras runner; nothing is
    written to disk. ``curve`` rows are ``[step, epoch, train_loss, train_acc,
    test_acc]`` every ``protocol.eval_every`` steps (train figures are averages
    since the previous row). ``moving_stats`` holds the final BN moving averages.
    """
    x_train, y_train, x_test, y_test = subset(data, protocol)
    result = new_record(run_config, seed, protocol, data, runner={
        "api": "tf.compat.v1 graph + Session (tf.layers via tf-keras)",
        "use_update_ops": use_update_ops, "train_step": "feed_dict of float32 batches"})
    with TF1Trainer(run_config, protocol, x_train, y_train, x_test, y_test,
                    seed=seed, use_update_ops=use_update_ops,
                    threads=threads) as trainer:
        result["num_params"] = trainer.num_params
        if progress:
            progress(0, protocol.total_steps, None)
        train_epochs(trainer, result, seed, progress=progress)
        result["moving_stats"] = trainer.moving_statistics()
    return result
