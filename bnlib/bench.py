"""``python -m bnlib bench``: training speed of three loops, side by side.

Contenders, timed alternately in one process on the same data, after warm-up:

(a) the article's TF1 loop: graph mode, ``feed_dict``, ``tf.compat.v1.layers``
    (through ``tf-keras``) — :class:`bnlib.tf1.TF1Trainer`;
(b) plain Keras 3: ``model.compile`` + ``model.fit`` on NumPy float32 arrays;
(c) bnlib's runner: :class:`bnlib.training.Trainer` (compiled step, uint8 data
    in memory, the fused BN kernel, the fused Adam kernel);
(d) the same runner in mixed bfloat16 — only on a CPU with native bfloat16
    (``avx512_bf16`` / ``amx_bf16``); elsewhere the report says why it is absent.

Also measured: inference images/s, the fp32 matmul peak of this machine, and the
whole grid's throughput with one single-threaded worker per core.

``python -m bnlib bench --normalizations`` times instead what chapter 08 asks of
each normalization: the training step of every run of the ``smallbatch`` grid
and of chapter 05's no-BN and BN references, alternately in one process with
one thread (as each grid worker trains), so their ratios are fair even on a
machine that is busy with something else; a run's own timing is not (it
depends on what else ran beside it). FLOPs are
counted as multiply-adds x 2 of the convolutions and dense layers only:
forward 39.5 MFLOP per image; a training step is forward + weight gradients +
input gradients (none for the first conv), 113.7 MFLOP per image.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import statistics
import time
from pathlib import Path

import numpy as np

# Contender (a) needs tf.compat.v1.layers from tf-keras: ``bnlib.tf1`` sets
# TF_USE_LEGACY_KERAS=1 when it is first imported, which must happen before
# TensorFlow loads (it refuses with the fix otherwise). So every TensorFlow
# import of this module sits inside a function, after ``import bnlib.tf1``.

# multiply-accumulates per image of each layer (forward)
LAYER_MACS = {
    "conv1": 32 * 32 * 32 * 5 * 5 * 3,
    "conv2": 16 * 16 * 64 * 5 * 5 * 32,
    "dense1": 4096 * 1024,
    "logits": 1024 * 10,
}
FORWARD_FLOPS = 2 * sum(LAYER_MACS.values())
TRAIN_FLOPS = 3 * FORWARD_FLOPS - 2 * LAYER_MACS["conv1"]  # no input grad for conv1
BENCH_CONFIGS = (0, 11)
BENCH_OUT = "results/bench/bench.json"
NORMALIZATION_OUT = "results/bench/normalizations.json"
CONTENDER_NAMES = {"a_tf1_feed_dict": "(a) TF1 feed_dict", "b_keras_fit": "(b) Keras fit",
                   "c_bnlib": "(c) bnlib", "d_bnlib_bf16": "(d) bnlib bf16"}


# --------------------------------------------------------------------------- keras
def build_keras_fit_model(run_config, protocol, seed: int):
    """The plain Keras 3 way: stock BN layer, compile with Adam, fit on arrays."""
    import keras

    from .training import build_run_model, make_optimizer

    model = build_run_model(run_config, seed, bn_kernel="keras")
    model.compile(
        optimizer=make_optimizer(run_config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    return model


def keras_fit_curve(run_config, protocol, data, seed: int) -> list[list[float]]:
    """A plain-Keras reference curve: ``model.fit`` on the runner's batch order.

    Same initial weights (same seed), same minibatches in the same order
    (``training.epoch_order``), evaluated at the same steps; only the training
    loop differs. Returns ``[step, epoch, train_loss, train_acc, test_acc]``.
    """
    from .training import epoch_order, subset

    x_train, y_train, x_test, y_test = subset(data, protocol)
    model = build_keras_fit_model(run_config, protocol, seed)
    x_test_float = x_test.astype(np.float32)
    curve, step = [], 0
    for epoch in range(protocol.epochs):
        order = epoch_order(protocol, len(x_train), seed, epoch)
        for start in range(0, len(order), protocol.eval_every * protocol.batch_size):
            chunk = order[start:start + protocol.eval_every * protocol.batch_size]
            history = model.fit(x_train[chunk].astype(np.float32), y_train[chunk],
                                batch_size=protocol.batch_size, epochs=1,
                                shuffle=False, verbose=0)
            step += len(chunk) // protocol.batch_size
            _, test_acc = model.evaluate(x_test_float, y_test, batch_size=1000,
                                         verbose=0)
            curve.append([step, step / protocol.steps_per_epoch,
                          history.history["loss"][-1],
                          history.history["accuracy"][-1], float(test_acc)])
    return curve


# --------------------------------------------------------------------------- timing
def matmul_peak_gflops(size: int = 2048, repeats: int = 5,
                       dtype: str = "float32") -> dict:
    """Matmul throughput of TensorFlow on this machine (all threads), in
    ``dtype`` (float32 or bfloat16)."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)

    @tf.function
    def chain(a, b):
        c = a
        for _ in range(8):
            c = tf.matmul(c, b) * 1e-3
        return c

    chain(a, b).numpy()
    rates = []
    for _ in range(repeats):
        tic = time.perf_counter()
        chain(a, b).numpy()
        rates.append(8 * 2 * size**3 / (time.perf_counter() - tic) / 1e9)
    return {"size": size, "dtype": dtype, "min": min(rates),
            "median": statistics.median(rates), "max": max(rates)}


