"""Probes: extra series a run records at each evaluation, without changing it.

A probe is named in :attr:`bnlib.config.RunConfig.probes` as ``kind:argument``.
At every test evaluation the runner calls each probe, which returns one row of
numbers; the result JSON keeps them under ``probes[<name>]`` with their column
names under ``probe_columns[<name>]``, each row starting with the step.

A probe must not change the training trajectory: it touches no shared
random-number generator and no optimizer state, and leaves every model variable
(weights, BN moving averages, the seed state of dropout and of noisy BN)
exactly as it found it (a test trains the same run with and without a probe
and compares the curves bit for bit). Every probe measures on images chosen by
:func:`bnlib.data.fixed_sample`: a fixed shuffle of the split, the same for
every run, never the split's stored order (an image-folder copy stores it
sorted by class). ``activation_input`` reads the model in inference mode on a fixed
batch of test images and changes nothing; ``ics`` and ``landscape`` evaluate the
training loss at moved weights on a fixed batch of training images,
``norm_output`` runs part of the model in training mode on that batch, and
``batch_stats_eval`` runs the model in training mode on test batches; each then
assigns every model variable its saved value back.

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

``ics:<layer>``
    Internal covariate shift as Santurkar et al. (2018, Definition 2.1) define
    it: how much the gradient of one layer's kernel changes when every earlier
    layer takes its update. ``conv2`` or ``dense1`` of the article's CNN,
    ``dense2`` or ``dense3`` of the Figure 1 network. On the fixed probe batch
    of training images, ``G`` is the gradient of the training-mode loss with
    respect to the layer's kernel; every trainable variable of the layers
    before it in model order (their kernels, biases and normalization
    parameters) then takes one plain gradient step with the run's learning rate
    (``w - learning_rate * dL/dw``: not the optimizer's momentum or Adam update,
    whose state a probe must not touch), and ``G'`` is the same gradient again,
    the layer itself and the later ones unchanged. Records ``||G - G'||_2``,
    ``cos(G, G')`` (NaN where either gradient is zero) and ``||G||_2`` (the
    scale ``||G - G'||`` is to be read against).

``norm_output:<layer>``
    The output of the normalization after ``conv1``, ``conv2`` or ``dense1``
    (the layer ``bn_<layer>``: BN, noisy BN, the noise alone, ...) in training
    mode, on the fixed probe batch of training images (as ``ics``), for one
    channel (channel 0; for a convolution over all positions): its 5th, 25th,
    50th, 75th and 95th percentiles, mean and standard deviation — a histogram
    over training in seven numbers (Santurkar et al.'s Figure 2 compares such
    histograms for BN and noisy BN). The training-mode call draws noisy BN's
    noise and updates the moving averages; every variable is put back.

``landscape``
    The loss landscape along the gradient (Santurkar et al., section 3.1 and
    Figure 4), over all trainable variables ``w`` together; no argument. On the
    fixed probe batch of training images, ``g`` is the gradient of the
    training-mode loss ``L`` at ``w``; for each ``c`` of :data:`STEP_MULTIPLES`
    the weights ``w_c = w - c * learning_rate * g`` give the loss ``L(w_c)`` and
    the gradient ``g_c``. Records the loss range ``max - min`` of ``L`` over
    ``w`` itself and the four ``w_c`` (``L(w)`` is included, so a step that
    only lowers the loss still shows how far it fell), the gradient change
    ``max_c ||g_c - g||`` (the paper's gradient predictiveness: small when the
    gradient at ``w`` still predicts the gradient a step away), the effective
    smoothness ``max_c ||g_c - g|| / ||w_c - w||`` (the paper's "effective
    beta-smoothness", ``||w_c - w||`` measured on the float32 weights as
    assigned; NaN where the gradient is zero and no step is taken), and
    ``L(w)`` and ``||g||`` themselves.

``batch_stats_eval``
    Test accuracy with every batch-statistics normalization (BN, ghost BN,
    Batch Renormalization, noisy BN, BN on the input) normalizing with the
    statistics of the test batch instead of its moving averages: the network
    run in training mode, as the training step computes it, on the test images
    in consecutive batches of the run's batch size (128 in the book), each
    normalized over ghost groups of the run's ``ghost_size`` (the whole batch
    without one). No argument; dropout must be 0 (in training mode it would
    drop units). Against the usual test accuracy it separates what
    small-batch statistics cost the learned function from what the mismatch
    between training (batch statistics) and inference (moving averages) costs
    (chapter 08). The ghost size divides the batch (validated), so
    lcm(batch, ghost size) is the batch itself: the probe takes the run's
    ``N`` test images in the fixed shuffle of :func:`bnlib.data.fixed_sample`
    (never in their stored order, which may be sorted by class), uses the
    first ``floor(N / batch) * batch`` of them (of CIFAR-10's 10,000 with
    batches of 128: 9,984) and drops the rest. Every batch starts from the run's saved variables. Batch
    Renormalization is evaluated as it trains: the test group's statistics
    corrected by ``r``, ``d`` against the run's moving statistics, clipped as
    the run's ``renorm_rmax`` / ``renorm_dmax`` say (where the clipping does
    not bind, that is the moving-statistics normalization itself, and this
    accuracy differs from the usual one only by the images used and
    rounding); noisy BN adds its noise as in training, each batch the draw
    the next training step would make. Records ``test_acc_batch_stats``.

``ics`` and ``landscape`` compute the loss as the training step does (softmax
cross-entropy of the model in training mode: BN normalizes with the probe
batch's own statistics; dropout and the noise of noisy BN draw from the seed
state the next training step will start from, the same draw at every weight
the probe evaluates, since each evaluation starts from the saved variables).
"""

