"""The training loop: one run configuration, one seed, in memory.

:class:`EpochLoop` is the loop every trainer shares (the protocol's shuffled
minibatches, a test evaluation every ``eval_every`` steps, the curve rows, the
divergence check); :class:`Trainer` is the Keras 3 trainer the book uses and
:class:`bnlib.tf1.TF1Trainer` the article's TF1 graph. :func:`build_run_model`
turns a :class:`~bnlib.config.RunConfig` into a Keras model and
:func:`new_record` starts the result record every run writes.
Files, resuming and the worker processes live in :mod:`bnlib.runner`.

TensorFlow and Keras are imported inside the functions that need them, never
at the top of a bnlib module that the command line or ``bnlib.tf1`` import
first: ``bnlib.tf1`` must set ``TF_USE_LEGACY_KERAS=1`` before TensorFlow
loads, and ``python -m bnlib list`` should not pay TensorFlow's start-up.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import platform
import time
import zlib
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from .config import CURVE_COLUMNS, Protocol, RunConfig, check_data, validate_config

SCHEMA_VERSION = 2
BN_KERNELS = ("fused", "keras", "manual")
ADAM_KERNELS = ("keras", "fused")
# a loss this many times the first step's is called diverged, like a NaN
DIVERGENCE_FACTOR = 1000.0
Progress = Callable[[int, int, "float | None"], None]


@dataclasses.dataclass(frozen=True)
class RunnerOptions:
    """How a run is computed where that does not change what is computed.

    ``bn_kernel``: ``"fused"`` (bnlib's layer on the fused kernel for
    convolutions: the runner's default, fastest on a CPU), ``"keras"`` (stock
    ``keras.layers.BatchNormalization``) or ``"manual"`` (bnlib's layer on
    ``tf.nn`` only), or a callable ``(name, momentum, epsilon) -> layer``.
    ``adam_kernel``: ``"keras"`` (what every committed grid used) or ``"fused"``
    (the same update in one kernel per variable, ~7 % faster here).
    ``threads``: TensorFlow intra-op threads per worker; ``workers``: worker
    processes of a grid.
    """

    bn_kernel: str | Callable = "fused"
    adam_kernel: str = "keras"
    threads: int | None = None
    workers: int = 1
    eval_batch: int = 1000

    def __post_init__(self):
        if isinstance(self.bn_kernel, str) and self.bn_kernel not in BN_KERNELS:
            raise ValueError(f"bn_kernel must be one of {BN_KERNELS}, "
                             f"got {self.bn_kernel!r}")
        if self.adam_kernel not in ADAM_KERNELS:
            raise ValueError(f"adam_kernel must be one of {ADAM_KERNELS}, "
                             f"got {self.adam_kernel!r}")
        if self.workers < 1 or (self.threads is not None and self.threads < 1):
            raise ValueError(f"workers and threads must be at least 1, got "
                             f"workers={self.workers}, threads={self.threads}")

    def record(self) -> dict:
        kernel = self.bn_kernel if isinstance(self.bn_kernel, str) else "custom"
        return {"bn_kernel": kernel, "adam_kernel": self.adam_kernel,
                "train_step": "tf.function, uint8 data in memory, gather + cast"}


# --------------------------------------------------------------------------- env
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def vector_extensions(flags: set[str] | None = None) -> str:
    """The widest SIMD extension of this CPU that TensorFlow's CPU kernels use
    (``/proc/cpuinfo`` flags): the same model name can hide hosts whose
    training speeds differ several times (this project's machine once had
    AVX-512, later AVX2 only)."""
    flags = cpu_flags() if flags is None else flags
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in flags:
            return name + (" + bf16" if flags & BF16_FLAGS else "")
    return "SSE or none" if flags else "unknown"


def environment_record(threads: int | None = None, workers: int = 1) -> dict:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "vector_extensions": vector_extensions(),
        "cpu_count": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "intra_op_threads": threads,
        "parallel_workers": workers,
    }


def configure_threads(threads: int | None) -> None:
    """Set TensorFlow's thread pools; must run before TF executes anything."""
    import tensorflow as tf

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(
                max(1, min(2, threads)))
        except RuntimeError:
            pass  # already initialised in this process; keep its settings


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- data
def subset(data, protocol: Protocol):
    """The protocol's slice of the data: balanced first-N per split."""
    def take(x, y, size):
        if size is None or size >= len(x):
            return x, y
        order = np.argsort(_rank_within_class(y), kind="stable")
        keep = np.sort(order[:size])
        return x[keep], y[keep]

    x_train, y_train = take(data.x_train, data.y_train, protocol.train_size)
    x_test, y_test = take(data.x_test, data.y_test, protocol.test_size)
    return x_train, y_train, x_test, y_test


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    """0 for each class's first image, 1 for its second, ...: round-robin order."""
    ranks = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        ranks[where] = np.arange(len(where))
    return ranks


