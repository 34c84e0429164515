"""Chapter 07's machinery: Santurkar et al. (2018) as probes and a grid.

The internal-covariate-shift and loss-landscape probes, the noise of noisy BN
without the BN (norm kind ``noise``), and the ``santurkar`` grid. Synthetic
data, tiny protocols: plumbing and arithmetic, not results.
"""

import numpy as np
import pytest

from bnlib import config as C
from bnlib import plots, santurkar
from bnlib import runner as R
from bnlib import training as T
from bnlib.config import RunConfig
from bnlib.data import synthetic_cifar10
from helpers import assert_same_values, model_values, train_in_memory
from bnlib.probes import (PROBE_SAMPLE, STEP_MULTIPLES, TRAIN_PROBE_BATCH,
                          InternalCovariateShiftProbe, LossLandscapeProbe)
from bnlib.data import fixed_sample

TINY = C.get_profile("smoke", epochs=2, steps_per_epoch=3, eval_every=2,
                     train_size=640, test_size=200)
GRID = C.get_grid("santurkar")
PROBES = ("ics:conv2", "ics:dense1", "landscape")
NORM_PROBES = ("norm_output:conv1", "norm_output:conv2", "norm_output:dense1")
NO_PROBES = dict(probes=(), early_probes=(), early_probe_every=0, early_probe_epochs=0)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_cifar10(num_train=640, num_test=200)


# ----------------------------------------------------------------- the grid
def test_the_santurkar_grid_validates_and_lists_four_arms_and_two_at_a_high_rate():
    assert (GRID.chapter, GRID.profile) == ("07", "two-seeds")
    protocol = C.get_profile(GRID.profile)  # the issue: 15 epochs, at least 2 seeds
    assert (protocol.epochs, protocol.seeds) == (C.get_profile("book").epochs, 2)
    assert [r.name for r in GRID.runs] == ["sgd-none", "sgd-bn", "sgd-noisy",
                                           "sgd-noise", "sgd-none-lr0.1",
                                           "sgd-noisy-lr0.1"]
    assert [(r.norm_conv, r.norm_dense) for r in GRID.runs] == [
        ("none", "none"), ("batch", "batch"), ("noisy", "noisy"), ("noise", "noise"),
        ("none", "none"), ("noisy", "noisy")]
    rates = [C.SANTURKAR_LEARNING_RATE] * 4 + [C.SANTURKAR_HIGH_RATE] * 2
    assert C.SANTURKAR_HIGH_RATE == C.MAP_BN_HIGHEST_RATE > C.SANTURKAR_LEARNING_RATE
    for run, rate in zip(GRID.runs, rates):
        C.validate_config(run, C.get_profile(GRID.profile))
        assert (run.optimizer, run.momentum, run.learning_rate) == ("sgd", 0.9, rate)
        assert (run.input_scaling, run.dropout) == ("standardize", 0.0)
    assert [r.probes for r in GRID.runs] == [PROBES, PROBES + NORM_PROBES, NORM_PROBES,
                                             NORM_PROBES, (), ()]
    assert GRID.runs[3].label.startswith("BN noise only conv+dense, standardized")
    assert GRID.results_dir(protocol).as_posix() == "results/santurkar"
    assert R.chapter_results_dir("santurkar", C.get_profile("book")).as_posix() == \
        "results/santurkar"  # what the chapter reads under the book profile


@pytest.mark.parametrize("changes, message", [
    ({"probes": ("ics:conv1",)}, "probe ics of model article_cnn takes one of "
                                 "conv2, dense1, got 'conv1'"),
    ({"probes": ("ics",)}, "probe ics of model article_cnn takes one of"),
    ({"probes": ("landscape:all",)}, "probe landscape takes no argument"),
    ({"probes": ("curvature",)}, "kinds: activation_input:<.*>, ics:<.*>, landscape"),
    ({"model": "sigmoid_mlp", "probes": ("ics:dense1",)},
     "model sigmoid_mlp takes one of dense2, dense3"),
    ({"norm_conv": "noise", "bn_position": "before_relu"},
     "bn_position 'before_relu' drops the layer's bias"),
    ({"norm_dense": "batch", "probes": ("norm_output:conv1",)},
     "probe norm_output:conv1 reads the normalization after conv1, and this run "
     "has none there"),
    ({"norm_conv": "batch", "probes": ("norm_output:dense2",)},
     "probe norm_output of model article_cnn takes one of conv1, conv2, dense1"),
])
def test_contradictory_probes_and_noise_are_refused(changes, message):
    with pytest.raises(C.ConfigError, match=message) as refused:
        RunConfig("x").replace(**changes)
    assert refused.value.field in ("probes", "bn_position")