from __future__ import annotations

import numpy as np

from .data import SAMPLE_SEED, fixed_sample

# each kind and the layers it can take (a kind without layers takes no argument)
PROBE_KINDS = {"activation_input": ("conv1", "conv2", "dense1", "dense2", "dense3"),
               "ics": ("conv2", "dense1", "dense2", "dense3"),
               "norm_output": ("conv1", "conv2", "dense1"),
               "landscape": (), "batch_stats_eval": ()}
# why each kind without layers takes no argument
WHOLE_MODEL = {"landscape": "it measures over every trainable variable",
               "batch_stats_eval": "it evaluates the whole network"}
# the norm kinds that normalize with batch statistics in training
# (bnlib.config.NORM_KINDS); input_scaling "bn_input" is BN too
BATCH_STATISTICS_KINDS = ("batch", "ghost", "renorm", "noisy")
# the layers each model has a nonlinearity after
MODEL_LAYERS = {"article_cnn": ("conv1", "conv2", "dense1"),
                "sigmoid_mlp": ("dense1", "dense2", "dense3")}
# the layers of each model with a trainable layer before them (whose update
# can shift the layer's gradient)
ICS_LAYERS = {"article_cnn": ("conv2", "dense1"), "sigmoid_mlp": ("dense2", "dense3")}
# the layers of each model a normalization can follow
NORM_LAYERS = {"article_cnn": ("conv1", "conv2", "dense1"),
               "sigmoid_mlp": ("dense1", "dense2", "dense3")}
KIND_LAYERS = {"activation_input": MODEL_LAYERS, "ics": ICS_LAYERS,
               "norm_output": NORM_LAYERS}
PERCENTILES = (15, 50, 85)
# norm_output: a histogram of one channel in quantiles
NORM_OUTPUT_PERCENTILES = (5, 25, 50, 75, 95)
PROBE_BATCH = 1000  # test images (all of a smaller test subset)
# ics, landscape and norm_output: training images of the protocol's training
# subset, fixed for the whole run (the book's minibatch size)
TRAIN_PROBE_BATCH = 128
# Which images: bnlib.data.fixed_sample, a fixed shuffle of the split, never
# its stored order (an image-folder copy such as the offline JPEG one stores
# each split sorted by class: its first 128 images are all airplanes)
PROBE_SAMPLE = (f"a fixed shuffle of each split (numpy default_rng({SAMPLE_SEED})"
                f".permutation), the same for every run")
STEP_MULTIPLES = (0.5, 1.0, 2.0, 4.0)  # landscape: steps of c x learning rate


def on_probe_sample(result: dict) -> bool:
    """The run's probes measured on today's sample (:data:`PROBE_SAMPLE`)."""
    return result.get("probe_sample") == PROBE_SAMPLE


def probe_rows(result: dict, probe: str) -> np.ndarray:
    """A finished or running result's rows of one probe (float64, the step
    first); refuses a result whose probes measured other images."""
    if not on_probe_sample(result):
        raise ValueError(
            f"{result['name']} seed {result['seed']}: its probes measured "
            f"{result.get('probe_sample') or 'the first images of the split in its stored order (before bnlib recorded its probe sample)'}"
            f", not {PROBE_SAMPLE}. Retrain it (delete its result file) to use "
            f"its probes.")
    return np.array(result["probes"][probe], dtype=float)