def channel_statistics(x_train: np.ndarray) -> dict:
    """Per-channel mean and standard deviation of the training images (0-255),
    what ``input_scaling="standardize"`` subtracts and divides by."""
    pixels = x_train.reshape(-1, x_train.shape[-1])
    mean = np.zeros(pixels.shape[1])
    square = np.zeros(pixels.shape[1])
    for start in range(0, len(pixels), 1 << 22):  # float64 sums, in chunks
        chunk = pixels[start:start + (1 << 22)].astype(np.float64)
        mean += chunk.sum(axis=0)
        square += (chunk ** 2).sum(axis=0)
    mean /= len(pixels)
    std = np.sqrt(square / len(pixels) - mean ** 2)
    return {"mean": [round(float(m), 4) for m in mean],
            "std": [round(float(s), 4) for s in std],
            "computed_on": f"{len(x_train)} training images"}


def epoch_order(protocol: Protocol, num_train: int, seed: int, epoch: int
                ) -> np.ndarray:
    """The shuffled indices of one epoch, reproducible from (seed, epoch).

    Depends on nothing else, so a resumed run, the TF1 loop and the plain-Keras
    reference all see the same minibatches in the same order.
    """
    rng = np.random.default_rng([seed, epoch])
    needed = protocol.steps_per_epoch * protocol.batch_size
    order = rng.permutation(num_train)
    while len(order) < needed:  # small subsets: concatenate fresh shuffles
        order = np.concatenate([order, rng.permutation(num_train)])
    return order[:needed].astype(np.int32)


# --------------------------------------------------------------------------- loop
class Diverged(FloatingPointError):
    """The training loss became NaN or infinite, or grew by orders of magnitude."""

    def __init__(self, step: int, loss: float, first_loss: float | None = None):
        why = (f"became {loss}" if not math.isfinite(loss) else
               f"grew to {loss:.4g}, more than {DIVERGENCE_FACTOR:g} times the "
               f"first step's {first_loss:.4g}")
        super().__init__(
            f"the training loss {why} at step {step}. Lower the learning "
            f"rate (--learning-rate, or the run's learning_rate), or check "
            f"that the data holds no NaN.")
        self.step = step