class _Contender:
    def __init__(self, name, step_fn, batch, warmup: int = 5):
        self.name, self.step_fn, self.batch = name, step_fn, batch
        for _ in range(warmup):
            step_fn()
        self.rates = []

    def time(self, steps: int) -> None:
        tic = time.perf_counter()
        for _ in range(steps):
            self.step_fn()
        self.rates.append(steps * self.batch / (time.perf_counter() - tic))

    def summary(self) -> dict:
        return {"min": min(self.rates), "median": statistics.median(self.rates),
                "max": max(self.rates), "repeats": self.rates}


def _contenders(run_config, protocol, data, seed: int, steps: int):
    from .tf1 import TF1Trainer  # first: it sets TF_USE_LEGACY_KERAS
    from .training import (RunnerOptions, Trainer, build_run_model, native_bfloat16,
                           subset)

    x_train, y_train, x_test, y_test = subset(data, protocol)
    batch = protocol.batch_size
    order = np.random.default_rng(seed).permutation(len(x_train)).astype(np.int32)
    indices = [order[i * batch:(i + 1) * batch] for i in range(len(order) // batch)]
    cursor = {"a": 0, "c": 0}

    def next_index(key):
        cursor[key] = (cursor[key] + 1) % len(indices)
        return indices[cursor[key]]

    tf1 = TF1Trainer(run_config, protocol, x_train, y_train, x_test, y_test, seed=seed)

    keras_model = build_keras_fit_model(run_config, protocol, seed)
    chunk = steps * batch
    x_fit = x_train[:chunk].astype(np.float32)
    y_fit = y_train[:chunk]

    model = build_run_model(run_config, seed)
    ours = Trainer(model, run_config, protocol, x_train, y_train, x_test, y_test,
                   options=RunnerOptions(adam_kernel="fused"))

    contenders = {
        "a_tf1_feed_dict": _Contender("a", lambda: tf1.train_step(next_index("a")), batch),
        "b_keras_fit": _FitContender(keras_model, x_fit, y_fit, batch),
        "c_bnlib": _Contender("c", lambda: float(ours.train_step(next_index("c"))[0]),
                              batch),
    }
    if native_bfloat16():  # (d): the same runner in mixed bfloat16
        bf16_config = run_config.replace(name=run_config.name + "-bf16",
                                          precision="mixed_bfloat16")
        bf16 = Trainer(build_run_model(bf16_config, seed), bf16_config, protocol,
                       x_train, y_train, x_test, y_test,
                       options=RunnerOptions(adam_kernel="fused"))
        cursor["d"] = 0
        contenders["d_bnlib_bf16"] = _Contender(
            "d", lambda: float(bf16.train_step(next_index("d"))[0]), batch)
    return contenders, ours, tf1


class _FitContender(_Contender):
    """``model.fit`` times a whole call over ``steps`` batches of NumPy data."""

    def __init__(self, model, x, y, batch):
        self.model, self.x, self.y = model, x, y
        super().__init__("b", self._fit, batch, warmup=1)

    def _fit(self):
        self.model.fit(self.x, self.y, batch_size=self.batch, epochs=1,
                       shuffle=True, verbose=0)

    def time(self, steps: int) -> None:
        tic = time.perf_counter()
        self._fit()
        self.rates.append(len(self.x) / (time.perf_counter() - tic))


def time_breakdown(run_config, protocol, data, seed: int = 0, steps: int = 20,
                   repeats: int = 3) -> dict:
    """Where a bnlib training step spends its time: forward pass alone, forward
    and backward (gradients, no update), the full step with Keras' Adam, and
    with the fused Adam kernel; milliseconds per step of 128 images (medians)."""
    import tensorflow as tf

    from .training import RunnerOptions, Trainer, build_run_model, subset

    x_train, y_train, x_test, y_test = subset(data, protocol)
    model = build_run_model(run_config, seed)
    trainers = {kernel: Trainer(model, run_config, protocol, x_train, y_train, x_test,
                                y_test, options=RunnerOptions(adam_kernel=kernel))
                for kernel in ("keras", "fused")}
    images = tf.constant(x_train[:protocol.batch_size].astype(np.float32))
    labels = tf.constant(y_train[:protocol.batch_size])
    variables = model.trainable_variables

    @tf.function(autograph=False)
    def forward():
        return model(images, training=True)

    @tf.function(autograph=False)
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=labels, logits=model(images, training=True)))
        return tape.gradient(loss, variables)

    index = np.arange(protocol.batch_size, dtype=np.int32)
    parts = {
        "forward": lambda: forward().numpy(),
        "forward_backward": lambda: [g.numpy() for g in forward_backward()[:1]],
        "step_keras_adam": lambda: float(trainers["keras"].train_step(index)[0]),
        "step_fused_adam": lambda: float(trainers["fused"].train_step(index)[0]),
    }
    for run in parts.values():
        run()
    timings = {name: [] for name in parts}
    for _ in range(repeats):
        for name, run in parts.items():  # alternate, like the contenders
            tic = time.perf_counter()
            for _ in range(steps):
                run()
            timings[name].append(1000 * (time.perf_counter() - tic) / steps)
    return {name: statistics.median(values) for name, values in timings.items()}


