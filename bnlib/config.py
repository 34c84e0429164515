"""What is trained: run configurations, named grids and profiles, as data.

A **run configuration** (:class:`RunConfig`) says everything about one network
and how it learns: dropout, which normalization sits on the convolutions and on
the dense layer (and where, before or after the ReLU), how the input pixels are
scaled, the optimizer and its learning rate, the arithmetic precision and the
probes that record extra series. A **grid** (:class:`Grid`) is a named tuple of
configurations a chapter trains; ``article`` is the 2018 article's 12 runs with
its ids 0-11. A **profile** (:class:`Protocol`) says how long and on how much
data: epochs, steps, evaluation interval, sizes, seeds.

Everything here is plain Python (no TensorFlow import), so the command line can
list and validate grids instantly. A configuration that is unknown or
contradictory (GroupNorm on the dense layer, a ghost size that does not divide
the batch, a learning rate <= 0, ...) raises :class:`ConfigError` naming the
field, before any file is touched. All validation lives here:
:func:`validate_config` (a run), :func:`validate_protocol` (a profile in
itself), :func:`parse_run_ids` (``--runs``), :func:`check_data` (a profile
against the loaded data), :func:`check_machine` (workers, threads, memory,
precision) and :func:`validate_training` (all of them, what the runner calls
before it touches a file).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

NORM_KINDS = ("none", "batch", "ghost", "layer", "group", "renorm", "noisy",
              "noise")
INPUT_SCALINGS = ("raw", "unit", "standardize", "bn_input")
BN_POSITIONS = ("after_relu", "before_relu")
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float32", "mixed_bfloat16")
MODELS = ("article_cnn", "sigmoid_mlp")  # bnlib.models.build_cnn / build_sigmoid_mlp
CONV_CHANNELS = (32, 64)  # the article CNN's two convolutions
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
PROFILE_ENV_VAR = "BNLIB_PROFILE"

NORM_NAMES = {"none": "no norm", "batch": "BN", "ghost": "ghost BN",
              "layer": "LayerNorm", "group": "GroupNorm", "renorm": "BatchRenorm",
              "noisy": "noisy BN", "noise": "BN noise only"}
INPUT_NAMES = {"raw": "raw inputs", "unit": "inputs /255",
               "standardize": "standardized inputs",
               "bn_input": "one BN layer on the input image"}


class ConfigError(ValueError):
    """A run configuration, grid or profile that cannot be trained as asked.

    ``field`` names what was refused (``"train_size"``, ``"learning_rate"``,
    ``"runs"``, ...) where one field is to blame; the message names it too, and
    ends with its command-line flag where it has one (see :data:`FLAGS`).
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


# the command-line flag of each field a flag can set (python -m bnlib run)
FLAGS = {"profile": "--profile", "epochs": "--epochs", "eval_every": "--eval-every",
         "steps_per_epoch": "--steps-per-epoch", "batch_size": "--batch-size",
         "train_size": "--train-size", "test_size": "--test-size",
         "seeds": "--seeds", "learning_rate": "--learning-rate",
         "bn_position": "--bn-position", "precision": "--precision",
         "runs": "--runs", "workers": "--workers", "threads": "--threads"}


def _flag(*fields: str) -> str:
    """`` (flag --train-size)``: what a message ends with, for the fields a
    command-line flag sets (empty for the others)."""
    flags = [FLAGS[field] for field in fields if field in FLAGS]
    return (f" (flag{'s' if len(flags) > 1 else ''} {', '.join(flags)})"
            if flags else "")