class EpochLoop:
    """The training loop every trainer shares: the protocol's shuffled
    minibatches, one ``train_step(index) -> (loss, correct)`` each, and a test
    ``evaluate()`` every ``eval_every`` steps. :class:`Trainer` (Keras) and
    :class:`bnlib.tf1.TF1Trainer` (TF1 graph) provide the two methods.

    The training loss and accuracy of a curve row are means over the steps
    since the previous row; that running window is part of :meth:`loop_state`,
    so a run resumed at an epoch boundary that falls between two rows gives
    the same row as an uninterrupted one.
    """

    probes: dict = {}
    early_probes: dict = {}  # also recorded every early_probe_every steps
    early_probe_every = 0
    early_probe_last_step = 0

    def __init__(self, protocol: Protocol, num_train: int):
        self.protocol = protocol
        self.num_train = num_train
        self._window = [0.0, 0.0, 0]   # loss sum, correct, seen since the last point
        self._first_loss: float | None = None
        self.latest_test_acc: float | None = None

    def loop_state(self) -> dict:
        return {"window": list(self._window), "first_loss": self._first_loss,
                "latest_test_acc": self.latest_test_acc}

    def restore_loop_state(self, state: dict) -> None:
        self._window = list(state["window"])
        self._first_loss = state["first_loss"]
        self.latest_test_acc = state["latest_test_acc"]

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        return epoch_order(self.protocol, self.num_train, seed, epoch)

    def train_epoch(self, seed: int, epoch: int, progress: Progress | None = None,
                    probe_rows: dict | None = None) -> tuple[list[list[float]], float]:
        """Train one epoch in the protocol's minibatch order for ``seed``.

        Every ``eval_every`` steps (and at the last step) the whole test set is
        evaluated and a curve point ``[step, epoch, train_loss, train_acc,
        test_acc]`` is recorded, and each probe's row is appended to
        ``probe_rows[name]``; between evaluations, the early probes' rows every
        ``early_probe_every`` steps up to ``early_probe_last_step``. Returns
        the epoch's points and the seconds spent evaluating and probing.
        Raises :class:`Diverged` at a non-finite or exploding loss.
        """
        protocol, size = self.protocol, self.protocol.batch_size
        order = self.epoch_order(seed, epoch)
        points, eval_seconds = [], 0.0
        for step_in_epoch in range(protocol.steps_per_epoch):
            step = epoch * protocol.steps_per_epoch + step_in_epoch + 1
            index = order[step_in_epoch * size:(step_in_epoch + 1) * size]
            loss, correct = self.train_step(index)
            loss = float(loss)
            if self._first_loss is None:
                self._first_loss = loss
            if not math.isfinite(loss) or (
                    self._first_loss > 0
                    and loss > DIVERGENCE_FACTOR * self._first_loss):
                raise Diverged(step, loss, self._first_loss)
            self._window[0] += loss * size
            self._window[1] += float(correct)
            self._window[2] += size
            if step % protocol.eval_every == 0 or step == protocol.total_steps:
                tic = time.perf_counter()
                self.latest_test_acc = self.evaluate()
                for name, probe in self.probes.items():
                    if probe_rows is not None:
                        probe_rows.setdefault(name, []).append([step] + probe())
                eval_seconds += time.perf_counter() - tic
                loss_sum, correct_sum, seen = self._window
                points.append([step, round(step / protocol.steps_per_epoch, 4),
                               loss_sum / seen, correct_sum / seen,
                               self.latest_test_acc])
                self._window = [0.0, 0.0, 0]
            elif (self.early_probes and step <= self.early_probe_last_step
                  and step % self.early_probe_every == 0 and probe_rows is not None):
                tic = time.perf_counter()
                for name, probe in self.early_probes.items():
                    probe_rows.setdefault(name, []).append([step] + probe())
                eval_seconds += time.perf_counter() - tic
            if progress:
                progress(step, protocol.total_steps, self.latest_test_acc)
        return points, eval_seconds