def test_the_new_probes_and_norm_kind_are_accepted():
    RunConfig("x", probes=PROBES)
    RunConfig("x", model="sigmoid_mlp", probes=("ics:dense2", "ics:dense3",
                                               "landscape"))
    assert RunConfig("x", norm_dense="noise").label == "BN noise only dense"
    assert RunConfig("x", norm_conv="noise", norm_dense="batch").label == (
        "BN noise only conv / BN dense")


# ----------------------------------------------------------------- trajectory


@pytest.mark.parametrize("plain", [
    GRID.run("sgd-bn").replace(**NO_PROBES),
    # noisy BN's noise and dropout's mask come from seed states the probes
    # advance while they run, and must put back
    GRID.run("sgd-noisy").replace(name="noisy-d2", dropout=0.2, probes=()),
], ids=lambda c: c.name)
def test_the_probes_do_not_change_the_trajectory(synthetic, plain):
    """Same run with and without the probes: bit-identical curves and final
    variables (weights, moving averages, seed states)."""
    curve, rows, _, values = train_in_memory(plain, TINY, synthetic)
    probed = plain.replace(probes=PROBES + NORM_PROBES)
    probed_curve, probed_rows, trainer, probed_values = train_in_memory(
        probed, TINY, synthetic)
    assert probed_curve == curve and rows == {}
    assert_same_values(probed_values, values)
    steps = [point[0] for point in curve]
    assert steps == [2, 4, 6]  # mid-epoch (2, 4) and at the end of the run
    for name in PROBES + NORM_PROBES:
        table = np.array(probed_rows[name])
        assert table.shape == (len(steps), len(trainer.probes[name].columns))
        assert table[:, 0].tolist() == steps
        assert np.isfinite(table).all()
    ics = np.array(probed_rows["ics:dense1"])[:, 1:]
    assert (ics[:, 0] >= 0).all() and (np.abs(ics[:, 1]) <= 1 + 1e-6).all()
    assert (np.array(probed_rows["landscape"])[:, 1:] >= 0).all()
    for name in NORM_PROBES:  # quantiles in order, a spread, a histogram's worth
        table = np.array(probed_rows[name])
        assert (np.diff(table[:, 1:6], axis=1) >= 0).all() and (table[:, 7] > 0).all()


@pytest.mark.parametrize("changes, field, message", [
    ({"early_probes": ("landscape",), "early_probe_every": 2, "early_probe_epochs": 1},
     "early_probes", r"early_probes \['landscape'\] are not among the run's probes"),
    ({"probes": PROBES, "early_probes": ("landscape",), "early_probe_epochs": 1},
     "early_probe_every", "need early_probe_every at least 1"),
    ({"probes": PROBES, "early_probes": ("landscape",), "early_probe_every": 2},
     "early_probe_epochs", "need early_probe_epochs at least 1"),
    ({"probes": PROBES, "early_probe_every": 2}, "early_probe_every",
     "early_probe_every is 2 but early_probes is empty"),
    ({"probes": PROBES, "early_probes": ("landscape",), "early_probe_every": 2.5,
      "early_probe_epochs": 1}, "early_probe_every", "must be a whole number of steps"),
    ({"probes": PROBES, "early_probes": ["landscape"]}, "early_probes",
     "must be a tuple of names"),
])
def test_contradictory_early_probes_are_refused(changes, field, message):
    with pytest.raises(C.ConfigError, match=message) as refused:
        RunConfig("x").replace(**changes)
    assert refused.value.field == field


def test_the_early_landscape_schedule_of_the_grid():
    """No BN and BN also measure the landscape ten times an epoch over the
    epochs the chapter compares; the other arms have no landscape probe."""
    protocol = C.get_profile(GRID.profile)
    assert protocol.steps_per_epoch == 10 * C.SANTURKAR_EARLY_PROBE_EVERY
    assert santurkar.EARLY_EPOCHS == C.SANTURKAR_EARLY_EPOCHS
    for run in GRID.runs:
        paper = run.name in ("sgd-none", "sgd-bn")
        assert run.early_probes == (("landscape",) if paper else ())
        assert (run.early_probe_every, run.early_probe_epochs) == (
            (C.SANTURKAR_EARLY_PROBE_EVERY, C.SANTURKAR_EARLY_EPOCHS) if paper
            else (0, 0))