# --------------------------------------------------------------------------- runs
@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One network and how it is trained (everything but the seed and profile).

    ``norm_conv`` / ``norm_dense`` are one of :data:`NORM_KINDS` for the two
    convolutions and for the hidden dense layer; ``input_scaling`` one of
    :data:`INPUT_SCALINGS` (``raw`` 0-255 as the article, ``unit`` x/255,
    ``standardize`` per-channel mean/std of the training split, ``bn_input`` a
    BN layer on the raw image). ``ghost_size`` is the statistics-batch size of
    ghost BN (needed) and of Batch Renormalization (optional: without it
    ``renorm`` is Keras' layer over the whole batch); ``groups`` the group
    count of GroupNorm. ``renorm_rmax`` / ``renorm_dmax`` clip Batch
    Renormalization's corrections ``r`` to [1/rmax, rmax] and ``d`` to
    [-dmax, dmax] (None: unclipped, Keras' default, under which the corrections
    cancel the batch statistics and training normalizes with the moving
    averages). ``momentum`` is SGD's
    (0 = plain SGD). ``probes`` name extra series recorded at each evaluation
    (see :mod:`bnlib.probes`); ``early_probes`` (some of them) are also
    recorded every ``early_probe_every`` steps during the first
    ``early_probe_epochs`` epochs, where a quantity changes fastest.
    """

    name: str
    dropout: float = 0.0
    norm_conv: str = "none"
    norm_dense: str = "none"
    bn_position: str = "after_relu"
    input_scaling: str = "raw"
    ghost_size: int | None = None
    groups: int | None = None
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.0
    adam_beta_1: float = 0.9
    adam_beta_2: float = 0.999
    adam_epsilon: float = 1e-8
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    renorm_rmax: float | None = None
    renorm_dmax: float | None = None
    precision: str = "float32"
    model: str = "article_cnn"
    probes: tuple[str, ...] = ()
    early_probes: tuple[str, ...] = ()
    early_probe_every: int = 0
    early_probe_epochs: int = 0

    @property
    def bn_conv(self) -> bool:
        """The convolutions are normalized (whatever the kind)."""
        return self.norm_conv != "none"

    @property
    def bn_dense(self) -> bool:
        """The hidden dense layer is normalized (whatever the kind)."""
        return self.norm_dense != "none"

    @property
    def label(self) -> str:
        """Words for legends: e.g. ``BN conv+dense, dropout 0.4``."""
        kinds = {self.norm_conv, self.norm_dense} - {"none"}
        if self.model == "sigmoid_mlp":
            text = "sigmoid MLP, " + ("BN" if self.bn_dense else "no BN")
        elif not kinds:
            # one BN layer on the input image says itself that no hidden layer has BN
            text = "" if self.input_scaling == "bn_input" else "no BN"
        else:
            kind = NORM_NAMES[kinds.pop()] if len(kinds) == 1 else (
                f"{NORM_NAMES[self.norm_conv]} conv / {NORM_NAMES[self.norm_dense]}")
            where = {(True, False): " conv", (False, True): " dense",
                     (True, True): " conv+dense"}[(self.bn_conv, self.bn_dense)]
            text = kind + (where if "/" not in kind else " dense")
        if self.ghost_size:
            text += f" (g={self.ghost_size})"
        if self.groups and "group" in (self.norm_conv, self.norm_dense):
            text += f" ({self.groups} groups)"
        if self.bn_position == "before_relu" and self.model == "article_cnn":
            text += ", before ReLU"
        if self.input_scaling != "raw":
            text += f"{', ' if text else ''}{INPUT_NAMES[self.input_scaling]}"
        if self.dropout:
            text += f", dropout {self.dropout:g}"
        if self.optimizer != "adam" or self.learning_rate != 1e-3:
            text += f", {self.optimizer} lr {self.learning_rate:g}"
            if self.momentum:
                text += f" (momentum {self.momentum:g})"
        if self.precision != "float32":
            text += ", bf16"
        return text

    def replace(self, **changes) -> "RunConfig":
        """A copy with fields changed, validated."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ConfigError(f"{self.name}: unknown run configuration field(s) "
                              f"{unknown}; the fields are {', '.join(names)}",
                              unknown[0])
        return validate_config(dataclasses.replace(self, **changes))

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record["probes"] = list(self.probes)
        record["early_probes"] = list(self.early_probes)
        return record


def _choice(config: RunConfig, field: str, choices) -> None:
    value = getattr(config, field)
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{config.name}: {field} must be one of "
                          f"{', '.join(map(str, choices))}; got {value!r}"
                          f"{_flag(field)}", field)


def _number(config: RunConfig, field: str, low: float, high: float, *,
            low_open: bool = False, high_open: bool = True) -> None:
    value = getattr(config, field)
    interval = (("(" if low_open else "[") + f"{low:g}, {high:g}"
                + (")" if high_open else "]"))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{config.name}: {field} must be a number in "
                          f"{interval}, got {value!r}{_flag(field)}", field)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if not math.isfinite(value) or below or above:
        raise ConfigError(f"{config.name}: {field} must be in {interval}, "
                          f"got {value!r}{_flag(field)}", field)


def _check_early_probes(config: RunConfig) -> None:
    """``early_probes`` are some of ``probes``, with a schedule; no schedule
    without them."""
    if not isinstance(config.early_probes, tuple):
        raise ConfigError(f"{config.name}: early_probes must be a tuple of names, "
                          f"got {config.early_probes!r}", "early_probes")
    unknown = [p for p in config.early_probes if p not in config.probes]
    if unknown:
        raise ConfigError(f"{config.name}: early_probes {unknown} are not among the "
                          f"run's probes {list(config.probes)}; add them to probes "
                          f"too (an early probe is also recorded at every "
                          f"evaluation)", "early_probes")
    for field in ("early_probe_every", "early_probe_epochs"):
        value = getattr(config, field)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{config.name}: {field} must be a whole number of "
                              f"{'steps' if field.endswith('every') else 'epochs'} "
                              f"(0 or more), got {value!r}", field)
        if config.early_probes and not value:
            raise ConfigError(f"{config.name}: early_probes {list(config.early_probes)} "
                              f"need {field} at least 1", field)
        if value and not config.early_probes:
            raise ConfigError(f"{config.name}: {field} is {value} but early_probes is "
                              f"empty; name the probes to record early, or set "
                              f"{field} to 0", field)