class Trainer(EpochLoop):
    """A compiled training step for one model, data held in memory as uint8.

    Each step gathers a minibatch of the shuffled index order, casts it to
    float32 (any input scaling is the model's first layer), and applies one
    update of the run's optimizer (Adam as the article, or SGD with optional
    momentum). The BN moving averages are updated inside the same compiled
    step.

    ``adam_kernel="fused"`` applies the same Adam update with TensorFlow's fused
    ``ResourceApplyAdam`` kernel (one pass over each variable, as TF1's
    ``AdamOptimizer``) on the Keras optimizer's own slots, instead of Keras'
    several element-wise passes; checkpoints are the same either way.
    The steps are traced without AutoGraph: they hold no tensor-dependent Python
    control flow, and tracing never re-reads source files that may have changed.
    """

    def __init__(self, model, config: RunConfig, protocol: Protocol, x_train,
                 y_train, x_test, y_test, *, options: RunnerOptions = RunnerOptions()):
        import keras
        import tensorflow as tf

        from .probes import make_probes

        super().__init__(protocol, len(x_train))
        self.model = model
        self.optimizer = make_optimizer(config)
        self.optimizer.build(model.trainable_variables)
        self.x_train = tf.constant(x_train)
        self.y_train = tf.constant(y_train.astype(np.int32))
        self.x_test = x_test
        self.y_test = y_test.astype(np.int32)
        self.eval_batch = options.eval_batch
        self.probes = make_probes(config, model, x_test, x_train, y_train,
                                  y_test=y_test, batch_size=protocol.batch_size)
        self.early_probes = {name: self.probes[name] for name in config.early_probes}
        self.early_probe_every = config.early_probe_every
        self.early_probe_last_step = config.early_probe_epochs * protocol.steps_per_epoch
        trainable = model.trainable_variables
        fused = options.adam_kernel == "fused"
        if fused and not isinstance(self.optimizer, keras.optimizers.Adam):
            raise ValueError(f"{config.name}: adam_kernel 'fused' needs the Adam "
                             f"optimizer, the run uses {config.optimizer!r}")
        apply_gradients = self._fused_adam if fused else self.optimizer.apply

        @tf.function(reduce_retracing=True, autograph=False)
        def train_step(index):
            images = tf.cast(tf.gather(self.x_train, index), tf.float32)
            labels = tf.gather(self.y_train, index)
            with tf.GradientTape() as tape:
                logits = tf.cast(model(images, training=True), tf.float32)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=logits))
            grads = tape.gradient(loss, trainable)
            apply_gradients(grads, trainable)
            correct = tf.reduce_sum(tf.cast(
                tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels),
                tf.float32))
            return loss, correct

        @tf.function(reduce_retracing=True, autograph=False)
        def predict_step(images):
            logits = model(tf.cast(images, tf.float32), training=False)
            return tf.argmax(logits, axis=1, output_type=tf.int32)

        self.train_step = train_step
        self.predict_step = predict_step

    def _fused_adam(self, grads, variables):
        import tensorflow as tf

        opt = self.optimizer
        opt.iterations.assign_add(1)
        step = tf.cast(opt.iterations, tf.float32)
        constants = {name: tf.constant(value, tf.float32) for name, value in
                     (("beta1", opt.beta_1), ("beta2", opt.beta_2),
                      ("epsilon", opt.epsilon))}
        for grad, variable in zip(grads, variables):
            slot = opt._get_variable_index(variable)
            tf.raw_ops.ResourceApplyAdam(
                var=variable.value.handle, m=opt._momentums[slot].value.handle,
                v=opt._velocities[slot].value.handle,
                beta1_power=tf.pow(constants["beta1"], step),
                beta2_power=tf.pow(constants["beta2"], step),
                lr=tf.cast(opt.learning_rate, tf.float32), grad=grad, **constants)

    def evaluate(self) -> float:
        correct = 0
        for start in range(0, len(self.x_test), self.eval_batch):
            batch = self.x_test[start:start + self.eval_batch]
            predicted = self.predict_step(batch).numpy()
            correct += int((predicted == self.y_test[start:start + self.eval_batch]).sum())
        return correct / len(self.x_test)

    def state(self) -> dict:
        arrays = {f"m{i}": v.numpy() for i, v in enumerate(self.model.variables)}
        arrays.update({f"o{i}": v.numpy()
                       for i, v in enumerate(self.optimizer.variables)})
        return arrays

    def restore(self, arrays) -> None:
        for prefix, variables in (("m", self.model.variables),
                                  ("o", self.optimizer.variables)):
            for i, variable in enumerate(variables):
                variable.assign(arrays[f"{prefix}{i}"])


def make_optimizer(config: RunConfig):
    import keras

    if config.optimizer == "adam":
        return keras.optimizers.Adam(
            learning_rate=config.learning_rate, beta_1=config.adam_beta_1,
            beta_2=config.adam_beta_2, epsilon=config.adam_epsilon)
    return keras.optimizers.SGD(learning_rate=config.learning_rate,
                                momentum=config.momentum)