def test_early_probes_add_rows_between_evaluations_and_change_nothing(synthetic):
    """Every step in the first epoch (steps 1-3) the landscape is measured too,
    between the evaluations (2, 4, 6); the curve and the final variables stay
    bit-identical to the unprobed run, the ICS series keeps the evaluations."""
    plain = GRID.run("sgd-bn").replace(**NO_PROBES)
    curve, _, _, values = train_in_memory(plain, TINY, synthetic)
    early = GRID.run("sgd-bn").replace(early_probe_every=1, early_probe_epochs=1)
    early_curve, rows, _, early_values = train_in_memory(early, TINY, synthetic)
    assert early_curve == curve
    assert_same_values(early_values, values)
    assert [row[0] for row in rows["landscape"]] == [1, 2, 3, 4, 6]
    assert [row[0] for row in rows["ics:dense1"]] == [2, 4, 6]
    assert [row[0] for row in rows["norm_output:conv1"]] == [2, 4, 6]


def test_an_interrupted_run_resumes_its_early_probes_exactly(tmp_path, synthetic):
    """Interrupted in epoch 2 and resumed from the epoch-1 checkpoint, the early
    rows (every step of epochs 1-2) are those of an uninterrupted run."""
    config = GRID.run("sgd-none").replace(early_probe_every=1, early_probe_epochs=2)
    whole = R.run_one(config, 0, TINY, synthetic, results_dir=tmp_path / "whole")

    def interrupt_in_epoch_two(step, total, acc):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        R.run_one(config, 0, TINY, synthetic, results_dir=tmp_path / "cut",
                  progress=interrupt_in_epoch_two)
    resumed = R.run_one(config, 0, TINY, synthetic, results_dir=tmp_path / "cut")
    assert resumed["resumed_at_epoch"] == 1
    assert [row[0] for row in whole["probes"]["landscape"]] == [1, 2, 3, 4, 5, 6]
    assert resumed["probes"] == whole["probes"]
    assert resumed["curve"] == whole["curve"]


def test_the_runner_records_the_probe_series(tmp_path, synthetic):
    config = GRID.run("sgd-none")
    assert config.probes == PROBES
    result = R.run_one(config, 0, TINY, synthetic, results_dir=tmp_path)
    assert result["status"] == "complete"
    assert result["probe_columns"] == {
        "ics:conv2": ["step", "ics_l2", "ics_cosine", "grad_norm"],
        "ics:dense1": ["step", "ics_l2", "ics_cosine", "grad_norm"],
        "landscape": ["step", "loss_range", "grad_change", "effective_smoothness",
                      "loss", "grad_norm"]}
    for name in PROBES:
        assert [row[0] for row in result["probes"][name]] == [
            point[0] for point in result["curve"]]
    saved = R.load_result(R.result_path(tmp_path, config, 0))
    assert saved["probes"] == result["probes"]


# ----------------------------------------------------------------- ICS
@pytest.mark.parametrize("name, layer", [("sgd-none", "conv2"),
                                         ("sgd-bn", "dense1")])
def test_ics_vanishes_with_the_step_and_grows_with_it(synthetic, name, layer):
    """A step too small to move the earlier layers leaves the gradient as it
    was (||G - G'|| ~ 0, cosine ~ 1); a large one shifts it."""
    trainer, _ = T.prepare(GRID.run(name), 0, TINY, synthetic)
    model = trainer.model
    x_train, y_train, _, _ = T.subset(synthetic, TINY)
    before = model_values(model)
    tiny = InternalCovariateShiftProbe(model, layer, x_train, y_train, 1e-12)()
    large = InternalCovariateShiftProbe(model, layer, x_train, y_train, 0.1)()
    assert_same_values(model_values(model), before)
    (l2, cosine, norm), (l2_large, cosine_large, norm_large) = tiny, large
    assert norm > 0 and norm_large == norm  # G is taken at the same weights
    assert l2 <= 1e-5 * norm and cosine == pytest.approx(1.0, abs=1e-6)
    assert l2_large > 1e-3 * norm and cosine_large < 1 - 1e-6


def test_an_ics_probe_needs_an_earlier_trainable_layer(synthetic):
    trainer, _ = T.prepare(GRID.run("sgd-none"), 0, TINY, synthetic)
    with pytest.raises(ValueError, match="no trainable layer comes before conv1"):
        InternalCovariateShiftProbe(trainer.model, "conv1", synthetic.x_train,
                                    synthetic.y_train, 0.01)