def check_probe(config, spec: str) -> None:
    """Raise :class:`bnlib.config.ConfigError` unless ``spec`` names a probe."""
    from .config import ConfigError

    kind, colon, argument = str(spec).partition(":")
    if kind not in PROBE_KINDS:
        forms = ", ".join(f"{k}:<{'|'.join(v)}>" if v else k
                          for k, v in PROBE_KINDS.items())
        raise ConfigError(f"{config.name}: unknown probe {spec!r}; kinds: {forms}")
    if not PROBE_KINDS[kind]:
        if colon:
            raise ConfigError(f"{config.name}: probe {kind} takes no argument "
                              f"({WHOLE_MODEL[kind]}); write {kind!r}, got {spec!r}")
        if kind == "batch_stats_eval":
            _check_batch_stats_eval(config)
        return
    layers = KIND_LAYERS[kind].get(config.model, PROBE_KINDS[kind])
    if argument not in layers:
        raise ConfigError(f"{config.name}: probe {kind} of model {config.model} "
                          f"takes one of {', '.join(layers)}, got {argument!r}")
    if kind == "norm_output":
        norm = config.norm_conv if argument.startswith("conv") else config.norm_dense
        if norm == "none":
            raise ConfigError(
                f"{config.name}: probe norm_output:{argument} reads the "
                f"normalization after {argument}, and this run has none there "
                f"(norm_{'conv' if argument.startswith('conv') else 'dense'} "
                f"'none'); drop the probe or add a normalization")


def uses_batch_statistics(config) -> bool:
    """Some layer of the run normalizes with batch statistics in training."""
    return (config.norm_conv in BATCH_STATISTICS_KINDS
            or config.norm_dense in BATCH_STATISTICS_KINDS
            or config.input_scaling == "bn_input")


def _check_batch_stats_eval(config) -> None:
    """``batch_stats_eval`` needs a batch-statistics normalization and no
    dropout (see the module doc)."""
    from .config import ConfigError

    if not uses_batch_statistics(config):
        raise ConfigError(
            f"{config.name}: probe batch_stats_eval compares batch statistics with "
            f"moving averages, and this run has no normalization with batch "
            f"statistics (norm_conv {config.norm_conv!r}, norm_dense "
            f"{config.norm_dense!r}); use norm kind "
            f"{', '.join(BATCH_STATISTICS_KINDS)} on a layer, or drop the probe",
            "probes")
    if config.dropout:
        raise ConfigError(
            f"{config.name}: probe batch_stats_eval runs the network in training "
            f"mode, where dropout would drop units; it needs dropout 0, got "
            f"dropout {config.dropout:g} (set dropout 0 or drop the probe)",
            "dropout")


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
        self._images = tf.constant(fixed_sample(images, size=PROBE_BATCH))

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


class NormOutputProbe:
    """Quantiles, mean and standard deviation of one channel of a
    normalization layer's output in training mode (see the module doc)."""

    def __init__(self, model, layer_name: str, images: np.ndarray):
        import keras
        import tensorflow as tf

        self.columns = (["step"] + [f"unit_p{p}" for p in NORM_OUTPUT_PERCENTILES]
                        + ["unit_mean", "unit_std"])
        source = keras.Model(model.inputs, model.get_layer(f"bn_{layer_name}").output)
        self._images = tf.constant(fixed_sample(images, size=TRAIN_PROBE_BATCH))
        variables = model.variables

        @tf.function(autograph=False)
        def values():
            saved = save_variables(variables)  # moving averages, seed states
            x = tf.cast(source(tf.cast(self._images, tf.float32), training=True),
                        tf.float32)
            channel = tf.reshape(x[..., 0], [-1])
            assign_variables(variables, saved)
            return channel

        self._values = values

    def __call__(self) -> list[float]:
        channel = self._values().numpy()
        return [float(v) for v in (*np.percentile(channel, NORM_OUTPUT_PERCENTILES),
                                   channel.mean(), channel.std())]


def training_loss(model, images, labels):
    """The mean softmax cross-entropy of the model in training mode, as
    :class:`bnlib.training.Trainer`'s step computes it (uint8 images)."""
    import tensorflow as tf

    logits = tf.cast(model(tf.cast(images, tf.float32), training=True), tf.float32)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))