# --------------------------------------------------------------------------- models
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def native_bfloat16() -> bool:
    """This CPU computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16``)."""
    return bool(cpu_flags() & BF16_FLAGS)


def check_precision(precision: str) -> None:
    """Refuse bfloat16 on a CPU without native bfloat16 arithmetic.

    Without ``avx512_bf16`` or ``amx_bf16`` TensorFlow emulates bfloat16 and a
    mixed-precision run is slower than float32, not faster: refused rather than
    silently slow.
    """
    if precision == "mixed_bfloat16" and not native_bfloat16():
        raise ValueError(
            "precision 'mixed_bfloat16' needs a CPU with native bfloat16 "
            "(the avx512_bf16 or amx_bf16 flag in /proc/cpuinfo); this CPU "
            f"({cpu_name()}) has neither, so TensorFlow would emulate it, slower "
            "than float32. Use --precision float32.")


def norm_layer_factory(config: RunConfig, bn_kernel: str | Callable = "fused",
                       seed: int | None = None) -> Callable[[str, str], object]:
    """``(kind, name) -> layer`` for :func:`bnlib.models.build_cnn`.

    ``"batch"`` layers come from ``bn_kernel`` (see :class:`RunnerOptions`);
    momentum and epsilon come from the run configuration. ``"ghost"`` is bnlib's
    layer with a statistics-batch size; ``"layer"`` is Keras'
    ``LayerNormalization`` on the dense layer and, on a convolution (a layer
    named ``bn_conv...``), ``GroupNormalization`` with one group, as Wu & He
    define LayerNorm there; ``"group"`` is Keras' ``GroupNormalization``. ``"renorm"`` without
    ``ghost_size`` is Keras' ``BatchNormalization(renorm=True)``, as it always
    was; with ``ghost_size`` it is bnlib's
    :class:`~bnlib.layers.BatchRenorm` (bnlib's BN layer as renorm) over ghost
    groups (over one group of the whole batch it computes Keras' function:
    ``tests/test_small_batches.py``). Both clip ``r`` and ``d`` as the run's
    ``renorm_rmax`` / ``renorm_dmax`` say (unclipped where None, Keras'
    default) and use Keras' renorm momentum 0.99. ``"noisy"`` is
    :class:`bnlib.layers.NoisyBatchNorm` and ``"noise"`` its noise without the
    BN (:class:`bnlib.layers.NoiseOnly`), each layer's noise seeded from
    ``seed`` and the layer's name.
    """
    import keras

    from . import layers, models

    kernels = {"fused": layers.fused_batch_norm, "keras": models.keras_batch_norm,
               "manual": layers.manual_batch_norm}
    if isinstance(bn_kernel, str):
        if bn_kernel not in kernels:
            raise ValueError(f"bn_kernel must be one of {BN_KERNELS}, "
                             f"got {bn_kernel!r}")
        bn_kernel = kernels[bn_kernel]
    dtype = None if config.precision == "float32" else config.precision
    momentum, epsilon = config.bn_momentum, config.bn_epsilon

    def make(kind: str, name: str):
        if kind == "batch":
            return bn_kernel(name, momentum, epsilon, **({"dtype": dtype} if dtype
                                                         else {}))
        if kind == "ghost":
            return layers.ManualBatchNorm(momentum, epsilon,
                                          ghost_size=config.ghost_size, name=name,
                                          dtype=dtype)
        if kind == "layer" and name.startswith("bn_conv"):
            # Wu & He's LayerNorm of a convolution: one group over channels,
            # height and width, a scale and shift per channel (Keras'
            # LayerNormalization would normalize each position over its
            # channels only)
            return keras.layers.GroupNormalization(groups=1, epsilon=epsilon,
                                                   name=name, dtype=dtype)
        if kind == "layer":
            return keras.layers.LayerNormalization(epsilon=epsilon, name=name,
                                                   dtype=dtype)
        if kind == "group":
            return keras.layers.GroupNormalization(groups=config.groups,
                                                   epsilon=epsilon, name=name,
                                                   dtype=dtype)
        clipping = None if config.renorm_rmax is None and config.renorm_dmax is None \
            else {key: value for key, value in (
                ("rmax", config.renorm_rmax),
                ("rmin", None if config.renorm_rmax is None else 1 / config.renorm_rmax),
                ("dmax", config.renorm_dmax)) if value is not None}
        if kind == "renorm" and config.ghost_size:
            return layers.BatchRenorm(momentum, epsilon, renorm_clipping=clipping,
                                      ghost_size=config.ghost_size, name=name,
                                      dtype=dtype)
        if kind == "renorm":
            return keras.layers.BatchNormalization(
                momentum=momentum, epsilon=epsilon, renorm=True,
                renorm_clipping=clipping, name=name,
                dtype=dtype)
        if kind in ("noisy", "noise"):
            # each layer its own noise stream, from (seed, layer name)
            layer_seed = (None if seed is None else
                          (seed * 7919 + zlib.crc32(name.encode())) % 2**31)
            if kind == "noise":
                return layers.NoiseOnly(seed=layer_seed, name=name, dtype=dtype)
            return layers.NoisyBatchNorm(momentum, epsilon, seed=layer_seed,
                                         name=name, dtype=dtype)
        raise NotImplementedError(f"no layer for norm kind {kind!r}")

    return make