# ----------------------------------------------------------------- landscape
def test_the_landscape_of_a_linear_softmax_worked_out_by_hand(synthetic):
    """On images/255 -> dense 10 the loss and gradient have a closed form:
    the probe's loss range, gradient change and effective smoothness match
    NumPy's in float64."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    rate = 0.05
    row = LossLandscapeProbe(model, synthetic.x_train, synthetic.y_train, rate)()

    images, labels = fixed_sample(synthetic.x_train, synthetic.y_train, TRAIN_PROBE_BATCH)
    images = images.reshape(TRAIN_PROBE_BATCH, -1).astype(np.float64) / 255
    onehot = np.eye(10)[labels]
    kernel, bias = (v.numpy().astype(np.float64) for v in model.trainable_variables)

    def loss_and_gradient(kernel, bias):
        logits = images @ kernel + bias
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        p = np.exp(log_p)
        loss = -np.mean(np.sum(onehot * log_p, axis=1))
        error = (p - onehot) / len(images)
        return loss, (images.T @ error, error.sum(axis=0))

    loss, gradient = loss_and_gradient(kernel, bias)
    losses, changes, ratios = [loss], [], []
    for c in STEP_MULTIPLES:
        moved = [w - c * rate * g for w, g in zip((kernel, bias), gradient)]
        loss_c, gradient_c = loss_and_gradient(*moved)
        change = np.sqrt(sum(np.sum((a - b) ** 2)
                             for a, b in zip(gradient_c, gradient)))
        length = np.sqrt(sum(np.sum((a - b) ** 2)
                             for a, b in zip(moved, (kernel, bias))))
        losses.append(loss_c)
        changes.append(change)
        ratios.append(change / length)
    grad_norm = np.sqrt(sum(np.sum(g ** 2) for g in gradient))
    expected = [max(losses) - min(losses), max(changes), max(ratios), loss, grad_norm]
    np.testing.assert_allclose(row, expected, rtol=1e-4)
    assert max(losses) > min(losses) and max(changes) > 0  # a real step was taken


# ----------------------------------------------------------------- noise only
def test_noise_only_is_the_identity_at_inference_and_the_papers_noise_in_training():
    """In training: per step and channel mu ~ U(-0.5, 0.5), sigma ~ U(1, 1.25),
    per example and position m ~ U(mu -+ 0.1), s ~ N(sigma, 0.1**2), on the input
    as it comes (not normalized); at inference: the input itself."""
    import tensorflow as tf

    from bnlib.layers import NoiseOnly

    layer = NoiseOnly(seed=3)
    data = tf.constant(np.random.default_rng(0).normal(3, 2, (64, 8, 8, 16)),
                       tf.float32)
    np.testing.assert_array_equal(layer(data, training=False).numpy(), data.numpy())
    assert layer.trainable_variables == []
    x = np.concatenate([np.zeros((2000, 4, 4, 16)), np.ones((2000, 4, 4, 16))])
    out = layer(tf.constant(x, tf.float32), training=True).numpy()
    m = out[:2000].reshape(-1, 16)              # zeros in: s * 0 + m
    scaled = out[2000:].reshape(-1, 16)         # ones in: s + m
    mu = m.mean(axis=0)
    assert np.all(np.abs(mu) <= 0.5 + 0.01) and mu.std() > 0.1
    assert np.all(np.abs(m - mu).max(axis=0) <= 0.1 + 0.01)
    sigma = scaled.mean(axis=0) - mu
    assert np.all((sigma > 1 - 0.02) & (sigma < 1.25 + 0.02)) and sigma.std() > 0.02
    np.testing.assert_allclose((scaled - m.mean(axis=0)).std(axis=0),
                               np.sqrt(0.1 ** 2 + 0.2 ** 2 / 12), rtol=0.1)
    # not normalized: a shifted input comes out shifted by about sigma x shift
    shifted = layer(tf.constant(x[2000:] + 10, tf.float32), training=True).numpy()
    assert np.all(shifted.reshape(-1, 16).mean(axis=0) > 10)


def test_a_noise_only_network_is_the_plain_network_at_inference(synthetic):
    """The ``noise`` layers add no weights and draw nothing at build: the same
    seed gives the no-norm network's weights, and its inference outputs; each
    layer has its own noise stream, seeded as noisy BN's."""
    from bnlib.layers import NoiseOnly, NoisyBatchNorm

    plain = T.build_run_model(GRID.run("sgd-none"), 4,
                              input_statistics={"mean": [0.0] * 3,
                                                "std": [1.0] * 3})
    noise = T.build_run_model(GRID.run("sgd-noise"), 4,
                              input_statistics={"mean": [0.0] * 3,
                                                "std": [1.0] * 3})
    noisy = T.build_run_model(GRID.run("sgd-noisy"), 4,
                              input_statistics={"mean": [0.0] * 3,
                                                "std": [1.0] * 3})
    assert noise.count_params() == plain.count_params()
    images = synthetic.x_test[:32].astype(np.float32)
    np.testing.assert_array_equal(noise(images, training=False).numpy(),
                                  plain(images, training=False).numpy())
    assert not np.array_equal(noise(images, training=True).numpy(),
                              plain(images, training=True).numpy())
    layers = [layer for layer in noise.layers if isinstance(layer, NoiseOnly)]
    twins = {layer.name: layer.seed for layer in noisy.layers
             if isinstance(layer, NoisyBatchNorm)}
    assert [layer.name for layer in layers] == ["bn_conv1", "bn_conv2", "bn_dense1"]
    assert {layer.name: layer.seed for layer in layers} == twins
    assert len(set(twins.values())) == 3