def _grid_worker(run_id, protocol, source, steps, barrier, queue):
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    from .config import ARTICLE
    from .data import load_cifar10
    from .training import RunnerOptions, Trainer, build_run_model, configure_threads

    configure_threads(1)
    data = load_cifar10(source)
    config = ARTICLE.runs[run_id]
    model = build_run_model(config, run_id)
    trainer = Trainer(model, config, protocol, data.x_train, data.y_train,
                      data.x_test, data.y_test, options=RunnerOptions(adam_kernel="fused"))
    order = trainer.epoch_order(0, 0)
    batch = protocol.batch_size
    for i in range(5):
        trainer.train_step(order[i * batch:(i + 1) * batch])
    barrier.wait()
    tic = time.perf_counter()
    for i in range(steps):
        float(trainer.train_step(order[i * batch:(i + 1) * batch])[0])
    queue.put(steps * batch / (time.perf_counter() - tic))


def grid_throughput(run_id: int, protocol, source, steps: int, workers: int = 2
                    ) -> float:
    """Total training images/s of ``workers`` single-threaded processes at once."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(workers), ctx.Queue()
    procs = [ctx.Process(target=_grid_worker,
                         args=(run_id, protocol, source, steps, barrier, queue))
             for _ in range(workers)]
    for proc in procs:
        proc.start()
    rates = [queue.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(rates)


# --------------------------------------------------------------------------- main
def run_bench(source=None, repeats: int = 5, steps: int = 20, seed: int = 0,
              grid_workers: int = 2) -> dict:
    from tqdm import tqdm

    from .data import load_cifar10
    from . import tf1  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS for contender a)
    from .config import ARTICLE, get_profile
    from .training import (BF16_FLAGS, configure_threads, cpu_name,
                           environment_record, native_bfloat16)

    threads = os.cpu_count() or 1
    configure_threads(threads)
    data = load_cifar10(source)
    protocol = get_profile("book")
    report = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "data": data.provenance.to_dict(),
        "environment": environment_record(threads, 1),
        "flops_per_image": {"forward": FORWARD_FLOPS, "train": TRAIN_FLOPS,
                            "counting": "2 x multiply-adds of conv and dense layers; "
                                        "train = forward + weight grads + input "
                                        "grads (none for conv1)"},
        "repeats": repeats, "steps_per_repeat": steps, "batch_size": protocol.batch_size,
        "matmul_peak_gflops": matmul_peak_gflops(),
        "matmul_bf16_gflops": matmul_peak_gflops(dtype="bfloat16"),
        "native_bfloat16": native_bfloat16(),
        "configs": {},
    }
    if not report["native_bfloat16"]:
        report["bfloat16_note"] = (
            f"no bfloat16 contender: this CPU has none of {sorted(BF16_FLAGS)}; "
            f"TensorFlow emulates bfloat16 here (matmul "
            f"{report['matmul_bf16_gflops']['median']:.0f} GFLOP/s vs float32 "
            f"{report['matmul_peak_gflops']['median']:.0f}), and the runner refuses "
            f"--precision mixed_bfloat16")
    peak = report["matmul_peak_gflops"]["median"]
    peak_bf16 = report["matmul_bf16_gflops"]["median"]
    for run_id in BENCH_CONFIGS:
        config = ARTICLE.runs[run_id]
        contenders, ours, tf1_trainer = _contenders(config, protocol, data, seed,
                                                    steps)
        for _ in tqdm(range(repeats), desc=f"bench config {run_id}", unit="repeat"):
            for contender in contenders.values():  # alternate a, b, c (, d)
                contender.time(steps)
        tic = time.perf_counter()
        ours.evaluate()
        inference = len(ours.x_test) / (time.perf_counter() - tic)
        tf1_trainer.close()
        entry = {"label": config.label,
                 **{name: c.summary() for name, c in contenders.items()},
                 "c_bnlib_inference": inference}
        entry["ratio_c_over_a"] = entry["c_bnlib"]["median"] / entry["a_tf1_feed_dict"]["median"]
        entry["ratio_c_over_b"] = entry["c_bnlib"]["median"] / entry["b_keras_fit"]["median"]
        entry["c_fraction_of_peak"] = entry["c_bnlib"]["median"] * TRAIN_FLOPS / 1e9 / peak
        entry["fraction_of_peaks"] = {
            name: {"fp32": entry[name]["median"] * TRAIN_FLOPS / 1e9 / peak,
                   "bf16": entry[name]["median"] * TRAIN_FLOPS / 1e9 / peak_bf16}
            for name in contenders}
        b = entry["b_keras_fit"]
        entry["b_spread"] = (b["max"] - b["min"]) / b["median"]
        if "d_bnlib_bf16" in entry:
            entry["ratio_d_over_a"] = (entry["d_bnlib_bf16"]["median"]
                                       / entry["a_tf1_feed_dict"]["median"])
        entry["ms_per_step"] = time_breakdown(config, protocol, data, seed)
        report["configs"][str(run_id)] = entry
    c0, c11 = (report["configs"][str(i)]["c_bnlib"]["median"] for i in BENCH_CONFIGS)
    report["bn_overhead_config11_over_config0"] = c0 / c11
    grid = {str(run_id): grid_throughput(run_id, protocol, source, steps * repeats,
                                         grid_workers)
            for run_id in BENCH_CONFIGS}
    report["grid"] = {"workers": grid_workers, "threads_per_worker": 1,
                      "images_per_second": grid,
                      "fraction_of_peak": {k: v * TRAIN_FLOPS / 1e9 / peak
                                           for k, v in grid.items()}}
    return report


def format_report(report: dict) -> str:
    lines = [f"bnlib bench — {report['date']} — {report['cpu']}, "
             f"{report['environment']['cpu_count']} cores, TF "
             f"{report['environment']['tensorflow']}",
             f"matmul (median): fp32 "
             f"{report['matmul_peak_gflops']['median']:.0f} GFLOP/s, bf16 "
             f"{report['matmul_bf16_gflops']['median']:.0f} GFLOP/s"
             + ("" if report["native_bfloat16"] else " (emulated)") + "; training "
             f"{TRAIN_FLOPS / 1e6:.1f} MFLOP/image",
             "training images/s, min / median / max of "
             f"{report['repeats']} repeats x {report['steps_per_repeat']} steps:"]
    for run_id, entry in report["configs"].items():
        lines.append(f"  config {run_id} ({entry['label']}):")
        for key, name in CONTENDER_NAMES.items():
            if key not in entry:
                continue
            s = entry[key]
            fractions = entry["fraction_of_peaks"][key]
            lines.append(f"    {name:18s} {s['min']:7.0f} / {s['median']:7.0f} / "
                         f"{s['max']:7.0f}   {100 * fractions['fp32']:3.0f}% of fp32 "
                         f"peak, {100 * fractions['bf16']:3.0f}% of bf16 peak")
        lines.append(f"    spread of (b): {100 * entry['b_spread']:.0f}% of its median"
                     + (f";  d/a = {entry['ratio_d_over_a']:.2f}"
                        if "ratio_d_over_a" in entry else ""))
        lines.append(f"    c/a = {entry['ratio_c_over_a']:.2f}   c/b = "
                     f"{entry['ratio_c_over_b']:.2f}   inference "
                     f"{entry['c_bnlib_inference']:.0f} img/s   "
                     f"{100 * entry['c_fraction_of_peak']:.0f}% of peak")
        lines.append("    ms per step of 128 images: " + ", ".join(
            f"{name} {ms:.1f}" for name, ms in entry["ms_per_step"].items()))
    if report.get("bfloat16_note"):
        lines.append(report["bfloat16_note"])
    lines.append(f"BN overhead (config 11 step time / config 0): "
                 f"{report['bn_overhead_config11_over_config0']:.2f}x")
    grid = report["grid"]
    for run_id, rate in grid["images_per_second"].items():
        lines.append(f"grid, {grid['workers']} workers x 1 thread, config {run_id}: "
                     f"{rate:.0f} img/s = "
                     f"{100 * grid['fraction_of_peak'][run_id]:.0f}% of peak")
    return "\n".join(lines)


def markdown_table(report: dict) -> str:
    """The README's speed table, from a bench JSON."""
    peak = report["matmul_peak_gflops"]["median"]
    lines = [
        f"Measured {report['date'][:10]} on {report['cpu']} "
        f"({report['environment']['cpu_count']} cores, no GPU), TensorFlow "
        f"{report['environment']['tensorflow']}, {report['data']['kind']} CIFAR-10; "
        f"training images/s, min / median / max of {report['repeats']} alternating "
        f"repeats of {report['steps_per_repeat']} steps (batch "
        f"{report['batch_size']}). fp32 matmul peak: {peak:.0f} GFLOP/s; a training "
        f"step costs {TRAIN_FLOPS / 1e6:.1f} MFLOP per image.",
        "",
    ]
    keys = [k for k in CONTENDER_NAMES if k in next(iter(report["configs"].values()))]
    header = " | ".join(CONTENDER_NAMES[k].replace("feed_dict", "`feed_dict`")
                        .replace("Keras fit", "Keras `fit`") for k in keys)
    extra = " d/a |" if "d_bnlib_bf16" in keys else ""
    lines += [f"| config | {header} | c/a | c/b |{extra} (c) % of fp32 peak "
              f"| inference img/s |",
              "|---" * (len(keys) + 5 + bool(extra)) + "|"]
    for run_id, entry in report["configs"].items():
        cells = [f"{entry[k]['min']:.0f} / **{entry[k]['median']:.0f}** / "
                 f"{entry[k]['max']:.0f}" for k in keys]
        d_over_a = f" {entry['ratio_d_over_a']:.2f} |" if extra else ""
        lines.append(
            f"| {run_id} ({entry['label']}) | {' | '.join(cells)} | "
            f"{entry['ratio_c_over_a']:.2f} | {entry['ratio_c_over_b']:.2f} |"
            f"{d_over_a} {100 * entry['c_fraction_of_peak']:.0f} % | "
            f"{entry['c_bnlib_inference']:.0f} |")
    if report.get("bfloat16_note"):
        lines += ["", report["bfloat16_note"].capitalize() + "."]
    grid = report["grid"]
    lines += [
        "",
        f"BN overhead (config 11 step time / config 0, runner c): "
        f"**{report['bn_overhead_config11_over_config0']:.2f}×**. The grid, "
        f"{grid['workers']} workers × 1 thread: "
        + ", ".join(f"config {k} **{v:.0f} img/s = "
                    f"{100 * grid['fraction_of_peak'][k]:.0f} % of peak**"
                    for k, v in grid["images_per_second"].items()) + ".",
        "",
        "Milliseconds per step of 128 images (runner c): "
        + "; ".join(f"config {run_id}: " + ", ".join(
            f"{name.replace('_', ' ')} {ms:.1f}"
            for name, ms in entry["ms_per_step"].items())
            for run_id, entry in report["configs"].items()) + ".",
    ]
    return "\n".join(lines)