def input_layer(config: RunConfig, statistics: dict | None, make_norm):
    """The model's first layer for the run's input scaling (None for raw)."""
    import keras

    scaling = config.input_scaling
    if scaling == "raw":
        return None
    if scaling == "unit":
        return keras.layers.Rescaling(1.0 / 255.0, name="unit_scale")
    if scaling == "standardize":
        if statistics is None:
            raise ValueError(f"{config.name}: input_scaling 'standardize' needs the "
                             f"training split's channel statistics")
        return keras.layers.Normalization(
            mean=statistics["mean"], variance=np.square(statistics["std"]).tolist(),
            name="standardize")
    return make_norm("batch", "bn_input")  # "bn_input": BN on the raw image


def build_run_model(config: RunConfig, seed: int, *, bn_kernel="fused",
                    input_statistics: dict | None = None):
    """The network of ``config``, initialised from ``seed`` as every run is.

    ``precision="mixed_bfloat16"`` gives every layer but the logits Keras'
    ``mixed_bfloat16`` policy: variables stay float32 (so the optimizer's
    state is float32), convolutions and matrix products run in bfloat16, and
    the logits layer, hence the loss, is float32. Normalization layers keep
    float32 statistics: bnlib's BN feeds bfloat16 activations to the fused
    kernel, which accumulates mean and variance in float32 and takes float32
    scale, offset and moving averages (its dense path, like Keras' own
    ``BatchNormalization``, casts to float32 first). Refused on a CPU without
    native bfloat16 (:func:`check_precision`).
    """
    import keras

    from . import models

    validate_config(config)
    check_precision(config.precision)
    keras.utils.set_random_seed(seed)
    make_norm = norm_layer_factory(config, bn_kernel, seed)
    first = input_layer(config, input_statistics, make_norm)
    if config.model == "sigmoid_mlp":
        return models.build_sigmoid_mlp(
            config.bn_dense, norm_layer=make_norm, input_layer=first,
            dtype=None if config.precision == "float32" else config.precision)
    return models.build_cnn(
        config.norm_conv, config.norm_dense, config.dropout,
        bn_position=config.bn_position, norm_layer=make_norm, input_layer=first,
        seed=seed, dtype=None if config.precision == "float32" else config.precision)