def loss_and_gradients(model, images, labels, variables):
    """The training-mode loss and its gradients with respect to ``variables``."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = training_loss(model, images, labels)
    return loss, tape.gradient(loss, variables)


def training_batch(images: np.ndarray, labels: np.ndarray):
    """The probe batch: :data:`TRAIN_PROBE_BATCH` training images and their
    labels from :func:`bnlib.data.fixed_sample`, as constants (fixed for the
    whole run)."""
    import tensorflow as tf

    images, labels = fixed_sample(images, labels, TRAIN_PROBE_BATCH)
    return tf.constant(images), tf.constant(labels.astype(np.int32))


def save_variables(variables) -> list:
    """The values of ``variables`` now (in a ``tf.function``: read before any
    later assignment, which TensorFlow orders after the read)."""
    import tensorflow as tf

    return [tf.identity(variable.value) for variable in variables]


def assign_variables(variables, values) -> None:
    """Give each variable its value (saved, or moved)."""
    for variable, value in zip(variables, values):
        variable.assign(value)


def _norm(tensors):
    """The l2 norm of several tensors taken as one vector, as float32.

    The squares are summed in float64: in float32, two identical runs in one
    process were seen to disagree in the last bit of this sum (TensorFlow's
    ``enable_op_determinism`` did not change that), so a resumed run could not
    reproduce an uninterrupted one exactly; in float64 the wobble stays far
    below float32's resolution."""
    import tensorflow as tf

    squares = [tf.reduce_sum(tf.square(tf.cast(t, tf.float64))) for t in tensors]
    return tf.cast(tf.sqrt(tf.add_n(squares)), tf.float32)


class InternalCovariateShiftProbe:
    """``[||G - G'||, cos(G, G'), ||G||]`` of one layer's kernel gradient when
    the earlier layers take one plain gradient step (see the module doc)."""

    def __init__(self, model, layer_name: str, images: np.ndarray,
                 labels: np.ndarray, learning_rate: float):
        import tensorflow as tf

        self.columns = ["step", "ics_l2", "ics_cosine", "grad_norm"]
        layer = model.get_layer(layer_name)
        position = model.layers.index(layer)
        earlier = [variable for before in model.layers[:position]
                   for variable in before.trainable_variables]
        if not earlier:
            raise ValueError(f"probe ics:{layer_name}: no trainable layer comes "
                             f"before {layer_name}, so nothing can shift its "
                             f"gradient; probe a later layer")
        kernel = layer.kernel
        variables = model.variables
        images, labels = training_batch(images, labels)
        rate = tf.constant(learning_rate, tf.float32)

        @tf.function(autograph=False)
        def shift():
            saved = save_variables(variables)
            start = save_variables(earlier)
            _, (gradient, *steps) = loss_and_gradients(model, images, labels,
                                                       [kernel] + earlier)
            assign_variables(variables, saved)  # moving averages, seed states
            assign_variables(earlier, [w - rate * step
                                       for w, step in zip(start, steps)])
            _, (shifted,) = loss_and_gradients(model, images, labels, [kernel])
            assign_variables(variables, saved)
            norm, shifted_norm = _norm([gradient]), _norm([shifted])
            cosine = tf.reduce_sum(gradient * shifted) / (norm * shifted_norm)
            return _norm([gradient - shifted]), cosine, norm

        self._shift = shift

    def __call__(self) -> list[float]:
        return [float(value) for value in self._shift()]


class LossLandscapeProbe:
    """``[loss range, gradient change, effective smoothness, loss, ||g||]``
    along the gradient of every trainable variable (see the module doc)."""

    def __init__(self, model, images: np.ndarray, labels: np.ndarray,
                 learning_rate: float):
        import tensorflow as tf

        self.columns = ["step", "loss_range", "grad_change", "effective_smoothness",
                        "loss", "grad_norm"]
        trainable = model.trainable_variables
        variables = model.variables
        images, labels = training_batch(images, labels)
        rate = tf.constant(learning_rate, tf.float32)

        @tf.function(autograph=False)
        def along_gradient():
            saved = save_variables(variables)
            start = save_variables(trainable)
            loss, gradient = loss_and_gradients(model, images, labels, trainable)
            losses, changes, lengths = [loss], [], []
            for multiple in STEP_MULTIPLES:
                assign_variables(variables, saved)  # moving averages, seed states
                moved = [w - multiple * rate * g for w, g in zip(start, gradient)]
                assign_variables(trainable, moved)
                lengths.append(_norm([w - w0 for w, w0 in zip(moved, start)]))
                loss_c, gradient_c = loss_and_gradients(model, images, labels,
                                                        trainable)
                losses.append(loss_c)
                changes.append(_norm([g_c - g for g_c, g in zip(gradient_c,
                                                                gradient)]))
            assign_variables(variables, saved)
            return tf.stack(losses), tf.stack(changes), tf.stack(lengths), \
                _norm(gradient)

        self._along_gradient = along_gradient

    def __call__(self) -> list[float]:
        losses, changes, lengths, grad_norm = (
            np.asarray(value, dtype=np.float64) for value in self._along_gradient())
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothness = np.where(lengths > 0, changes / lengths, np.nan)
        return [float(losses.max() - losses.min()), float(changes.max()),
                float(np.max(smoothness)), float(losses[0]), float(grad_norm)]