def validate_config(config: RunConfig, protocol: "Protocol | None" = None
                    ) -> RunConfig:
    """Return ``config`` if it can be trained (under ``protocol`` if given),
    else raise :class:`ConfigError` naming the field."""
    if not isinstance(config.name, str) or not NAME_PATTERN.match(config.name):
        raise ConfigError(f"run name must be lower-case letters, digits, '.', '+' "
                          f"or '-', got {config.name!r}", "name")
    _number(config, "dropout", 0.0, 1.0)
    for field in ("norm_conv", "norm_dense"):
        _choice(config, field, NORM_KINDS)
    _choice(config, "bn_position", BN_POSITIONS)
    _choice(config, "input_scaling", INPUT_SCALINGS)
    _choice(config, "optimizer", OPTIMIZERS)
    _choice(config, "precision", PRECISIONS)
    _choice(config, "model", MODELS)
    _number(config, "learning_rate", 0.0, 10.0, low_open=True, high_open=False)
    _number(config, "momentum", 0.0, 1.0)
    _number(config, "bn_momentum", 0.0, 1.0)
    _number(config, "bn_epsilon", 0.0, 1.0, low_open=True)
    for field in ("adam_beta_1", "adam_beta_2"):
        _number(config, field, 0.0, 1.0)
    _number(config, "adam_epsilon", 0.0, 1.0, low_open=True)
    kinds = (config.norm_conv, config.norm_dense)
    if config.norm_dense == "group":
        raise ConfigError(f"{config.name}: norm_dense cannot be 'group': GroupNorm "
                          f"groups the channels of a convolution; use 'layer' on "
                          f"the dense layer", "norm_dense")
    if config.optimizer == "adam" and config.momentum:
        raise ConfigError(f"{config.name}: momentum is SGD's; Adam has adam_beta_1 "
                          f"(got optimizer 'adam' with momentum {config.momentum})",
                          "momentum")
    if config.model == "sigmoid_mlp":
        _check_mlp(config)
    if config.bn_position == "before_relu" and kinds == ("none", "none"):
        raise ConfigError(f"{config.name}: bn_position 'before_relu' needs a "
                          f"normalization on the conv or dense layer"
                          f"{_flag('bn_position')}", "bn_position")
    if config.bn_position == "before_relu" and "noise" in kinds:
        # before the ReLU the layer's bias is dropped, as a normalization
        # subtracts it away; the noise alone does not, so the bias would be lost
        raise ConfigError(f"{config.name}: bn_position 'before_relu' drops the "
                          f"layer's bias, which norm kind 'noise' (no "
                          f"normalization) does not replace; use 'after_relu'"
                          f"{_flag('bn_position')}", "bn_position")
    _sized(config, "ghost_size", "ghost" in kinds, "ghost",
           allowed="renorm" in kinds)
    _sized(config, "groups", "group" in kinds, "group")
    for field, low in (("renorm_rmax", 1.0), ("renorm_dmax", 0.0)):
        value = getattr(config, field)
        if value is None:
            continue
        if "renorm" not in kinds:
            raise ConfigError(f"{config.name}: {field} is set but no layer uses "
                              f"norm kind 'renorm'", field)
        _number(config, field, low, 1e6)
    if config.ghost_size is not None and config.ghost_size < 2:
        raise ConfigError(f"{config.name}: ghost_size must be at least 2 (one "
                          f"example has no variance), got {config.ghost_size}",
                          "ghost_size")
    if config.groups is not None and any(c % config.groups for c in CONV_CHANNELS):
        raise ConfigError(f"{config.name}: groups must divide the conv channels "
                          f"{CONV_CHANNELS}, got {config.groups}", "groups")
    if not isinstance(config.probes, tuple):
        raise ConfigError(f"{config.name}: probes must be a tuple of names, got "
                          f"{config.probes!r}", "probes")
    from .probes import check_probe  # plain Python: no TensorFlow import

    for probe in config.probes:
        try:
            check_probe(config, probe)
        except ConfigError as err:
            err.field = err.field or "probes"
            raise
    _check_early_probes(config)
    if protocol is not None and config.ghost_size is not None:
        if protocol.batch_size % config.ghost_size:
            raise ConfigError(f"{config.name}: ghost_size {config.ghost_size} does "
                              f"not divide the batch size {protocol.batch_size}"
                              f"{_flag('batch_size')}", "ghost_size")
    if protocol is not None and "batch_stats_eval" in config.probes:
        test_images = protocol.test_size or SPLIT_SIZES["test_size"]
        if test_images < protocol.batch_size:
            raise ConfigError(f"{config.name}: probe batch_stats_eval evaluates the "
                              f"test images in batches of {protocol.batch_size}; "
                              f"test_size must be at least the batch size, got "
                              f"{test_images}{_flag('test_size', 'batch_size')}",
                              "test_size")
    return config


def _check_mlp(config: RunConfig) -> None:
    """The Figure 1 network has no convolutions and no dropout, and normalizes
    with BN before each sigmoid, as the paper."""
    if config.norm_conv != "none":
        raise ConfigError(f"{config.name}: model 'sigmoid_mlp' has no convolutions; "
                          f"norm_conv must be 'none', got {config.norm_conv!r}",
                          "norm_conv")
    if config.norm_dense not in ("none", "batch"):
        raise ConfigError(f"{config.name}: model 'sigmoid_mlp' takes norm_dense "
                          f"'none' or 'batch', got {config.norm_dense!r}", "norm_dense")
    if config.dropout:
        raise ConfigError(f"{config.name}: model 'sigmoid_mlp' has no dropout, got "
                          f"{config.dropout}", "dropout")
    if config.bn_dense and config.bn_position != "before_relu":
        raise ConfigError(f"{config.name}: model 'sigmoid_mlp' puts BN on XW before "
                          f"the sigmoid, as the paper: set bn_position "
                          f"'before_relu' (before the nonlinearity)", "bn_position")


def _sized(config: RunConfig, field: str, needed: bool, kind: str,
           allowed: bool = False) -> None:
    """``field`` is set where norm ``kind`` is used (``needed``), may be set
    where ``allowed`` (another kind that takes it), and is unset otherwise."""
    value = getattr(config, field)
    if needed and value is None:
        raise ConfigError(f"{config.name}: norm kind '{kind}' needs {field}", field)
    if not (needed or allowed) and value is not None:
        users = f"'{kind}'" + (" or 'renorm'" if field == "ghost_size" else "")
        raise ConfigError(f"{config.name}: {field} is set but no layer uses "
                          f"norm kind {users}", field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 1):
        raise ConfigError(f"{config.name}: {field} must be a positive integer, "
                          f"got {value!r}", field)