def prepare(config: RunConfig, seed: int, protocol: Protocol, data,
            options: RunnerOptions = RunnerOptions()):
    """The protocol's data slice, the run's model and its trainer, and the
    input statistics (None unless the inputs are standardized)."""
    validate_config(config, protocol)
    check_data(protocol, data)  # sizes within what this data holds
    x_train, y_train, x_test, y_test = subset(data, protocol)
    statistics = (channel_statistics(x_train)
                  if config.input_scaling == "standardize" else None)
    model = build_run_model(config, seed, bn_kernel=options.bn_kernel,
                            input_statistics=statistics)
    trainer = Trainer(model, config, protocol, x_train, y_train, x_test, y_test,
                      options=options)
    return trainer, statistics


class TrainedRun(NamedTuple):
    model: object
    curve: np.ndarray   # columns: step, epoch, train_loss, train_acc, test_acc


def train_run(config: RunConfig, seed: int, protocol: Protocol, data, *,
              options: RunnerOptions = RunnerOptions(),
              progress: Progress | None = None) -> TrainedRun:
    """Train one (run, seed) in memory, step for step as
    :func:`bnlib.runner.run_one` does, and return the trained model with its
    curve. No files, no resuming: for notebooks that need the model itself."""
    trainer, _ = prepare(config, seed, protocol, data, options)
    curve = []
    for epoch in range(protocol.epochs):
        curve += trainer.train_epoch(seed, epoch, progress)[0]
    return TrainedRun(trainer.model, np.array(curve))


def new_record(config: RunConfig, seed: int, protocol: Protocol, data, *,
               grid: str | None = None, run_id: int | None = None,
               runner: dict | None = None) -> dict:
    """The result record every run starts from (Keras runner and TF1 loop)."""
    return {
        "schema": SCHEMA_VERSION,
        "grid": grid,
        "run_id": run_id,
        "name": config.name,
        "seed": seed,
        "label": config.label,
        "status": "running",
        "config": config.to_dict(),
        "protocol": protocol.curve_fields(),
        "data": data.provenance.to_dict(),
        "runner": runner or {},
        "curve_columns": list(CURVE_COLUMNS),
        "curve": [],
        "epochs_done": 0,
        "diverged_at_step": None,
        "timing": {"train_seconds": 0.0, "eval_seconds": 0.0, "wall_seconds": 0.0},
        "started": now(),
        "finished": None,
    }


def train_epochs(trainer: EpochLoop, record: dict, seed: int, *,
                 start_epoch: int = 0, progress: Progress | None = None,
                 after_epoch: Callable[[int], None] | None = None) -> dict:
    """Train from ``start_epoch`` to the end of the protocol into ``record``:
    curve rows, probe rows, timings and ``epochs_done`` after each epoch (then
    ``after_epoch(epoch)``, where the runner checkpoints); a divergence ends it
    with status ``diverged``. Returns the record, finished."""
    protocol = trainer.protocol
    timing = record["timing"]
    try:
        for epoch in range(start_epoch, protocol.epochs):
            tic = time.perf_counter()
            points, eval_seconds = trainer.train_epoch(seed, epoch, progress,
                                                       record.get("probes"))
            record["curve"] += points
            elapsed = time.perf_counter() - tic
            timing["train_seconds"] += elapsed - eval_seconds
            timing["eval_seconds"] += eval_seconds
            timing["wall_seconds"] += elapsed
            record["epochs_done"] = epoch + 1
            if after_epoch is not None and epoch + 1 < protocol.epochs:
                after_epoch(epoch)
    except Diverged as err:
        record.update(status="diverged", diverged_at_step=err.step)
    return finish_record(record, protocol)


def finish_record(record: dict, protocol: Protocol) -> dict:
    """Mark a record complete: final and best test accuracy, images/s."""
    timing = record["timing"]
    images = record["epochs_done"] * protocol.steps_per_epoch * protocol.batch_size
    timing["train_images_per_second"] = images / max(timing["train_seconds"], 1e-9)
    if record["status"] == "running":
        record["status"] = "complete"
    record["finished"] = now()
    if record["status"] == "complete" and record["curve"]:
        record["final_test_acc"] = record["curve"][-1][4]
        record["best_test_acc"] = max(point[4] for point in record["curve"])
    return record