def test_a_noise_only_run_trains(tmp_path, synthetic):
    result = R.run_one(GRID.run("sgd-noise"), 0, TINY, synthetic,
                       results_dir=tmp_path)
    assert result["status"] == "complete"
    assert result["label"].startswith("BN noise only conv+dense")
    assert np.isfinite([point[2] for point in result["curve"]]).all()


# ----------------------------------------------------------------- chapter 07's reading
def _fake_arm(name, seed, accuracy, ics_l2=None, landscape=None, channel_means=None):
    """A finished result of one arm: 10 evaluations of 195 steps; the probes,
    where given, constant over training (the channel means of the
    normalizations' outputs cycle through ``channel_means``)."""
    curve = [[195 * i, i / 2, 1.0, 0.5, accuracy] for i in range(1, 11)]
    result = {"name": name, "seed": seed, "status": "complete", "curve": curve,
              "data": {"kind": "folder"}, "probes": {}, "probe_columns": {},
              "probe_sample": PROBE_SAMPLE}
    if ics_l2 is not None:
        for probe in santurkar.ICS_PROBES:
            result["probe_columns"][probe] = ["step", "ics_l2", "ics_cosine", "grad_norm"]
            result["probes"][probe] = [[p[0], ics_l2, 0.9, 2.0] for p in curve]
    if landscape is not None:
        result["probe_columns"]["landscape"] = [
            "step", "loss_range", "grad_change", "effective_smoothness", "loss", "grad_norm"]
        result["probes"]["landscape"] = [[p[0], landscape, 2 * landscape, 3 * landscape,
                                          2.0, 1.0] for p in curve]
    if channel_means is not None:
        for place in santurkar.NORM_PLACES:
            probe = santurkar.norm_output_probe(place)
            result["probe_columns"][probe] = [
                "step", "unit_p5", "unit_p25", "unit_p50", "unit_p75", "unit_p95",
                "unit_mean", "unit_std"]
            result["probes"][probe] = [
                [p[0], m - 2, m - 1, m, m + 1, m + 2, m, 1.0]
                for p, m in zip(curve, channel_means * len(curve))]
    return result


def _hand_made_results(high_rate: bool = True) -> list[dict]:
    """Two seeds of every arm: BN ahead of no BN, noisy BN level with BN; BN
    shifts its gradients more; BN's landscape three times smoother."""
    results = []
    for seed in range(2):
        results += [_fake_arm("sgd-none", seed, 0.60 + seed / 100, 0.2 + 0.04 * seed, 1.0),
                    _fake_arm("sgd-bn", seed, 0.70 + seed / 100, 0.4 + 0.04 * seed, 0.3,
                              channel_means=[0.0, 0.1]),
                    _fake_arm("sgd-noisy", seed, 0.695 + seed / 50,
                              channel_means=[-0.4, 0.4 + seed / 10]),
                    _fake_arm("sgd-noise", seed, 0.5, channel_means=[0.0])]
        if high_rate:
            results += [_fake_arm(santurkar.NONE_HIGH, seed, 0.40 + seed / 100),
                        _fake_arm(santurkar.BN_HIGH, seed, 0.69 + seed / 100),
                        _fake_arm(santurkar.NOISY_HIGH, seed, 0.68 + seed / 50)]
    return results


def _with_accuracy(results, name, accuracy):
    return [dict(r, curve=[p[:4] + [accuracy + r["seed"] / 100] for p in r["curve"]])
            if r["name"] == name else r for r in results]