# --------------------------------------------------------------------------- grids
@dataclasses.dataclass(frozen=True)
class Grid:
    """A named set of runs a chapter trains; ``runs[i]`` has run id ``i``.

    Results go to ``results/<folder>/`` under the grid's own profile
    (``profile``, usually ``book``) and to ``results/<profile>/<name>/`` under
    any other profile.
    """

    name: str
    title: str
    chapter: str
    runs: tuple[RunConfig, ...]
    profile: str = "book"
    folder: str | None = None

    def __post_init__(self):
        names = [run.name for run in self.runs]
        if len(set(names)) != len(names):
            raise ConfigError(f"grid {self.name}: run names repeat")
        for run in self.runs:
            validate_config(run)

    def run(self, key: int | str) -> RunConfig:
        """A run by id (``9``) or name (``bn-both``)."""
        for run_id, run in enumerate(self.runs):
            if key == run_id or key == run.name:
                return run
        raise ConfigError(
            f"grid {self.name} has no run {key!r}: ids 0-{len(self.runs) - 1} or "
            f"names {', '.join(r.name for r in self.runs)} (`python -m bnlib list "
            f"--grid {self.name}`)", "runs")

    def run_id(self, config: RunConfig) -> int:
        return self.runs.index(config)

    def results_dir(self, protocol: "Protocol", root: str | os.PathLike = "results"):
        from pathlib import Path

        if protocol.profile == self.profile:
            return Path(root) / (self.folder or self.name)
        return Path(root) / protocol.profile / self.name


WHERE = {(False, False): "none", (True, False): "conv", (False, True): "dense",
         (True, True): "both"}


def _dropout_tag(dropout: float) -> str:
    return f"d{round(dropout * 10)}"  # d0, d2, d4


def article_runs(input_scaling: str = "raw", prefix: str = "") -> tuple[RunConfig, ...]:
    """The article's 12: BN on no layer / conv / dense / both x dropout 0, 0.2,
    0.4, in the article's order (ids 0-11), with the given input scaling."""
    runs = []
    for bn_conv, bn_dense in ((False, False), (True, False), (False, True),
                              (True, True)):
        for dropout in (0.0, 0.2, 0.4):
            name = (f"{prefix}{'bn-' if bn_conv or bn_dense else ''}"
                    f"{WHERE[(bn_conv, bn_dense)]}-{_dropout_tag(dropout)}")
            runs.append(RunConfig(name, dropout, "batch" if bn_conv else "none",
                                  "batch" if bn_dense else "none",
                                  input_scaling=input_scaling))
    return tuple(runs)


# chapter 06: the optimizer
# plain SGD at the rate best for the network without BN in a pilot of three
# rates (grid figure1pilot; a test checks it against the pilot's files)
FIGURE1_LEARNING_RATE = 1.0
FIGURE1_PILOT_RATES = (0.3, 1.0, 3.0)
SGD_MOMENTUM = 0.9
SGD_LEARNING_RATES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
ADAM_LEARNING_RATES = (1e-4, 1e-3, 1e-2)


def figure1_runs() -> tuple[RunConfig, ...]:
    """The paper's Figure 1 network without and with BN: standardized inputs,
    plain SGD (the paper names no optimizer), the input of the last hidden
    layer's sigmoids probed at every evaluation."""
    return tuple(
        RunConfig(f"mlp-{'bn' if normalized else 'none'}", model="sigmoid_mlp",
                  norm_dense="batch" if normalized else "none",
                  bn_position="before_relu" if normalized else "after_relu",
                  input_scaling="standardize", optimizer="sgd",
                  learning_rate=FIGURE1_LEARNING_RATE,
                  probes=("activation_input:dense3",))
        for normalized in (False, True))


def figure1_pilot_runs() -> tuple[RunConfig, ...]:
    """The network of :func:`figure1_runs` without BN (and without probes) at
    each of :data:`FIGURE1_PILOT_RATES`: how Part A's rate was chosen."""
    plain = figure1_runs()[0]
    return tuple(plain.replace(name=f"{plain.name}-lr{rate:g}", learning_rate=rate,
                               probes=())
                 for rate in FIGURE1_PILOT_RATES)


def learning_rate_runs(optimizer: str, rates) -> tuple[RunConfig, ...]:
    """No BN and BN conv+dense (dropout 0, standardized inputs) at each rate,
    with the input of dense1's ReLU probed; SGD with momentum 0.9."""
    runs = []
    for rate in rates:
        for norm in ("none", "batch"):
            name = f"{optimizer}-{'bn-both' if norm == 'batch' else 'none'}-lr{rate:g}"
            runs.append(RunConfig(
                name, norm_conv=norm, norm_dense=norm, input_scaling="standardize",
                optimizer=optimizer, learning_rate=rate,
                momentum=SGD_MOMENTUM if optimizer == "sgd" else 0.0,
                probes=("activation_input:dense1",)))
    return tuple(runs)


# The map's best rate per arm (the highest third-epoch test accuracy in
# results/lrmap; tests/test_optimizer_chapter.py checks them against the files)
MAP_BEST_RATES = {"none": 0.01, "batch": 0.01}
# the highest rate at which BN stays within 90 % of its best accuracy in the map
# (the paper's BN-x5 / BN-x30 question: what does a higher rate buy?)
MAP_BN_HIGHEST_RATE = 0.1


def followup_runs() -> tuple[RunConfig, ...]:
    """Chapter 06's follow-up: the map's runs (same configurations) for the
    book's 15 epochs, at the best rate without BN, the best rate with BN, BN
    at the no-BN best rate and BN at its highest usable rate (each
    configuration once where rates coincide)."""
    wanted = {("none", MAP_BEST_RATES["none"]), ("batch", MAP_BEST_RATES["batch"]),
              ("batch", MAP_BEST_RATES["none"]), ("batch", MAP_BN_HIGHEST_RATE)}
    return tuple(run for run in learning_rate_runs("sgd", SGD_LEARNING_RATES)
                 if (run.norm_dense, run.learning_rate) in wanted)