class BatchStatisticsEvalProbe:
    """``[test accuracy]`` of the network in training mode on test batches:
    every normalization with its test batch's (or ghost group's) statistics
    instead of its moving averages (see the module doc)."""

    def __init__(self, model, images: np.ndarray, labels: np.ndarray,
                 batch_size: int):
        import tensorflow as tf

        self.columns = ["step", "test_acc_batch_stats"]
        self.batch_size = batch_size
        # the first whole batches of the test images
        self.images_used = len(images) // batch_size * batch_size
        if self.images_used == 0:
            raise ValueError(f"probe batch_stats_eval needs at least one batch of "
                             f"{batch_size} test images, got {len(images)}; use "
                             f"more test images (test_size) or a smaller batch")
        images, labels = fixed_sample(images, labels)  # every test image, shuffled
        self._images = images[:self.images_used]
        self._labels = labels[:self.images_used].astype(np.int32)
        variables = model.variables

        @tf.function(autograph=False)
        def predict(batch):
            saved = save_variables(variables)  # moving averages, seed states
            logits = model(tf.cast(batch, tf.float32), training=True)
            predicted = tf.argmax(logits, axis=1, output_type=tf.int32)
            assign_variables(variables, saved)
            return predicted

        self._predict = predict

    def __call__(self) -> list[float]:
        correct = 0
        for start in range(0, self.images_used, self.batch_size):
            stop = start + self.batch_size
            predicted = self._predict(self._images[start:stop]).numpy()
            correct += int((predicted == self._labels[start:stop]).sum())
        return [correct / self.images_used]


def make_probes(config, model, x_test: np.ndarray, x_train: np.ndarray | None = None,
                y_train: np.ndarray | None = None, y_test: np.ndarray | None = None,
                batch_size: int | None = None) -> dict:
    """``{spec: probe}`` for the run's probes (empty when it has none).

    ``x_test`` feeds ``activation_input``; ``ics``, ``landscape`` and
    ``norm_output`` take their fixed batch from the protocol's training subset ``x_train`` / ``y_train``
    and their step from ``config.learning_rate``; ``batch_stats_eval`` takes
    the test subset ``x_test`` / ``y_test`` in batches of the protocol's
    ``batch_size``.
    """
    probes = {}
    for spec in config.probes:
        kind, _, argument = spec.partition(":")
        if kind == "activation_input":
            probes[spec] = ActivationInputProbe(model, argument, x_test)
            continue
        if kind == "batch_stats_eval":
            if y_test is None or batch_size is None:
                raise ValueError(f"{config.name}: probe {spec} evaluates test "
                                 f"batches; pass y_test and batch_size to "
                                 f"make_probes")
            probes[spec] = BatchStatisticsEvalProbe(model, x_test, y_test,
                                                    batch_size)
            continue
        if x_train is None or y_train is None:
            raise ValueError(f"{config.name}: probe {spec} measures on training "
                             f"images; pass x_train and y_train to make_probes")
        if kind == "norm_output":
            probes[spec] = NormOutputProbe(model, argument, x_train)
        elif kind == "ics":
            probes[spec] = InternalCovariateShiftProbe(
                model, argument, x_train, y_train, config.learning_rate)
        elif kind == "landscape":
            probes[spec] = LossLandscapeProbe(model, x_train, y_train,
                                              config.learning_rate)
        else:
            raise NotImplementedError(f"no probe for kind {kind!r} "
                                      f"(bnlib.probes.check_probe accepts it)")
    return probes