def test_chapter_07_verdicts_from_hand_made_results():
    results = _hand_made_results()
    found = santurkar.verdicts(results)
    assert found["noisy_vs_bn"]["verdict"] == plots.WITHIN_SPREAD
    assert found["noisy_vs_none"]["verdict"] == plots.CLEAR
    assert found["high_bn_vs_none"]["verdict"] == plots.CLEAR
    assert found["high_noisy_vs_bn"]["verdict"] == plots.WITHIN_SPREAD
    # BN shifts more here (0.2 vs 0.1 of the gradient): "other way round"
    assert found["ics_dense1"]["verdict"] == plots.CLEAR_OTHER_WAY
    assert found["ics_dense1"]["bn"] == pytest.approx([0.2, 0.22])
    for column in santurkar.LANDSCAPE_COLUMNS:
        for window in santurkar.LANDSCAPE_WINDOWS:
            assert found[f"{column}:{window}"]["verdict"] == plots.CLEAR
    text = santurkar.findings_markdown(results)
    assert "averaged over training: no BN 0.110, BN 0.210" in text  # l2 / norm
    assert "loss range along the gradient: no BN 1.00, BN 0.300" in text
    assert "- **Landscape, epochs 1–3.**" in text
    assert "- **Landscape, after epoch 3.**" in text
    assert santurkar.findings_markdown(results[:2]).startswith("**PRELIMINARY")
    assert "BN against no BN: every seed of BN above every seed of no BN." in text
    assert ("- **Noisy BN at learning rate 0.1.** Test accuracy: noisy BN 0.690, BN 0.695 "
            "(chapter 06's follow-up), no BN 0.405.") in text
    assert "no BN not trained yet" in santurkar.findings_markdown(
        _hand_made_results(high_rate=False))
    assert ("‖G − G′‖ / ‖G‖ averaged over training: no BN 0.110, BN 0.210 (every seed "
            "of no BN below every seed of BN)") in text
    # the channel mean alternates: it changes by 0.1 at every evaluation with BN,
    # by 0.8 and 0.9 with noisy BN
    assert found["moves_conv2"]["verdict"] == plots.CLEAR
    assert found["moves_conv2"]["bn"] == pytest.approx([0.1, 0.1])
    assert found["moves_conv2"]["noisy"] == pytest.approx([0.8, 0.9])
    assert ("conv1: BN 0.100, noisy BN 0.850 (every seed of noisy BN above every seed "
            "of BN)") in text
    import matplotlib

    matplotlib.use("Agg")
    fig = santurkar.distribution_figure(results)
    assert len(fig.axes) == 9 and fig.dpi >= 150  # 3 arms x 3 places
    assert santurkar.distribution_figure(results[:1]) is None  # no BN: no layer
    fig = santurkar.accuracy_figure(results, 4, arms=santurkar.HIGH_RATE_ARMS)
    assert "Learning rate 0.1" in fig.axes[0].get_title()