# chapter 07: Santurkar et al. (2018), "How Does Batch Normalization Help
# Optimization?" One rate for every arm, the one best for the network without
# BN (so the baseline is not handicapped), as the paper compares at equal rates
SANTURKAR_LEARNING_RATE = MAP_BEST_RATES["none"]
SANTURKAR_PROBES = ("ics:conv2", "ics:dense1", "landscape")
# the landscape changes fastest early: also measured ten times an epoch (every
# 39 of 390 steps) in the first epochs, the ones the chapter compares
SANTURKAR_EARLY_PROBES = ("landscape",)
SANTURKAR_EARLY_PROBE_EVERY = 39
SANTURKAR_EARLY_EPOCHS = 3
# the distributions the noise moves: each normalization's output, one channel
SANTURKAR_NORM_PROBES = ("norm_output:conv1", "norm_output:conv2", "norm_output:dense1")
SANTURKAR_NORMS = {"none": "none", "batch": "bn", "noisy": "noisy", "noise": "noise"}
# the noisy-BN test means something only where BN helps, and at the rate above
# BN is level with no BN: no BN and noisy BN are also trained at the highest
# rate BN tolerates in the map (BN at that rate is chapter 06's follow-up run:
# the same configuration and seeds, so the same trajectory)
SANTURKAR_HIGH_RATE = MAP_BN_HIGHEST_RATE


def santurkar_runs() -> tuple[RunConfig, ...]:
    """No BN, BN, noisy BN and the noise without BN, each on the convolutions
    and the dense layer (dropout 0, standardized inputs, SGD with momentum 0.9
    at :data:`SANTURKAR_LEARNING_RATE`). No BN and BN record the paper's
    measurements at every evaluation: the internal covariate shift of conv2's
    and dense1's kernel gradients and the loss landscape along the gradient
    (the landscape also every :data:`SANTURKAR_EARLY_PROBE_EVERY` steps in the
    first :data:`SANTURKAR_EARLY_EPOCHS` epochs); every arm with a
    normalization layer records one channel of each such layer's output (see
    :mod:`bnlib.probes`). Then no BN and noisy BN at
    :data:`SANTURKAR_HIGH_RATE`, without probes."""
    def paper_probes(norm: str) -> dict:
        if norm not in ("none", "batch"):
            return {}
        return dict(early_probes=SANTURKAR_EARLY_PROBES,
                    early_probe_every=SANTURKAR_EARLY_PROBE_EVERY,
                    early_probe_epochs=SANTURKAR_EARLY_EPOCHS)

    return tuple(
        RunConfig(f"sgd-{tag}", norm_conv=norm, norm_dense=norm,
                  input_scaling="standardize", optimizer="sgd",
                  learning_rate=SANTURKAR_LEARNING_RATE, momentum=SGD_MOMENTUM,
                  probes=(SANTURKAR_PROBES if norm in ("none", "batch") else ())
                  + (SANTURKAR_NORM_PROBES if norm != "none" else ()),
                  **paper_probes(norm))
        for norm, tag in SANTURKAR_NORMS.items()) + tuple(
        RunConfig(f"sgd-{SANTURKAR_NORMS[norm]}-lr{SANTURKAR_HIGH_RATE:g}",
                  norm_conv=norm, norm_dense=norm, input_scaling="standardize",
                  optimizer="sgd", learning_rate=SANTURKAR_HIGH_RATE,
                  momentum=SGD_MOMENTUM)
        for norm in ("none", "noisy"))


# chapter 08: small batches. The gradient batch stays 128; BN's statistics come
# from ghost groups of g examples (Wu & He 2018, Group Normalization; Ioffe
# 2017, Batch Renormalization)
GHOST_SIZES = (128, 32, 8, 4, 2)
RENORM_GHOST_SIZES = (128, 4, 2)
SMALLBATCH_GROUPS = 8  # GroupNorm's groups on the convolutions (32 and 64 channels)
# Batch Renormalization's clipping: the values Ioffe (2017) ramps up to (r from
# 1 to 3, d from 0 to 5 over training); held fixed here, without the ramp
RENORM_RMAX, RENORM_DMAX = 3.0, 5.0


def smallbatch_runs() -> tuple[RunConfig, ...]:
    """Normalization on the convolutions and the dense layer (dropout 0,
    standardized inputs, Adam 1e-3): ghost BN at each of :data:`GHOST_SIZES`,
    LayerNorm on both, GroupNorm on the convolutions with LayerNorm on the
    dense layer, Batch Renormalization at each of :data:`RENORM_GHOST_SIZES`
    with r clipped to [1/3, 3] and d to [-5, 5].
    Every run with batch statistics also records its test accuracy with test
    batch statistics (probe ``batch_stats_eval``)."""
    probe = ("batch_stats_eval",)
    ghost = [RunConfig(f"ghost-g{g}", norm_conv="ghost", norm_dense="ghost",
                       ghost_size=g, input_scaling="standardize", probes=probe)
             for g in GHOST_SIZES]
    renorm = [RunConfig(f"renorm-g{g}", norm_conv="renorm", norm_dense="renorm",
                        ghost_size=g, renorm_rmax=RENORM_RMAX, renorm_dmax=RENORM_DMAX,
                        input_scaling="standardize", probes=probe)
              for g in RENORM_GHOST_SIZES]
    layer = RunConfig("layernorm", norm_conv="layer", norm_dense="layer",
                      input_scaling="standardize")
    group = RunConfig("groupnorm", norm_conv="group", norm_dense="layer",
                      groups=SMALLBATCH_GROUPS, input_scaling="standardize")
    return (*ghost, layer, group, *renorm)


