"""The article's 12 trainings as data, and a resumable runner for them.

Each (run id, seed) writes one JSON under ``results/<profile>/``: configuration,
protocol, data provenance, library versions, CPU, timings and the learning curve
``[step, epoch, train_loss, train_acc, test_acc]``. Files are written
atomically. A per-epoch checkpoint lets an interrupted run resume at its last
finished epoch; finished runs are skipped; a NaN loss marks a run ``diverged``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np

SCHEMA_VERSION = 1
# What the article reports for its single-seed, 400-epoch runs (final and maximum
# test accuracy), quoted for comparison in notebook 04.
ARTICLE_REPORTED = {
    0: (0.558, 0.577), 1: (0.559, 0.582), 2: (0.581, 0.607), 3: (0.728, 0.747),
    4: (0.746, 0.748), 5: (0.747, 0.766), 6: (0.722, 0.726), 7: (0.734, 0.746),
    8: (0.735, 0.746), 9: (0.734, 0.760), 10: (0.755, 0.762), 11: (0.761, 0.767),
}
ARTICLE_AT_10_EPOCHS = {"no BN": (0.47, 0.57), "with BN": (0.60, 0.73)}
BN_KERNELS = ("fused", "keras", "manual")
ADAM_KERNELS = ("keras", "fused")
FINISHED = ("complete", "diverged")
RESULTS_ROOT = Path("results")


# --------------------------------------------------------------------------- grid
@dataclasses.dataclass(frozen=True)
class RunConfig:
    run_id: int
    dropout: float
    bn_conv: bool
    bn_dense: bool

    @property
    def label(self) -> str:
        where = {(False, False): "no BN", (True, False): "BN conv",
                 (False, True): "BN dense", (True, True): "BN conv+dense"}
        text = where[(self.bn_conv, self.bn_dense)]
        return f"{text}, dropout {self.dropout:g}" if self.dropout else text


def _grid() -> tuple[RunConfig, ...]:
    runs = []
    for bn_conv, bn_dense in ((False, False), (True, False), (False, True),
                              (True, True)):
        for dropout in (0.0, 0.2, 0.4):
            runs.append(RunConfig(len(runs), dropout, bn_conv, bn_dense))
    return tuple(runs)


GRID = _grid()  # ids as in the article: 0 none ... 11 BN conv+dense, dropout 0.4


def get_run(run_id: int) -> RunConfig:
    if not isinstance(run_id, (int, np.integer)) or not 0 <= run_id < len(GRID):
        raise ValueError(f"unknown run id {run_id!r}: the article's runs are 0-11 "
                         f"(see `python -m bnlib list`).")
    return GRID[int(run_id)]


# --------------------------------------------------------------------------- profiles
@dataclasses.dataclass(frozen=True)
class Protocol:
    """Everything that decides a training curve, except the data and seed."""

    profile: str
    epochs: int
    eval_every: int          # steps between test-set evaluations
    steps_per_epoch: int = 390  # floor(50000 / 128), as in the article
    batch_size: int = 128
    train_size: int | None = None  # None: the full 50,000
    test_size: int | None = None   # None: the full 10,000
    learning_rate: float = 1e-3
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-8
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    bn_position: str = "after_relu"
    input_scaling: str = "none (raw 0-255 pixel values as float32, as the article)"
    seeds: int = 1

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def curve_fields(self) -> dict:
        """The fields two results must share to be compared or resumed."""
        fields = dataclasses.asdict(self)
        fields.pop("seeds")
        return fields


PROFILES: dict[str, Protocol] = {
    # CI and notebooks under test: 12 tiny runs in about a minute on 2 cores.
    "smoke": Protocol("smoke", epochs=2, eval_every=5, steps_per_epoch=10,
                      train_size=1280, test_size=1000, seeds=1),
    # What the book reports: full data, measured to fit ~4 h for 12 x 3 runs.
    "book": Protocol("book", epochs=15, eval_every=195, seeds=3),
    # The article's original protocol (for GPU owners): 400 epochs, eval every 50.
    "article": Protocol("article", epochs=400, eval_every=50, seeds=1),
}
PROFILE_ENV_VAR = "BNLIB_PROFILE"


def get_profile(name: str | None = None, **overrides) -> Protocol:
    """A profile by name (default ``$BNLIB_PROFILE`` or ``book``), fields overridden."""
    name = name or os.environ.get(PROFILE_ENV_VAR) or "book"
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: choose one of "
                         f"{', '.join(PROFILES)} (flag --profile or ${PROFILE_ENV_VAR}).")
    fields = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(fields) - {f.name for f in dataclasses.fields(Protocol)}
    if unknown:
        raise ValueError(f"unknown protocol field(s) {sorted(unknown)}")
    protocol = dataclasses.replace(PROFILES[name], **fields)
    for field in ("epochs", "eval_every", "steps_per_epoch", "batch_size", "seeds"):
        if getattr(protocol, field) < 1:
            raise ValueError(f"{field} must be at least 1, got {getattr(protocol, field)}")
    return protocol


# --------------------------------------------------------------------------- files
def results_dir_for(protocol: Protocol, root: str | os.PathLike | None = None) -> Path:
    return Path(root) if root else RESULTS_ROOT / protocol.profile


def result_path(results_dir: Path, run_id: int, seed: int) -> Path:
    return Path(results_dir) / f"run{run_id:02d}-seed{seed}.json"


def checkpoint_path(results_dir: Path, run_id: int, seed: int) -> Path:
    return Path(results_dir) / "checkpoints" / f"run{run_id:02d}-seed{seed}.npz"


def write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump(payload, handle, indent=1)
        handle.write("\n")
    os.replace(tmp, path)


def _save_npz_atomic(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_result(path: Path) -> dict:
    try:
        with open(path) as handle:
            result = json.load(handle)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to rerun "
                         f"that run.") from err
    missing = {"run_id", "seed", "status", "protocol", "curve"} - set(result)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)}: not a bnlib result; "
                         f"delete it to rerun that run.")
    return result


def load_results(results_dir: str | os.PathLike, *, complete_only: bool = True
                 ) -> list[dict]:
    """All result JSONs of a folder, sorted by (run id, seed)."""
    folder = Path(results_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"no results folder {folder}: run `python -m bnlib "
                                f"run --profile PROFILE` first.")
    results = [load_result(p) for p in sorted(folder.glob("run*-seed*.json"))]
    if complete_only:
        results = [r for r in results if r["status"] in FINISHED]
    return sorted(results, key=lambda r: (r["run_id"], r["seed"]))


# --------------------------------------------------------------------------- env
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


# --------------------------------------------------------------------------- training
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


class EpochLoop:
    """The training loop every trainer shares: the protocol's shuffled
    minibatches, one ``train_step(index) -> (loss, correct)`` each, and a test
    ``evaluate()`` every ``eval_every`` steps. :class:`Trainer` (Keras) and
    :class:`bnlib.tf1.TF1Trainer` (TF1 graph) provide the two methods.
    """

    def __init__(self, protocol: Protocol, num_train: int):
        self.protocol = protocol
        self.num_train = num_train
        self._window = [0.0, 0.0, 0]   # loss sum, correct, seen since the last point
        self.latest_test_acc: float | None = None

    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        return epoch_order(self.protocol, self.num_train, seed, epoch)

    def train_epoch(self, seed: int, epoch: int,
                    progress: Callable[[int, int, float | None], None] | None = None
                    ) -> tuple[list[list[float]], float]:
        """Train one epoch in the protocol's minibatch order for ``seed``.

        Every ``eval_every`` steps (and at the last step) the whole test set is
        evaluated and a curve point ``[step, epoch, train_loss, train_acc,
        test_acc]`` is recorded; training loss and accuracy are means over the
        steps since the previous point. Returns the epoch's points and the
        seconds spent evaluating. Raises :class:`Diverged` at a non-finite loss.
        """
        protocol, size = self.protocol, self.protocol.batch_size
        order = self.epoch_order(seed, epoch)
        points, eval_seconds = [], 0.0
        for step_in_epoch in range(protocol.steps_per_epoch):
            step = epoch * protocol.steps_per_epoch + step_in_epoch + 1
            index = order[step_in_epoch * size:(step_in_epoch + 1) * size]
            loss, correct = self.train_step(index)
            loss = float(loss)
            if not math.isfinite(loss):
                raise Diverged(step, loss)
            self._window[0] += loss * size
            self._window[1] += float(correct)
            self._window[2] += size
            if step % protocol.eval_every == 0 or step == protocol.total_steps:
                tic = time.perf_counter()
                self.latest_test_acc = self.evaluate()
                eval_seconds += time.perf_counter() - tic
                loss_sum, correct_sum, seen = self._window
                points.append([step, round(step / protocol.steps_per_epoch, 4),
                               loss_sum / seen, correct_sum / seen,
                               self.latest_test_acc])
                self._window = [0.0, 0.0, 0]
            if progress:
                progress(step, protocol.total_steps, self.latest_test_acc)
        return points, eval_seconds


class Trainer(EpochLoop):
    """A compiled training step for one model, data held in memory as uint8.

    Each step gathers a minibatch of the shuffled index order, casts it to
    float32 (no scaling, as the article), and applies one Adam update. The BN
    moving averages are updated inside the same compiled step.

    ``adam_kernel="fused"`` applies the same Adam update with TensorFlow's fused
    ``ResourceApplyAdam`` kernel (one pass over each variable, as TF1's
    ``AdamOptimizer``) on the Keras optimizer's own slots, instead of Keras'
    several element-wise passes; checkpoints are the same either way.
    The steps are traced without AutoGraph: they hold no tensor-dependent Python
    control flow, and tracing never re-reads source files that may have changed.
    """

    def __init__(self, model, protocol: Protocol, x_train, y_train, x_test, y_test,
                 *, jit_compile: bool = False, eval_batch: int = 1000,
                 adam_kernel: str = "keras"):
        import keras
        import tensorflow as tf

        super().__init__(protocol, len(x_train))
        self.model = model
        self.optimizer = keras.optimizers.Adam(
            learning_rate=protocol.learning_rate, beta_1=protocol.adam_beta_1,
            beta_2=protocol.adam_beta_2, epsilon=protocol.adam_epsilon)
        self.optimizer.build(model.trainable_variables)
        self.x_train = tf.constant(x_train)
        self.y_train = tf.constant(y_train.astype(np.int32))
        self.x_test = x_test
        self.y_test = y_test.astype(np.int32)
        self.eval_batch = eval_batch
        trainable = model.trainable_variables
        if adam_kernel not in ADAM_KERNELS:
            raise ValueError(f"adam_kernel must be one of {ADAM_KERNELS}, "
                             f"got {adam_kernel!r}")
        apply_gradients = (self._fused_adam if adam_kernel == "fused"
                           else self.optimizer.apply)

        @tf.function(jit_compile=jit_compile, reduce_retracing=True, autograph=False)
        def train_step(index):
            images = tf.cast(tf.gather(self.x_train, index), tf.float32)
            labels = tf.gather(self.y_train, index)
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=logits))
            grads = tape.gradient(loss, trainable)
            apply_gradients(grads, trainable)
            correct = tf.reduce_sum(tf.cast(
                tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), labels),
                tf.float32))
            return loss, correct

        @tf.function(jit_compile=jit_compile, reduce_retracing=True, autograph=False)
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


class Diverged(FloatingPointError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, loss: float):
        super().__init__(
            f"the training loss became {loss} at step {step}. Lower the learning "
            f"rate (--learning-rate, or the protocol's learning_rate), or check "
            f"that the data holds no NaN.")
        self.step = step


def bn_layer_factory(bn_layer, protocol: Protocol) -> Callable[[str], object]:
    """``name -> layer`` for :func:`bnlib.models.build_cnn`.

    ``bn_layer`` is one of :data:`BN_KERNELS` (``"fused"``: bnlib's layer on the
    fused kernel; ``"keras"``: ``keras.layers.BatchNormalization``; ``"manual"``:
    :class:`bnlib.layers.ManualBatchNorm` on ``tf.nn``) or a callable
    ``(name, momentum, epsilon) -> layer``; momentum and epsilon come from the
    protocol.
    """
    from . import layers, models

    kernels = {"fused": layers.fused_batch_norm, "keras": models.keras_batch_norm,
               "manual": layers.manual_batch_norm}
    if isinstance(bn_layer, str):
        if bn_layer not in kernels:
            raise ValueError(f"bn_kernel must be one of {BN_KERNELS}, "
                             f"got {bn_layer!r}")
        bn_layer = kernels[bn_layer]
    return lambda name: bn_layer(name, protocol.bn_momentum, protocol.bn_epsilon)


def build_run_model(run_id: int, seed: int, protocol: Protocol, bn_layer="fused"):
    """The CNN of grid run ``run_id``, initialised from ``seed`` as run_one does."""
    import keras

    from . import models

    config = get_run(run_id)
    keras.utils.set_random_seed(seed)
    return models.build_cnn(config.bn_conv, config.bn_dense, config.dropout,
                            bn_position=protocol.bn_position, seed=seed,
                            bn_layer=bn_layer_factory(bn_layer, protocol))


class TrainedRun(NamedTuple):
    model: object
    curve: np.ndarray   # columns: step, epoch, train_loss, train_acc, test_acc


def train_run(run_id: int, seed: int, protocol: Protocol, data, *,
              bn_layer="fused", adam_kernel: str = "keras",
              progress: Callable[[int, int, float | None], None] | None = None
              ) -> TrainedRun:
    """Train one (run, seed) in memory, step for step as :func:`run_one` does,
    and return the trained model with its curve. No files, no resuming: for
    notebooks that need the model itself."""
    model = build_run_model(run_id, seed, protocol, bn_layer)
    trainer = Trainer(model, protocol, *subset(data, protocol),
                      adam_kernel=adam_kernel)
    curve = []
    for epoch in range(protocol.epochs):
        curve += trainer.train_epoch(seed, epoch, progress)[0]
    return TrainedRun(model, np.array(curve))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_one(run_id: int, seed: int, protocol: Protocol, data, *,
            results_dir: str | os.PathLike | None = None, threads: int | None = None,
            workers: int = 1, jit_compile: bool = False,
            progress: Callable[[int, int, float | None], None] | None = None,
            bn_kernel: str = "fused", adam_kernel: str = "keras") -> dict:
    """Train one (run, seed) to the end of the protocol, resuming if possible.

    Returns the result dict (also written to ``result_path``). ``progress`` is
    called as ``progress(step, total_steps, latest_test_acc)``. ``bn_kernel`` is
    ``"fused"`` (bnlib's layer on the fused kernel: same function, faster on a
    CPU), ``"keras"`` (the stock ``keras.layers.BatchNormalization``) or
    ``"manual"`` (:class:`bnlib.layers.ManualBatchNorm` on ``tf.nn``).
    ``adam_kernel`` is ``"keras"`` (what the book's grid used) or ``"fused"``
    (same update, one kernel per variable: about 7% faster here).
    """
    if bn_kernel not in BN_KERNELS:
        raise ValueError(f"bn_kernel must be one of {BN_KERNELS}, got {bn_kernel!r}")
    config = get_run(run_id)
    folder = results_dir_for(protocol, results_dir)
    out = result_path(folder, run_id, seed)
    ckpt = checkpoint_path(folder, run_id, seed)
    previous = previous_result(out, protocol)
    if previous is not None and previous["status"] in FINISHED:
        return previous
    if previous is not None and not same_data(previous["data"],
                                              data.provenance.to_dict()):
        raise ValueError(
            f"{out} was started on other data ({previous['data']['kind']}, sha256 "
            f"{previous['data']['sha256']}) than the data given now "
            f"({data.provenance.kind}, sha256 {data.provenance.sha256}). Resume it "
            f"with the same --data, use another --results-dir, or delete the file.")

    x_train, y_train, x_test, y_test = subset(data, protocol)
    model = build_run_model(run_id, seed, protocol, bn_kernel)
    trainer = Trainer(model, protocol, x_train, y_train, x_test, y_test,
                      jit_compile=jit_compile, adam_kernel=adam_kernel)

    result = {
        "schema": SCHEMA_VERSION,
        "run_id": run_id,
        "seed": seed,
        "label": config.label,
        "status": "running",
        "config": dataclasses.asdict(config),
        "protocol": protocol.curve_fields(),
        "data": data.provenance.to_dict(),
        "environment": environment_record(threads, workers),
        "runner": {"bn_kernel": bn_kernel, "adam_kernel": adam_kernel,
                   "jit_compile": jit_compile,
                   "train_step": "tf.function, uint8 data in memory, gather + cast"},
        "num_params": model.count_params(),
        "curve_columns": ["step", "epoch", "train_loss", "train_acc", "test_acc"],
        "curve": [],
        "epochs_done": 0,
        "diverged_at_step": None,
        "timing": {"train_seconds": 0.0, "eval_seconds": 0.0, "wall_seconds": 0.0},
        "started": _now(),
        "finished": None,
    }
    start_epoch = 0
    if previous is not None and ckpt.exists():
        with np.load(ckpt) as arrays:
            trainer.restore(arrays)
            # the checkpoint carries the record of the epoch it was taken at, so
            # a crash between writing it and the JSON cannot replay an epoch
            saved = json.loads(str(arrays["record"])) if "record" in arrays else previous
        result.update({k: saved[k] for k in ("curve", "epochs_done", "timing",
                                              "started")})
        result["resumed_at_epoch"] = saved["epochs_done"]
        start_epoch = saved["epochs_done"]

    steps_per_epoch = protocol.steps_per_epoch
    if progress:
        latest = result["curve"][-1][4] if result["curve"] else None
        progress(start_epoch * steps_per_epoch, protocol.total_steps, latest)
    for epoch in range(start_epoch, protocol.epochs):
        tic = time.perf_counter()
        try:
            points, eval_seconds = trainer.train_epoch(seed, epoch, progress)
        except Diverged as err:
            result.update(status="diverged", diverged_at_step=err.step,
                          finished=_now())
            write_json_atomic(out, result)
            ckpt.unlink(missing_ok=True)
            return result
        result["curve"] += points
        elapsed = time.perf_counter() - tic
        timing = result["timing"]
        timing["train_seconds"] += elapsed - eval_seconds
        timing["eval_seconds"] += eval_seconds
        timing["wall_seconds"] += elapsed
        result["epochs_done"] = epoch + 1
        images = result["epochs_done"] * steps_per_epoch * protocol.batch_size
        timing["train_images_per_second"] = images / max(timing["train_seconds"], 1e-9)
        if epoch + 1 < protocol.epochs:
            # checkpoint (with its own copy of the record) first, then the JSON
            _save_npz_atomic(ckpt, {**trainer.state(),
                                    "record": np.array(json.dumps(result))})
            write_json_atomic(out, result)
    result.update(status="complete", finished=_now())
    result["final_test_acc"] = result["curve"][-1][4]
    result["best_test_acc"] = max(point[4] for point in result["curve"])
    write_json_atomic(out, result)
    ckpt.unlink(missing_ok=True)
    return result


# --------------------------------------------------------------------------- grid
def plan(protocol: Protocol, run_ids: Iterable[int] | None = None,
         seeds: Iterable[int] | None = None) -> list[tuple[int, int]]:
    run_ids = list(range(len(GRID))) if run_ids is None else [int(r) for r in run_ids]
    for run_id in run_ids:
        get_run(run_id)
    seeds = list(range(protocol.seeds)) if seeds is None else list(seeds)
    # seed-major: every configuration gets its first seed before any gets a second
    return [(run_id, seed) for seed in seeds for run_id in run_ids]


def same_data(first: dict, second: dict) -> bool:
    """Two provenance records name the same data (wherever the file lies)."""
    keys = ("kind", "sha256", "num_train", "num_test")
    return all(first.get(key) == second.get(key) for key in keys)


def previous_result(path: Path, protocol: Protocol) -> dict | None:
    """The result already at ``path`` (finished or not), or None; refuses one
    that was made with another protocol, so curves are never mixed."""
    if not path.exists():
        return None
    result = load_result(path)
    if result["protocol"] != protocol.curve_fields():
        raise ValueError(
            f"{path} was trained with another protocol than the one asked for "
            f"(profile or flags differ). Use another --results-dir, or delete the "
            f"file to retrain.")
    return result


def pending(tasks, protocol: Protocol, results_dir: Path) -> list[tuple[int, int]]:
    """The (run, seed) tasks that have no finished result yet."""
    todo = []
    for run_id, seed in tasks:
        result = previous_result(result_path(results_dir, run_id, seed), protocol)
        if result is None or result["status"] not in FINISHED:
            todo.append((run_id, seed))
    return todo


def _grid_worker(slot, threads, source, protocol, results_dir, options, tasks,
                 messages, workers):
    """One worker process: its own TF thread pool, tasks from a shared queue."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    configure_threads(threads)
    from .data import load_cifar10

    data = load_cifar10(source)
    while True:
        task = tasks.get()
        if task is None:
            return
        run_id, seed = task

        def report(step, total, acc, run_id=run_id, seed=seed):
            messages.put(("progress", slot, run_id, seed, step, total, acc))

        try:
            result = run_one(run_id, seed, protocol, data, results_dir=results_dir,
                             threads=threads, workers=workers, progress=report,
                             **options)
            messages.put(("done", slot, run_id, seed, result["status"],
                          result.get("final_test_acc")))
        except BaseException as err:  # report, then let the parent decide
            messages.put(("error", slot, run_id, seed, f"{type(err).__name__}: {err}",
                          None))
            return


def run_grid(protocol: Protocol, *, source=None, run_ids=None, seeds=None,
             results_dir=None, workers: int = 1, threads: int | None = None,
             jit_compile: bool = False, data=None, bn_kernel: str = "fused",
             adam_kernel: str = "keras") -> list[dict]:
    """Train every pending (run, seed) of the grid; returns all finished results.

    With ``workers > 1`` each worker is a process with ``threads`` intra-op
    threads (default: cores / workers), pulling tasks from one queue.
    ``jit_compile``, ``bn_kernel`` and ``adam_kernel`` go to :func:`run_one`.
    """
    options = {"jit_compile": jit_compile, "bn_kernel": bn_kernel,
               "adam_kernel": adam_kernel}
    from tqdm import tqdm  # plain text bars: no widgets in notebooks or the book

    folder = results_dir_for(protocol, results_dir)
    with _exclusive(folder):
        return _run_grid_locked(protocol, folder, source, run_ids, seeds, workers,
                                threads, data, options, tqdm)


@contextlib.contextmanager
def _exclusive(folder: Path):
    """One runner per results folder: a second one stops with a clear error."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / ".lock"
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise RuntimeError(
                f"{folder} is being trained into by {owner}; wait for it to finish "
                f"(or stop it), or pass another --results-dir.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_grid_locked(protocol, folder, source, run_ids, seeds, workers, threads,
                     data, options, tqdm) -> list[dict]:
    all_tasks = plan(protocol, run_ids, seeds)
    tasks = pending(all_tasks, protocol, folder)
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    if workers <= 1 or len(tasks) <= 1:
        _run_serial(tasks, len(all_tasks) - len(tasks), len(all_tasks), protocol,
                    source, data, folder, threads, options, tqdm)
    else:
        grid_bar = tqdm(total=len(all_tasks), initial=len(all_tasks) - len(tasks),
                        desc=f"grid [{protocol.profile}]", unit="run", position=0)
        try:
            _run_parallel(tasks, protocol, source, folder, workers, threads,
                          options, grid_bar)
        finally:
            grid_bar.close()
    return [load_result(result_path(folder, r, s)) for r, s in all_tasks
            if result_path(folder, r, s).exists()]


def _run_serial(tasks, done_before, total_tasks, protocol, source, data, folder,
                threads, options, tqdm):
    """One progress bar per run, one after the other (reads well in notebooks)."""
    from .data import load_cifar10

    if not tasks:
        return
    configure_threads(threads)
    data = data if data is not None else load_cifar10(source)
    for number, (run_id, seed) in enumerate(tasks, start=done_before + 1):
        bar = tqdm(total=protocol.total_steps, unit="step", mininterval=1.0,
                   desc=f"[{number}/{total_tasks}] run {run_id:2d} seed {seed}")

        def report(step, total, acc, bar=bar):
            bar.n = step
            if acc is not None:
                bar.set_postfix(test_acc=f"{acc:.3f}", refresh=False)
            bar.refresh()

        try:
            result = run_one(run_id, seed, protocol, data, results_dir=folder,
                             threads=threads, progress=report, **options)
        finally:
            bar.close()
        if result["status"] == "diverged":
            tqdm.write(f"run {run_id} seed {seed} diverged (NaN loss) at step "
                       f"{result['diverged_at_step']}; going on with the others")


def _done_text(run_id, seed, status, acc):
    return (f"run {run_id} seed {seed}: {status}"
            + (f", test acc {acc:.3f}" if acc is not None else ""))


def _run_parallel(tasks, protocol, source, folder, workers, threads, options,
                  grid_bar):
    import multiprocessing as mp

    from tqdm import tqdm

    ctx = mp.get_context("spawn")
    task_queue, messages = ctx.Queue(), ctx.Queue()
    for task in tasks:
        task_queue.put(task)
    workers = min(workers, len(tasks))
    for _ in range(workers):
        task_queue.put(None)
    procs = [ctx.Process(target=_grid_worker, daemon=True,
                         args=(slot, threads, source, protocol, folder, options,
                               task_queue, messages, workers))
             for slot in range(workers)]
    bars = [tqdm(total=protocol.total_steps, desc=f"worker {slot}", unit="step",
                 position=slot + 1, leave=False) for slot in range(workers)]
    for proc in procs:
        proc.start()
    remaining = len(tasks)
    errors = []
    current = [None] * workers
    try:
        while remaining and (any(p.is_alive() for p in procs) or not messages.empty()):
            try:
                kind, slot, run_id, seed, *rest = messages.get(timeout=1.0)
            except Exception:
                continue
            bar = bars[slot]
            if kind == "progress":
                step, total, acc = rest
                if current[slot] != (run_id, seed):  # this worker began a new run
                    current[slot] = (run_id, seed)
                    bar.reset(total=total)
                    bar.set_postfix_str("", refresh=False)
                    bar.set_description(f"run {run_id:2d} seed {seed}", refresh=False)
                bar.n = step
                if acc is not None:
                    bar.set_postfix(test_acc=f"{acc:.3f}", refresh=False)
                bar.refresh()
            elif kind == "done":
                remaining -= 1
                grid_bar.update(1)
                grid_bar.set_postfix_str(_done_text(run_id, seed, *rest))
            else:
                remaining -= 1
                errors.append(f"run {run_id} seed {seed}: {rest[0]}")
        for proc in procs:
            proc.join(timeout=10)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
        for bar in bars:
            bar.close()
    if errors:
        raise RuntimeError("some runs failed:\n  " + "\n  ".join(errors))
    if remaining:
        raise RuntimeError(f"{remaining} run(s) did not finish: a worker died "
                           f"(out of memory?). Rerun the same command to resume.")