# chapter 08's networks, timed side by side: the no-BN and BN references of
# chapter 05 (standardized inputs), then the smallbatch grid
NORMALIZATION_REFERENCES = ("std-none-d0", "std-bn-both-d0")


def normalization_configs() -> list:
    from .config import get_grid

    standardized = get_grid("standardized")
    return ([standardized.run(name) for name in NORMALIZATION_REFERENCES]
            + list(get_grid("smallbatch").runs))


def normalization_speed(source=None, repeats: int = 7, steps: int = 20, seed: int = 0,
                        threads: int = 1) -> dict:
    """Training images/s of each of chapter 08's networks, timed alternately
    (one repeat of ``steps`` steps each, ``repeats`` rounds) after warm-up; the
    probes are left out (they run only at evaluations). ``ratio_to_no_norm``:
    each network's median over the network without normalization's."""
    from tqdm import tqdm

    from .config import get_profile
    from .data import load_cifar10
    from .training import (configure_threads, cpu_name, environment_record, prepare,
                           subset)

    configure_threads(threads)
    data = load_cifar10(source)
    protocol = get_profile("medium")  # the smallbatch grid's profile
    batch = protocol.batch_size
    order = np.random.default_rng(seed).permutation(len(subset(data, protocol)[0]))
    indices = [order[i * batch:(i + 1) * batch].astype(np.int32)
               for i in range(len(order) // batch)]
    contenders = {}
    labels = {}
    for config in normalization_configs():
        plain = config.replace(probes=(), early_probes=(), early_probe_every=0,
                               early_probe_epochs=0)
        trainer, _ = prepare(plain, seed, protocol, data)
        batches = itertools.cycle(indices)

        def step(trainer=trainer, batches=batches):
            return float(trainer.train_step(next(batches))[0])

        contenders[config.name] = _Contender(config.name, step, batch)
        labels[config.name] = config.label
    load_before = os.getloadavg()[0]
    for _ in tqdm(range(repeats), desc="bench normalizations", unit="round"):
        for contender in contenders.values():
            contender.time(steps)
    load_after = os.getloadavg()[0]
    baseline = statistics.median(contenders[NORMALIZATION_REFERENCES[0]].rates)
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "environment": environment_record(threads, 1),
        "data": data.provenance.to_dict(),
        "protocol": protocol.profile, "batch_size": batch, "repeats": repeats,
        "steps_per_repeat": steps, "threads": threads,
        # other work on the machine: a load above the cores' count means the
        # timed process shared them (the ratios hold, the absolute rates do not)
        "load_average_1min": {"before": load_before, "after": load_after},
        "method": "each network's training step (no probes) timed alternately in "
                  "one process, one thread, after 5 warm-up steps; medians over "
                  "the rounds",
        "runs": {name: {"label": labels[name], **contender.summary(),
                        "ratio_to_no_norm": statistics.median(contender.rates)
                        / baseline}
                 for name, contender in contenders.items()},
    }


def format_normalization_report(report: dict) -> str:
    lines = [f"training images/s, side by side ({report['threads']} thread, "
             f"{report['repeats']} rounds of {report['steps_per_repeat']} steps), "
             f"{report['cpu']}"]
    for name, row in report["runs"].items():
        lines.append(f"  {name:16s} {row['median']:8.0f}  x{row['ratio_to_no_norm']:.2f}"
                     f"  [{row['min']:.0f}, {row['max']:.0f}]  {row['label']}")
    return "\n".join(lines)


def main(args) -> int:
    from .runner import write_json_atomic

    if getattr(args, "normalizations", False):
        report = normalization_speed(args.data, repeats=args.repeats, steps=args.steps)
        out = Path(args.out or NORMALIZATION_OUT)
        print(format_normalization_report(report))
        write_json_atomic(out, report)
        print(f"written: {out}")
        return 0
    report = run_bench(args.data, repeats=args.repeats, steps=args.steps)
    out = Path(args.out or BENCH_OUT)
    print(format_report(report))
    write_json_atomic(out, report)
    print(f"written: {out}\n\nas a Markdown table (for the README):\n")
    print(markdown_table(report))
    return 0