def _grids() -> dict[str, Grid]:
    article = article_runs()
    standardized = article_runs("standardize", prefix="std-")
    grids = [
        Grid("article", "The article's 12 runs (raw 0-255 inputs, Adam 1e-3)",
             "04", article, folder="book"),
        Grid("standardized", "The article's 12 runs with standardized inputs",
             "05", standardized),
        Grid("inputs", "Input-scaling and placement controls", "05", (
            RunConfig("unit-none-d0", input_scaling="unit"),
            RunConfig("bninput-none-d0", input_scaling="bn_input"),
            RunConfig("bn-both-d0-before", norm_conv="batch", norm_dense="batch",
                      bn_position="before_relu"),
            RunConfig("bn-both-d4-before", 0.4, "batch", "batch",
                      bn_position="before_relu"),
        )),
        Grid("budget", "Configs 0, 2, 9, 11 for 40 epochs, 1 seed, raw and "
             "standardized inputs", "05",
             tuple(runs[i] for runs in (article, standardized) for i in (0, 2, 9, 11)),
             profile="long"),
        Grid("figure1", "Ioffe & Szegedy's Figure 1: a sigmoid MLP with and without "
             "BN, SGD", "06", figure1_runs(), profile="figure1"),
        Grid("figure1pilot", "The pilot that chose Figure 1's rate: the sigmoid MLP "
             "without BN, plain SGD at three rates, 10,000 steps", "06",
             figure1_pilot_runs(), profile="pilot"),
        Grid("lrmap", "Learning-rate map: SGD with momentum 0.9, no BN vs BN "
             "conv+dense, standardized inputs", "06",
             learning_rate_runs("sgd", SGD_LEARNING_RATES), profile="short"),
        Grid("lradam", "Adam at three learning rates, no BN vs BN conv+dense, "
             "standardized inputs", "06",
             learning_rate_runs("adam", ADAM_LEARNING_RATES), profile="short"),
        Grid("lrfollowup", "The learning-rate map's rates for 15 epochs: no BN and "
             "BN at their best rates, BN at the no-BN best rate and at its highest "
             "usable rate", "06",
             followup_runs(), profile="two-seeds"),
        Grid("santurkar", "Santurkar et al. (2018): no BN, BN, noisy BN and the "
             "noise without BN; internal covariate shift and loss landscape "
             "probed; SGD with momentum 0.9, standardized inputs; no BN and "
             "noisy BN also at BN's highest usable rate", "07",
             santurkar_runs(), profile="two-seeds"),
        Grid("smallbatch", "Small batches: ghost BN at g = 128 to 2, LayerNorm, "
             "GroupNorm, Batch Renormalization at g = 128, 4, 2; conv+dense, "
             "standardized inputs, Adam 1e-3", "08", smallbatch_runs(),
             profile="medium"),
        Grid("bf16", "Configs 0, 3, 11 in mixed bfloat16", "speed",
             tuple(article[i].replace(name=article[i].name + "-bf16",
                                      precision="mixed_bfloat16")
                   for i in (0, 3, 11))),
    ]
    return {grid.name: grid for grid in grids}


GRIDS: dict[str, Grid] = _grids()
ARTICLE = GRIDS["article"]


def get_grid(name: str) -> Grid:
    if name not in GRIDS:
        raise ConfigError(f"unknown grid {name!r}: choose one of "
                          f"{', '.join(GRIDS)} (`python -m bnlib list`)", "grid")
    return GRIDS[name]


# --------------------------------------------------------------------------- profiles
@dataclasses.dataclass(frozen=True)
class Protocol:
    """How long, on how much data, measured how often (the run decides the rest)."""

    profile: str
    epochs: int
    eval_every: int          # steps between test-set evaluations
    steps_per_epoch: int = 390  # floor(50000 / 128), as in the article
    batch_size: int = 128
    train_size: int | None = None  # None: the full 50,000
    test_size: int | None = None   # None: the full 10,000
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
    # Chapter 06's learning-rate maps: 3 epochs, one seed.
    "short": Protocol("short", epochs=3, eval_every=195, seeds=1),
    # Ioffe & Szegedy's Figure 1: 50,000 steps of 60 examples (an "epoch" here
    # is 1,000 steps, 1.2 passes over the training split), 3 seeds.
    "figure1": Protocol("figure1", epochs=50, eval_every=500, steps_per_epoch=1000,
                        batch_size=60, seeds=3),
    # The pilot that chose Figure 1's rate: its first 10,000 steps, one seed.
    "pilot": Protocol("pilot", epochs=10, eval_every=500, steps_per_epoch=1000,
                      batch_size=60, seeds=1),
    # Chapter 06's follow-up and chapter 07: the book's 15 epochs, 2 seeds.
    "two-seeds": Protocol("two-seeds", epochs=15, eval_every=195, seeds=2),
    # Chapter 08's small batches: 10 epochs, 2 seeds.
    "medium": Protocol("medium", epochs=10, eval_every=195, seeds=2),
    # The book's longer budget (chapter 05's control): 40 epochs, one seed.
    "long": Protocol("long", epochs=40, eval_every=195, seeds=1),
    # The article's original protocol (for GPU owners): 400 epochs, eval every 50.
    "article": Protocol("article", epochs=400, eval_every=50, seeds=1),
}
INT_FIELDS = ("epochs", "eval_every", "steps_per_epoch", "batch_size", "seeds")
SIZE_FIELDS = ("train_size", "test_size")
NUM_CLASSES = 10
# a result file's curve: one row per evaluation
CURVE_COLUMNS = ["step", "epoch", "train_loss", "train_acc", "test_acc"]
SPLIT_SIZES = {"train_size": 50_000, "test_size": 10_000}  # CIFAR-10's two splits
MAX_BATCH = SPLIT_SIZES["train_size"]
MAX_SEEDS = 1000
# an epoch's shuffled order (steps_per_epoch x batch_size indices) is held in memory
MAX_EPOCH_IMAGES = 10_000_000
MAX_EVALUATIONS = 100_000  # curve rows of one run (each evaluates the test set)
# what a training step holds, measured for the article CNN in float32 (about
# 0.5 MB per image of the batch, 0.65 GB for TensorFlow, the model and the data),
# doubled for headroom: a batch that cannot fit is refused, not killed mid-run
STEP_BYTES_PER_IMAGE = 1 << 20
WORKER_BYTES = 1 << 30