def test_chapter_07_closing_paragraph_case_by_case():
    results = _hand_made_results()
    # noisy BN level with BN and ahead of no BN at both rates: agrees; BN shifts
    # more: agrees (not reduced); BN's effective smoothness lower in both
    # windows: agrees
    assert santurkar.what_is_left(results) == (
        "Our network agrees with the paper that noisy BN keeps BN's lead over no BN "
        "where BN has one (at learning rate 0.01, noisy BN against BN: no clear "
        "difference, the seed ranges overlap; against no BN: every seed of noisy BN "
        "above every seed of no BN; at learning rate 0.1, noisy BN against BN: no clear "
        "difference, the seed ranges overlap; against no BN: every seed of noisy BN "
        "above every seed of no BN); that BN does not clearly reduce the measured "
        "internal covariate shift; that BN makes the loss landscape smoother (effective "
        "smoothness, epochs 1–3: BN 0.900 against no BN 3.00, every seed of BN below every "
        "seed of no BN; after epoch 3: BN 0.900 against no BN 3.00, every seed of BN below "
        "every seed of no BN). What survives of the "
        "original explanation, then, is a name for a real phenomenon — layers do move "
        "under each other — not the mechanism by which BN helps.")
    assert santurkar.what_is_left(results[:2]).startswith("**PRELIMINARY")
    rougher = [dict(r, probes={**r["probes"], "landscape": [  # BN's 3.0 vs 1.0
        [row[0], *(10 * v for v in row[1:])] for row in r["probes"]["landscape"]]})
        if r["name"] == "sgd-bn" else r for r in results]
    assert ("Where it differs: BN's effective smoothness is not clearly lower throughout "
            "(epochs 1–3: BN 9.00 against no BN 3.00, every seed of no BN below every seed of "
            "BN; after epoch 3: BN 9.00 against no BN 3.00, every seed of no BN below every "
            "seed of BN).") in santurkar.what_is_left(rougher)
    # BN's loss range larger because its gradient is longer (x10 here): said so
    assert ("On the probe batch: loss no BN 2.00, BN 20.0; ‖g‖ no BN 1.00, BN 10.0. BN's larger "
            "loss range goes with its longer gradient") in santurkar.findings_markdown(rougher)
    assert "longer gradient" not in santurkar.findings_markdown(results)
    # BN level with no BN at the base rate, ahead at the high rate: the noisy
    # point is judged at the high rate only, and the closing names the benefit
    level = _with_accuracy(results, "sgd-bn", 0.60)
    text = santurkar.what_is_left(level)
    assert ("noisy BN keeps BN's lead over no BN where BN has one (at learning rate "
            "0.1, noisy BN against BN") in text
    assert text.endswith(
        "At learning rate 0.01 BN itself is not clearly ahead of no BN (no clear "
        "difference, the seed ranges overlap); its benefit on this network is the "
        "larger rate it tolerates (at 0.1: every seed of BN above every seed of no BN), "
        "the benefit a smoother landscape would explain.")
    # ... and noisy BN losing it there: differs
    lost = _with_accuracy(level, santurkar.NOISY_HIGH, 0.40)
    assert ("Where it differs: noisy BN does not keep BN's lead over no BN (at learning "
            "rate 0.1, noisy BN against BN: every seed of BN above every seed of noisy "
            "BN; against no BN: no clear difference") in santurkar.what_is_left(lost)
    # ... or keeping part of it: clearly below BN (0.69) but clearly above no BN (0.40)
    part = _with_accuracy(level, santurkar.NOISY_HIGH, 0.50)
    assert ("Where it differs: noisy BN keeps part of BN's lead over no BN (34 % of "
            "it), not all: it ends clearly below BN, though clearly above no BN (at "
            "learning rate 0.1, "
            "noisy BN against BN: every seed of BN above every seed of noisy BN; against "
            "no BN: every seed of noisy BN above every seed of no BN).") in \
        santurkar.what_is_left(part)
    most = _with_accuracy(level, santurkar.NOISY_HIGH, 0.65)
    assert "noisy BN keeps most of BN's lead over no BN (86 % of it), not all" in \
        santurkar.what_is_left(most)
    # where BN has no lead, noisy BN clearly below BN is the noise's cost
    costly = _with_accuracy(level, "sgd-noisy", 0.55)
    assert ("At learning rate 0.01, where BN has no clear lead, noisy BN still ends "
            "clearly below BN (0.555 against 0.605; against no BN: every seed of no BN "
            "above every seed of noisy BN): what the noise costs, not a benefit of BN "
            "taken away.") in santurkar.what_is_left(costly)
    assert "what the noise costs" not in santurkar.what_is_left(level)
    # noisy BN diverging at the high rate: its seeds count as chance
    diverged = [dict(r, status="diverged", curve=r["curve"][:3])
                if r["name"] == santurkar.NOISY_HIGH else r for r in level]
    found = santurkar.verdicts(diverged)
    assert found["high_noisy_vs_bn"]["verdict"] == plots.CLEAR_OTHER_WAY
    assert found["high_noisy_vs_none"]["verdict"] == plots.CLEAR_OTHER_WAY
    assert ("Test accuracy: noisy BN 0.100 (2 of 2 seeds diverged, counted as chance), "
            "BN 0.695") in santurkar.findings_markdown(diverged)
    assert "Where it differs: noisy BN does not keep BN's lead" in santurkar.what_is_left(
        diverged)
    # BN level with no BN at both rates: nothing to keep, not testable
    flat = _with_accuracy(level, santurkar.BN_HIGH, 0.40)
    text = santurkar.what_is_left(flat)
    assert ("Cannot be tested here: whether noisy BN keeps BN's lead: BN is not clearly "
            "ahead of no BN at either rate, so there is no lead to keep.") in text
    assert text.endswith("BN is not clearly ahead of no BN at either learning rate, so "
                         "there is little benefit here for any mechanism to explain.")
    # the high-rate runs not trained yet: that point stays open
    text = santurkar.what_is_left(_with_accuracy(_hand_made_results(high_rate=False),
                                                 "sgd-bn", 0.60))
    assert "Not judged yet: whether noisy BN keeps BN's lead over no BN." in text
    assert text.endswith("the runs at 0.1 are not all trained yet.")


def test_chapter_07_says_when_bn_is_further_along_in_the_later_window():
    """BN's probe-batch loss clearly lower after the early epochs: the closing
    says the later window compares two stages of training, and whether the
    early window's losses are closer."""
    def with_losses(results, early_bn, later_bn):
        per_epoch = 390
        return [dict(r, probes={**r["probes"], "landscape": [
            row[:4] + [(early_bn if row[0] / per_epoch <= santurkar.EARLY_EPOCHS
                        else later_bn) + r["seed"] / 100, row[5]]
            for row in r["probes"]["landscape"]]}) if r["name"] == "sgd-bn" else r
            for r in results]

    results = _hand_made_results()
    assert "further along" not in santurkar.what_is_left(results)  # 2.0 both
    closer = santurkar.what_is_left(with_losses(results, 1.8, 0.5))
    assert ("A caveat on the smoothness: after epoch 3 BN is also further along (its "
            "loss on the probe batch is clearly lower, 0.505 against 2.00), so that window "
            "compares the "
            "landscape at two different stages of training, not one place with and "
            "without BN; in epochs 1–3 the two losses are closer (1.81 against 2.00), and "
            "that comparison is the fairer one.") in closer
    same = santurkar.what_is_left(with_losses(results, 0.5, 0.5))
    assert ("not one place with and without BN, and so does the window of epochs 1–3 "
            "(0.505 against 2.00).") in same