def get_profile(name: str | None = None, **overrides) -> Protocol:
    """A profile by name (default ``$BNLIB_PROFILE`` or ``book``), fields
    overridden (``None`` leaves a field as the profile has it), validated."""
    if name is None:
        name = os.environ.get(PROFILE_ENV_VAR) or "book"
    if not isinstance(name, str) or name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of "
                          f"{', '.join(PROFILES)} (flag --profile or "
                          f"${PROFILE_ENV_VAR}).", "profile")
    fields = {k: v for k, v in overrides.items() if v is not None}
    names = [f.name for f in dataclasses.fields(Protocol) if f.name != "profile"]
    unknown = set(fields) - set(names)
    if unknown:
        raise ConfigError(f"unknown protocol field(s) {sorted(unknown)}: a profile's "
                          f"fields are {', '.join(names)} (the profile's name is "
                          f"the first argument)", sorted(unknown)[0])
    protocol = dataclasses.replace(PROFILES[name], **fields)
    validate_protocol(protocol)
    return protocol


def _whole(protocol: Protocol, field: str, low: int, high: int | None,
           why: str = "", also: tuple[str, ...] = ()) -> int:
    value = getattr(protocol, field)
    accepted = (f"at least {low:,} (a whole number)" if high is None
                else f"a whole number in [{low:,}, {high:,}]")
    if (isinstance(value, bool) or not isinstance(value, int) or value < low
            or (high is not None and value > high)):
        raise ConfigError(f"{field} must be {accepted}{why}, got {value!r}"
                          f"{_flag(field, *also)}", field)
    return value


def validate_protocol(protocol: Protocol) -> Protocol:
    """Return ``protocol`` if it is consistent in itself, else raise
    :class:`ConfigError` naming the field, its flag and the accepted range.

    Whole numbers >= 1 for every count; at most :data:`MAX_SEEDS` seeds;
    ``train_size`` / ``test_size`` a multiple of the 10 classes (a balanced
    subset) within CIFAR-10's split, the training subset at least one batch; an
    evaluation interval no longer than the run; at most
    :data:`MAX_EPOCH_IMAGES` images per epoch and :data:`MAX_EVALUATIONS`
    evaluations. What depends on the data or the machine is
    :func:`check_data` and :func:`check_machine`.
    """
    if not isinstance(protocol, Protocol):
        raise ConfigError(f"expected a Protocol, got {type(protocol).__name__}")
    if not isinstance(protocol.profile, str) or not NAME_PATTERN.match(
            protocol.profile):
        raise ConfigError(f"profile name must be lower-case letters, digits, '.', "
                          f"'+' or '-', got {protocol.profile!r}", "profile")
    for field in ("epochs", "steps_per_epoch", "eval_every"):
        _whole(protocol, field, 1, None)
    _whole(protocol, "seeds", 1, MAX_SEEDS, " (seeds 0..N-1)")
    batch = _whole(protocol, "batch_size", 1, MAX_BATCH,
                   " (at most the training split)")
    for field in SIZE_FIELDS:
        if getattr(protocol, field) is None:
            continue
        low = batch if field == "train_size" else NUM_CLASSES
        why = (f" (at least one batch of {batch}, at most the split)"
               if field == "train_size" else " (at most the split)")
        size = _whole(protocol, field, low, SPLIT_SIZES[field], why,
                      ("batch_size",) if field == "train_size" else ())
        if size % NUM_CLASSES:
            raise ConfigError(
                f"{field} must be a multiple of {NUM_CLASSES} (a balanced subset: "
                f"the same number of images of each class), got {size}"
                f"{_flag(field)}", field)
    per_epoch = protocol.steps_per_epoch * batch
    if per_epoch > MAX_EPOCH_IMAGES:
        raise ConfigError(
            f"steps_per_epoch x batch_size must be at most {MAX_EPOCH_IMAGES:,} "
            f"images per epoch (an epoch's shuffled order is held in memory), got "
            f"{protocol.steps_per_epoch} x {batch}; use more epochs instead"
            f"{_flag('steps_per_epoch', 'batch_size')}", "steps_per_epoch")
    total = protocol.total_steps
    run = (f"epochs {protocol.epochs} x steps_per_epoch "
           f"{protocol.steps_per_epoch}")
    flags = _flag("eval_every", "epochs", "steps_per_epoch")
    if protocol.eval_every > total:
        raise ConfigError(
            f"eval_every must be in [1, {total:,}] (the whole run: {run}), got "
            f"{protocol.eval_every}{flags}", "eval_every")
    if total // protocol.eval_every > MAX_EVALUATIONS:
        raise ConfigError(
            f"eval_every must be at least {-(-total // MAX_EVALUATIONS):,} for a run "
            f"of {run} steps (at most {MAX_EVALUATIONS:,} test evaluations), got "
            f"{protocol.eval_every}{flags}", "eval_every")
    return protocol


# --------------------------------------------------------------------------- run ids
RUNS_FORMS = ("ids and ranges like 0,3,9-11, or run names like bn-both-d4, "
              "separated by commas")
_RANGE = re.compile(r"(\d+)-(\d+)", re.ASCII)
_ID = re.compile(r"\d+", re.ASCII)


def parse_run_ids(grid: Grid, text: str | None) -> list[int] | None:
    """``"0,3,9-11"`` or run names (``"bn-both-d0,none-d0"``) -> run ids of
    ``grid`` in the order given, each once; ``None`` -> None (every run).
    Raises :class:`ConfigError` showing the accepted forms."""
    if text is None:
        return None

    def refuse(why: str):
        raise ConfigError(f"--runs {text!r}: {why}. Accepted: {RUNS_FORMS} "
                          f"(`python -m bnlib list --grid {grid.name}`)", "runs")

    names = {run.name: run_id for run_id, run in enumerate(grid.runs)}
    last = len(grid.runs) - 1
    ids: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if part in names:
            ids.append(names[part])
        elif _ID.fullmatch(part):
            if int(part) > last:
                refuse(f"grid {grid.name} has no run {int(part)} (ids 0-{last})")
            ids.append(int(part))
        elif _RANGE.fullmatch(part):
            low, high = (int(v) for v in _RANGE.fullmatch(part).groups())
            if low > high or high > last:
                refuse(f"range {part} is not within 0-{last} going up")
            ids.extend(range(low, high + 1))
        elif not part:
            refuse("an empty entry")
        else:
            refuse(f"grid {grid.name} has no run {part!r}")
    return list(dict.fromkeys(ids))


# --------------------------------------------------------------------------- before runs
def check_data(protocol: Protocol, data) -> Protocol:
    """Return ``protocol`` if it can be trained on the loaded ``data`` (a
    :class:`bnlib.data.Cifar10`) exactly as it records, else raise
    :class:`ConfigError`: each subset within its split and balanced (enough
    images of every class), at least one batch of training images."""
    import numpy as np

    validate_protocol(protocol)
    splits = {"train_size": (data.x_train, data.y_train, "training"),
              "test_size": (data.x_test, data.y_test, "test")}
    for field, (images, labels, split) in splits.items():
        size = getattr(protocol, field)
        have = len(images)
        kind = f"this {data.provenance.kind} data"
        if have < 1:
            raise ConfigError(f"{kind} has no {split} images", field)
        if size is None:
            continue
        if size > have:
            raise ConfigError(f"{field} must be at most {have:,} (the {split} "
                              f"split of {kind}), got {size:,}{_flag(field)}",
                              field)
        counts = np.bincount(np.asarray(labels).reshape(-1), minlength=NUM_CLASSES)
        if len(counts) != NUM_CLASSES or counts.min() < size // NUM_CLASSES:
            raise ConfigError(
                f"{field} {size} needs {size // NUM_CLASSES} {split} images of "
                f"each of the {NUM_CLASSES} classes; {kind} has {counts.tolist()}"
                f"{_flag(field)}", field)
    images = protocol.train_size or len(data.x_train)
    if protocol.batch_size > images:
        raise ConfigError(f"batch_size must be at most {images:,} (the training "
                          f"images of this {data.provenance.kind} data), got "
                          f"{protocol.batch_size:,}{_flag('batch_size')}",
                          "batch_size")
    return protocol


def _available_memory() -> int | None:
    """Bytes of memory available to a new process (Linux), else None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_machine(protocol: Protocol, configs=(), *, workers: int = 1,
                  threads: int | None = None) -> None:
    """Raise :class:`ConfigError` unless ``configs`` can be trained under
    ``protocol`` on this machine: ``workers`` in [1, cores] and ``threads``
    (per worker) in [1, cores]; the batch fits in the memory available (about
    :data:`STEP_BYTES_PER_IMAGE` per image per worker); each run's precision
    runs natively."""
    cores = os.cpu_count() or 1
    for field, value in (("workers", workers), ("threads", threads)):
        if value is None and field == "threads":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not (
                1 <= value <= cores):
            raise ConfigError(f"{field} must be a whole number in [1, {cores}] "
                              f"(the CPU cores of this machine), got {value!r}"
                              f"{_flag(field)}", field)
    available = _available_memory()
    needed = workers * (WORKER_BYTES + protocol.batch_size * STEP_BYTES_PER_IMAGE)
    if available is not None and needed > available:
        fits = max(0, (available // workers - WORKER_BYTES) // STEP_BYTES_PER_IMAGE)
        raise ConfigError(
            f"batch_size must be at most {fits:,} here: {workers} worker(s) x a "
            f"batch of {protocol.batch_size:,} need about {needed / 2**30:.1f} GB, "
            f"this machine has {available / 2**30:.1f} GB available"
            f"{_flag('batch_size', 'workers')}", "batch_size")
    from .training import check_precision  # NumPy only

    for config in configs:
        validate_config(config, protocol)
        try:
            check_precision(config.precision)
        except ValueError as err:
            raise ConfigError(f"{config.name}: {err}", "precision") from None


def validate_training(protocol: Protocol, data, configs=(), *, workers: int = 1,
                      threads: int | None = None) -> Protocol:
    """Everything checked before a grid touches a file: the protocol in itself
    and against the loaded ``data`` (:func:`check_data`), each run
    configuration under it, and this machine (:func:`check_machine`)."""
    check_data(protocol, data)
    check_machine(protocol, configs, workers=workers, threads=threads)
    return protocol