def test_chapter_07_reads_bn_at_the_high_rate_from_chapter_06s_followup():
    """BN at the high rate is not trained twice: the follow-up's run is the
    configuration the santurkar grid would train (name and probes aside), and
    where the two grids share a configuration their committed curves agree to
    the last digit (probes never change a trajectory)."""
    import json
    from pathlib import Path

    followup = {run.name: run for run in C.get_grid("lrfollowup").runs}
    bn_high = followup[santurkar.BN_HIGH]
    noisy_high = GRID.run(santurkar.NOISY_HIGH)
    assert bn_high.replace(name="x", probes=()) == noisy_high.replace(
        name="x", norm_conv="batch", norm_dense="batch")
    bn_base = followup[f"sgd-bn-both-lr{C.SANTURKAR_LEARNING_RATE:g}"]
    assert bn_base.replace(name="x", probes=()) == GRID.run("sgd-bn").replace(
        name="x", **NO_PROBES)
    root = Path(__file__).resolve().parents[1] / "results"
    compared = 0
    for ours, theirs in (("sgd-bn", bn_base.name),
                         ("sgd-none", f"sgd-none-lr{C.SANTURKAR_LEARNING_RATE:g}")):
        for seed in range(2):
            a, b = (root / "santurkar" / f"{ours}-s{seed}.json",
                    root / "lrfollowup" / f"{theirs}-s{seed}.json")
            if a.exists() and b.exists():
                pair = [json.loads(f.read_text()) for f in (a, b)]
                if all(r["status"] == "complete" for r in pair):  # not one still training
                    assert pair[0]["curve"] == pair[1]["curve"], (ours, seed)
                    compared += 1
    assert compared >= 2  # seed 0 of both is committed
    assert santurkar.with_followup([], [{"name": santurkar.BN_HIGH}, {"name": "x"}]) == [
        {"name": santurkar.BN_HIGH}]


def test_chapter_07_states_what_the_files_give():
    """The committed notebook's generated paragraphs are what the committed
    result files give today (changing a result names the paragraph)."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    folder = root / "results" / "santurkar"
    followup = root / "results" / "lrfollowup"
    results = santurkar.with_followup(R.load_results(folder) if folder.is_dir() else [],
                                      R.load_results(followup) if followup.is_dir() else [])
    cells = json.loads((root / "notebooks" / "07_santurkar.ipynb").read_text())["cells"]
    outputs = ["".join(o["data"]["text/markdown"]) for c in cells
               for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
    for expected in (santurkar.findings_markdown(results),
                     santurkar.what_is_left(results)):
        assert expected in outputs, f"re-execute notebook 07: it now reads\n{expected}"


def test_chapter_07_states_the_early_schedule_of_the_grid():
    """The prose's "ten times an epoch (every 39 steps) ... first three epochs"
    is the grid's schedule."""
    from pathlib import Path

    text = " ".join((Path(__file__).resolve().parents[1] / "notebooks"
                     / "07_santurkar.md").read_text().split())
    protocol = C.get_profile(GRID.profile)
    words = {3: "three"}
    assert protocol.steps_per_epoch // C.SANTURKAR_EARLY_PROBE_EVERY == 10
    assert (f"during the first {words[C.SANTURKAR_EARLY_EPOCHS]} epochs also ten times "
            f"an epoch (every {C.SANTURKAR_EARLY_PROBE_EVERY} steps") in text


def test_chapter_07_states_why_it_trains_at_a_second_rate():
    """The prose's "at this rate BN and no BN end level" is chapter 06's
    follow-up (no clear difference at the chapter's rate), and "ten times
    larger" is the ratio of the two rates."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = " ".join((root / "notebooks" / "07_santurkar.md").read_text().split())
    assert "at this rate BN and no BN end level on our network" in text
    assert "ten times larger" in text
    assert C.SANTURKAR_HIGH_RATE / C.SANTURKAR_LEARNING_RATE == pytest.approx(10)
    followup = R.results_if_any(root / "results" / "lrfollowup")
    rate = f"lr{C.SANTURKAR_LEARNING_RATE:g}"
    runs = {arm: [r for r in followup if r["name"] == f"sgd-{arm}-{rate}"]
            for arm in ("none", "bn-both")}
    assert all(len(seeds) == 2 for seeds in runs.values())
    assert plots.compare_runs(runs["bn-both"], runs["none"])["verdict"] == \
        plots.WITHIN_SPREAD, "rewrite chapter 07's 'BN and no BN end level'"
