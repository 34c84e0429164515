"""Run configurations, grids, profiles, the training loop, the resumable runner."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnlib import config as C
from bnlib import runner as R
from bnlib import training as T
from bnlib.config import ARTICLE, RunConfig
from bnlib.layers import ManualBatchNorm
from bnlib.data import load_cifar10, synthetic_cifar10

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"
TINY = C.get_profile("smoke", epochs=2, steps_per_epoch=3, eval_every=3,
                     train_size=640, test_size=200)
RUN = ARTICLE.runs  # the article's 12, by run id


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_cifar10(num_train=640, num_test=200)


def run_one(run_id_or_config, seed, protocol, data, **kwargs):
    config = (RUN[run_id_or_config] if isinstance(run_id_or_config, int)
              else run_id_or_config)
    return R.run_one(config, seed, protocol, data, **kwargs)


# ----------------------------------------------------------------- grid, profiles
def test_grid_matches_the_article_table():
    table = [(i, r.dropout, r.bn_conv, r.bn_dense) for i, r in enumerate(RUN)]
    assert table == [
        (0, 0.0, False, False), (1, 0.2, False, False), (2, 0.4, False, False),
        (3, 0.0, True, False), (4, 0.2, True, False), (5, 0.4, True, False),
        (6, 0.0, False, True), (7, 0.2, False, True), (8, 0.4, False, True),
        (9, 0.0, True, True), (10, 0.2, True, True), (11, 0.4, True, True)]
    assert all(r.input_scaling == "raw" and r.optimizer == "adam"
               and r.learning_rate == 1e-3 and r.bn_position == "after_relu"
               for r in RUN)


def test_run_names_are_readable_stable_and_unique():
    assert [r.name for r in RUN[:4]] == ["none-d0", "none-d2", "none-d4",
                                         "bn-conv-d0"]
    assert RUN[11].name == "bn-both-d4" and RUN[11].label == "BN conv+dense, dropout 0.4"
    standardized = C.get_grid("standardized")
    assert [r.name for r in standardized.runs] == ["std-" + r.name for r in RUN]
    assert all(r.input_scaling == "standardize" for r in standardized.runs)
    names = [(g.name, r.name) for g in C.GRIDS.values() for r in g.runs]
    assert len(set(names)) == len(names)


def test_unknown_run_and_grid():
    with pytest.raises(C.ConfigError, match="grid article has no run 12"):
        ARTICLE.run(12)
    assert ARTICLE.run("bn-both-d0") is RUN[9] and ARTICLE.run(9) is RUN[9]
    with pytest.raises(C.ConfigError, match="unknown grid 'nope'"):
        C.get_grid("nope")


def test_results_folders():
    book, smoke = C.get_profile("book"), C.get_profile("smoke")
    assert ARTICLE.results_dir(book) == Path("results/book")
    assert C.get_grid("inputs").results_dir(book) == Path("results/inputs")
    assert ARTICLE.results_dir(smoke) == Path("results/smoke/article")
    assert C.get_grid("budget").results_dir(C.get_profile("long")) == Path(
        "results/budget")


def test_chapter_folders_and_their_listing(tmp_path, monkeypatch):
    """A notebook runs in notebooks/, the CLI in the repository root: both find
    the same results/; the smoke profile gets scratch folders; the listing
    never prints an absolute path."""
    from bnlib.runner import chapter_folders, folders_listing, repository_root

    (tmp_path / "notebooks").mkdir()
    book = C.get_profile("book")
    for cwd in (tmp_path, tmp_path / "notebooks"):
        monkeypatch.chdir(cwd)
        assert repository_root() == tmp_path
        folders = chapter_folders(("smallbatch", "budget"), book, "08")
        assert folders == {"smallbatch": tmp_path / "results" / "smallbatch",
                           "budget": tmp_path / "results" / "budget"}
        assert folders_listing(book, folders) == (
            "profile: book\n  grid smallbatch -> results/smallbatch\n"
            "  grid budget     -> results/budget")
    smoke = C.get_profile("smoke")
    scratch = chapter_folders(("smallbatch",), smoke, "08")["smallbatch"]
    assert scratch.parent.name.startswith("bnlib-08-") and scratch.parent.is_dir()
    assert not scratch.is_relative_to(tmp_path)
    assert folders_listing(smoke, {"smallbatch": scratch}) == (
        "profile: smoke\n  grid smallbatch -> a temporary folder")
    scratch.parent.rmdir()


@pytest.mark.parametrize("changes, message", [
    ({"norm_conv": "group", "norm_dense": "group", "groups": 8}, "norm_dense cannot"),
    ({"norm_conv": "ghost"}, "needs ghost_size"),
    ({"ghost_size": 4}, "ghost_size is set but"),
    ({"norm_conv": "ghost", "ghost_size": 1}, "ghost_size must be at least 2"),
    ({"norm_conv": "group", "groups": 5}, "groups must divide"),
    ({"learning_rate": 0.0}, "learning_rate must be in"),
    ({"learning_rate": -1.0}, "learning_rate must be in"),
    ({"learning_rate": float("nan")}, "learning_rate must be in"),
    ({"momentum": 0.9}, "momentum is SGD's"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of"),
    ({"bn_position": "before_relu"}, "needs a normalization"),
    ({"input_scaling": "centre"}, "input_scaling must be one of"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"probes": ("activation_input:conv9",)}, "probe activation_input of model article_cnn takes"),
    ({"probes": ("weights",)}, "unknown probe"),
    ({"name": "Has Space"}, "run name must be"),
    ({"model": "resnet"}, "model must be one of"),
    ({"renorm_rmax": 3.0}, "renorm_rmax is set but no layer uses norm kind 'renorm'"),
    ({"norm_conv": "renorm", "renorm_rmax": 0.5}, "renorm_rmax must be in"),
    ({"norm_conv": "renorm", "renorm_dmax": -1.0}, "renorm_dmax must be in"),
    ({"model": "sigmoid_mlp", "norm_conv": "batch"}, "has no convolutions"),
    ({"model": "sigmoid_mlp", "norm_dense": "layer"}, "takes norm_dense 'none' or"),
    ({"model": "sigmoid_mlp", "dropout": 0.2}, "has no dropout"),
    ({"model": "sigmoid_mlp", "norm_dense": "batch"}, "before the sigmoid"),
    ({"model": "sigmoid_mlp", "probes": ("activation_input:conv1",)},
     "model sigmoid_mlp takes one of dense1, dense2, dense3"),
    ({"probes": ("activation_input:dense3",)}, "model article_cnn takes one of"),
])
def test_contradictory_configurations_are_refused_naming_the_field(changes, message):
    with pytest.raises(C.ConfigError, match=message):
        RunConfig("x").replace(**changes)


def test_ghost_size_must_divide_the_batch():
    ghost = RunConfig("g", norm_conv="ghost", ghost_size=48)
    with pytest.raises(C.ConfigError, match="does not divide the batch size 128"):
        C.validate_config(ghost, C.get_profile("book"))
    C.validate_config(ghost.replace(ghost_size=32), C.get_profile("book"))


def test_profiles_and_overrides(monkeypatch):
    assert C.get_profile("article").epochs == 400
    assert C.get_profile("article").eval_every == 50
    assert C.get_profile("book", epochs=3).epochs == 3
    assert C.get_profile("book").steps_per_epoch == 390
    assert C.get_profile("long").epochs == 40
    monkeypatch.setenv(C.PROFILE_ENV_VAR, "smoke")
    assert C.get_profile().profile == "smoke"
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke, book"):
        C.get_profile("fast")
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        C.get_profile("smoke", epochs=0)


def test_subset_is_balanced(synthetic):
    protocol = C.get_profile("smoke", train_size=200, test_size=50)
    x_train, y_train, x_test, y_test = T.subset(synthetic, protocol)
    assert np.bincount(y_train).tolist() == [20] * 10
    assert np.bincount(y_test).tolist() == [5] * 10


# ----------------------------------------------------------------- one run
def test_run_writes_a_complete_result(tmp_path, synthetic):
    result = run_one(11, 0, TINY, synthetic, results_dir=tmp_path, grid="article",
                     run_id=11)
    saved = json.loads((tmp_path / "bn-both-d4-s0.json").read_text())
    assert (saved["grid"], saved["run_id"], saved["name"]) == ("article", 11,
                                                              "bn-both-d4")
    assert saved["config"] == RUN[11].to_dict()
    assert saved == json.loads(json.dumps(result))
    assert saved["status"] == "complete"
    assert saved["data"]["kind"] == "synthetic"
    assert saved["protocol"]["epochs"] == 2
    assert [point[0] for point in saved["curve"]] == [3, 6]
    assert all(len(point) == 5 for point in saved["curve"])
    assert saved["environment"]["tensorflow"]
    assert saved["timing"]["train_images_per_second"] > 0
    assert saved["num_params"] == 4_259_274 + 4 * (32 + 64 + 1024)
    assert not list(tmp_path.glob("checkpoints/*.npz"))  # removed when done
    mode = (tmp_path / "bn-both-d4-s0.json").stat().st_mode & 0o777
    assert mode == 0o644, oct(mode)


def test_same_seed_same_curve(tmp_path, synthetic):
    first = run_one(9, 3, TINY, synthetic, results_dir=tmp_path / "a")
    second = run_one(9, 3, TINY, synthetic, results_dir=tmp_path / "b")
    assert first["curve"] == second["curve"]


def test_train_run_is_run_one_in_memory(tmp_path, synthetic, monkeypatch):
    """The notebooks' in-memory training is the runner's, step for step."""
    manual = T.RunnerOptions(bn_kernel="manual")
    on_disk = run_one(9, 2, TINY, synthetic, results_dir=tmp_path / "runs",
                      options=manual)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    in_memory = T.train_run(RUN[9], 2, TINY, synthetic, options=manual)
    np.testing.assert_array_equal(in_memory.curve, np.array(on_disk["curve"]))
    assert in_memory.model.get_layer("bn_dense1").moving_variance.numpy().std() > 0
    assert not list((tmp_path / "cwd").iterdir())   # no result file, no checkpoint


def test_train_run_takes_a_layer_factory_and_stops_at_a_nan(synthetic):
    from bnlib import layers

    made = []

    def counting_layer(name, momentum, epsilon):
        made.append((name, momentum, epsilon))
        return layers.manual_batch_norm(name, momentum, epsilon)

    T.train_run(RUN[9], 0, TINY, synthetic,
                options=T.RunnerOptions(bn_kernel=counting_layer))
    assert [m[0] for m in made] == ["bn_conv1", "bn_conv2", "bn_dense1"]
    assert {m[1:] for m in made} == {(RUN[9].bn_momentum, RUN[9].bn_epsilon)}

    exploding = RUN[0].replace(learning_rate=10.0)
    with pytest.raises(T.Diverged, match="Lower the learning rate"):
        T.train_run(exploding, 0, TINY, synthetic)
    with pytest.raises(ValueError, match="bn_kernel must be one of"):
        T.RunnerOptions(bn_kernel="batchnorm")


def test_finished_runs_are_skipped(tmp_path, synthetic):
    first = run_one(0, 0, TINY, synthetic, results_dir=tmp_path)
    calls = []
    again = run_one(0, 0, TINY, synthetic, results_dir=tmp_path,
                    progress=lambda *a: calls.append(a))
    assert again == json.loads(json.dumps(first)) and not calls


@pytest.mark.parametrize("eval_every", [3, 4], ids=["dividing", "non-dividing"])
def test_interrupted_run_resumes_exactly(tmp_path, synthetic, eval_every):
    """Killed in epoch 3 and resumed from the epoch-2 checkpoint, the run gives
    the uninterrupted curve; with an evaluation interval that does not divide
    the epoch, the first row after the restart averages the steps of both
    sides of the restart, as it would have without one."""
    protocol = C.get_profile("smoke", epochs=3, steps_per_epoch=3,
                             eval_every=eval_every, train_size=640, test_size=200)
    reference = run_one(11, 0, protocol, synthetic, results_dir=tmp_path / "ref")

    def interrupt_in_epoch_three(step, total, acc):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(11, 0, protocol, synthetic, results_dir=tmp_path / "cut",
                progress=interrupt_in_epoch_three)
    result_file = tmp_path / "cut" / "bn-both-d4-s0.json"
    partial = json.loads(result_file.read_text())
    assert partial["status"] == "running" and partial["epochs_done"] == 2
    assert (tmp_path / "cut" / "checkpoints" / "bn-both-d4-s0.npz").exists()

    # a crash after the checkpoint but before the JSON: the JSON lags an epoch
    lagging = dict(partial, epochs_done=1, curve=partial["curve"][:1])
    R.write_json_atomic(result_file, lagging)

    resumed = run_one(11, 0, protocol, synthetic, results_dir=tmp_path / "cut")
    assert resumed["status"] == "complete" and resumed["resumed_at_epoch"] == 2
    steps = list(range(eval_every, 10, eval_every))
    assert [p[0] for p in resumed["curve"]] == steps + ([9] if 9 not in steps else [])
    # model, optimizer, dropout state and the loss window were restored
    np.testing.assert_array_equal(np.array(resumed["curve"]),
                                  np.array(reference["curve"]))


def test_nan_loss_marks_the_run_diverged_and_the_grid_goes_on(tmp_path, synthetic):
    exploding = dataclasses.replace(ARTICLE, runs=tuple(
        r.replace(learning_rate=10.0) for r in RUN))
    results = R.run_grid(exploding, TINY, run_ids=[0, 9], results_dir=tmp_path,
                         data=synthetic)
    by_id = {r["run_id"]: r for r in results}
    assert set(by_id) == {0, 9}
    assert by_id[0]["status"] == "diverged"
    assert by_id[0]["diverged_at_step"] >= 1
    # the other run still ran to its end (diverged or complete, but finished)
    assert by_id[9]["status"] in ("diverged", "complete")


def test_protocol_mismatch_is_refused(tmp_path, synthetic):
    run_one(0, 0, TINY, synthetic, results_dir=tmp_path)
    other = C.get_profile("smoke", epochs=3, steps_per_epoch=3, eval_every=3,
                          train_size=640, test_size=200)
    with pytest.raises(ValueError, match="another protocol"):
        run_one(0, 0, other, synthetic, results_dir=tmp_path)
    with pytest.raises(ValueError, match="another run configuration.*learning_rate"):
        run_one(RUN[0].replace(learning_rate=0.01), 0, TINY, synthetic,
                results_dir=tmp_path)


def test_corrupt_result_file_names_the_fix(tmp_path):
    (tmp_path / "none-d0-s0.json").write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        R.load_results(tmp_path)


def test_parallel_workers_write_the_same_files(tmp_path):
    """Two worker processes share the queue; every task ends in a result."""
    results = R.run_grid("article", TINY, source="synthetic", run_ids=[0, 3, 6],
                         results_dir=tmp_path, options=T.RunnerOptions(workers=2))
    assert sorted(r["run_id"] for r in results) == [0, 3, 6]
    assert all(r["status"] == "complete" for r in results)
    assert all(r["environment"]["parallel_workers"] == 2 for r in results)


# ----------------------------------------------------------------- CLI
def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bnlib", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def test_cli_list_and_help():
    listing = run_cli("list")
    assert listing.returncode == 0
    assert all(f"grid {name}" in listing.stdout for name in C.GRIDS)
    one = run_cli("list", "--grid", "article")
    assert "11  bn-both-d4" in one.stdout and "BN conv+dense, dropout 0.4" in one.stdout
    assert run_cli("run", "--help").returncode == 0


@pytest.mark.parametrize("args, message", [
    (["run", "--profile", "fast"], "unknown profile"),
    (["run", "--profile", "smoke", "--runs", "14", "--data", "synthetic"],
     "grid article has no run 14"),
    (["run", "--profile", "smoke", "--runs", "bn-all", "--data", "synthetic"],
     "Accepted: ids and ranges"),
    (["run", "--grid", "inputs", "--profile", "smoke", "--learning-rate", "0.1",
      "--data", "synthetic"], "pass --results-dir too"),
    (["run", "--grid", "lost"], "invalid choice: 'lost'"),
    (["run", "--profile", "smoke", "--data", "/nonexistent/cifar.tar.gz"],
     "does not exist"),
    (["plot", "--results-dir", "/nonexistent"], "no results folder"),
])
def test_cli_bad_input_one_clear_error(args, message):
    completed = run_cli(*args)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_cli_smoke_grid_writes_twelve_results(tmp_path):
    completed = run_cli("run", "--profile", "smoke", "--data", "synthetic",
                        "--results-dir", str(tmp_path))
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = R.load_results(tmp_path)
    assert len(results) == 12
    assert all(r["status"] == "complete" and r["data"]["kind"] == "synthetic"
               for r in results)


@pytest.mark.slow
def test_killed_cli_run_resumes(tmp_path):
    """SIGKILL in the middle of a run; the rerun resumes from the checkpoint."""
    import os
    import signal
    import time

    args = [sys.executable, "-m", "bnlib", "run", "--profile", "smoke", "--runs", "9",
            "--epochs", "40", "--data", "synthetic", "--results-dir", str(tmp_path)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    result_file = tmp_path / "bn-both-d0-s0.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if result_file.exists() and json.loads(result_file.read_text())[
                "epochs_done"] >= 2:
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = json.loads(result_file.read_text())
    assert partial["status"] == "running"
    done = run_cli(*args[3:])
    assert done.returncode == 0, done.stderr[-2000:]
    final = json.loads(result_file.read_text())
    assert final["status"] == "complete"
    assert final["resumed_at_epoch"] >= partial["epochs_done"]
    assert final["curve"][: len(partial["curve"])] == partial["curve"]
    assert len(final["curve"]) == 40 * 10 // 5


# ----------------------------------------------------------------- vs plain Keras
@pytest.mark.slow
def test_runner_matches_plain_keras_fit():
    """Same seed and batches: the runner with Keras' BN layer reproduces
    ``model.fit`` exactly, and the fused kernel stays within round-off noise."""
    from bnlib.bench import keras_fit_curve

    data = (load_cifar10(SHARED_ARCHIVE) if SHARED_ARCHIVE.exists()
            else synthetic_cifar10(num_train=1280, num_test=1000))
    protocol = C.get_profile("smoke", epochs=2)
    reference = np.array(keras_fit_curve(RUN[9], protocol, data, seed=0))
    keras_layer = T.train_run(RUN[9], 0, protocol, data,
                              options=T.RunnerOptions(bn_kernel="keras")).curve
    fused = T.train_run(RUN[9], 0, protocol, data).curve
    np.testing.assert_allclose(keras_layer, reference, rtol=1e-4, atol=1e-4)
    # fused kernel: same function up to float round-off, which training amplifies
    assert abs(fused[0, 2] - reference[0, 2]) / reference[0, 2] < 0.01
    np.testing.assert_allclose(fused[:, 2], reference[:, 2], rtol=0.1)
    assert np.max(np.abs(fused[:, 4] - reference[:, 4])) < 0.1


def test_fused_adam_is_the_same_update_as_keras_adam(synthetic):
    """ResourceApplyAdam on the Keras optimizer's slots = Keras' own Adam."""
    import keras

    from bnlib.models import build_cnn

    protocol = C.get_profile("smoke", train_size=640, test_size=200)
    data = T.subset(synthetic, protocol)
    trainers = {}
    for kernel in T.ADAM_KERNELS:
        keras.utils.set_random_seed(5)
        model = build_cnn(True, True, 0.0)
        trainers[kernel] = T.Trainer(model, RUN[9], protocol, *data,
                                     options=T.RunnerOptions(adam_kernel=kernel))
    order = trainers["keras"].epoch_order(0, 0)
    # one update from identical weights and gradients: only Adam's arithmetic
    # differs, so every variable and slot agrees to float32 round-off
    for trainer in trainers.values():
        trainer.train_step(order[:128])
    keras_state, fused_state = (t.state() for t in trainers.values())
    assert keras_state.keys() == fused_state.keys()
    for name in keras_state:
        np.testing.assert_allclose(keras_state[name], fused_state[name],
                                   rtol=1e-5, atol=1e-7, err_msg=name)
    # later steps: losses stay together (training amplifies round-off slowly)
    for step in (1, 2):
        index = order[step * 128:(step + 1) * 128]
        losses = [float(t.train_step(index)[0]) for t in trainers.values()]
        np.testing.assert_allclose(losses[0], losses[1], rtol=1e-3)
    assert int(trainers["fused"].optimizer.iterations.numpy()) == 3
    with pytest.raises(ValueError, match="adam_kernel"):
        T.RunnerOptions(adam_kernel="sgd")
    sgd = RUN[0].replace(optimizer="sgd", learning_rate=0.01, momentum=0.9)
    with pytest.raises(ValueError, match="needs the Adam optimizer"):
        T.Trainer(build_cnn(), sgd, protocol, *data,
                  options=T.RunnerOptions(adam_kernel="fused"))


def test_resuming_on_other_data_is_refused(tmp_path, synthetic):
    protocol = C.get_profile("smoke", epochs=3, steps_per_epoch=3, eval_every=3,
                             train_size=640, test_size=200)

    def stop_in_epoch_two(step, total, acc):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(0, 0, protocol, synthetic, results_dir=tmp_path,
                progress=stop_in_epoch_two)
    other = synthetic_cifar10(num_train=640, num_test=200)
    other_prov = dataclasses.replace(other.provenance, sha256="another copy")
    other = dataclasses.replace(other, provenance=other_prov)
    with pytest.raises(ValueError, match="started on other data"):
        run_one(0, 0, protocol, other, results_dir=tmp_path)


# ----------------------------------------------------------------- chapter 06
def test_chapter_06_grids():
    figure1 = C.get_grid("figure1")
    assert [r.name for r in figure1.runs] == ["mlp-none", "mlp-bn"]
    assert {r.model for r in figure1.runs} == {"sigmoid_mlp"}
    assert [r.bn_dense for r in figure1.runs] == [False, True]
    protocol = C.get_profile(figure1.profile)
    assert (protocol.total_steps, protocol.batch_size, protocol.seeds) == (50_000, 60, 3)
    lrmap = C.get_grid("lrmap")
    assert len(lrmap.runs) == 2 * len(C.SGD_LEARNING_RATES) >= 12
    assert {(r.optimizer, r.momentum, r.input_scaling) for r in lrmap.runs} == {
        ("sgd", 0.9, "standardize")}
    rates = sorted({r.learning_rate for r in lrmap.runs})
    assert rates[-1] / rates[0] >= 300  # from "too small" to "diverges"
    adam = C.get_grid("lradam")
    assert sorted({r.learning_rate for r in adam.runs}) == [1e-4, 1e-3, 1e-2]
    assert C.get_profile("short").epochs == 3


def test_the_figure1_network(synthetic):
    """3 x 100 sigmoid units; BN drops the dense bias; the probe reads the
    sigmoid's input (negative values, which a sigmoid's output never has)."""
    from bnlib.probes import ActivationInputProbe

    counts = {}
    for config in C.get_grid("figure1").runs:
        trainer, _ = T.prepare(config, 0, TINY, synthetic)
        model = trainer.model
        counts[config.name] = model.count_params()
        kernels = [model.get_layer(f"dense{i}").kernel.numpy() for i in (1, 2, 3)]
        assert [k.shape for k in kernels] == [(3072, 100), (100, 100), (100, 100)]
        assert all(abs(k.std() - 0.01) < 0.002 for k in kernels)
        values = ActivationInputProbe(model, "dense3", synthetic.x_test)()
        assert values[3] < 0 < values[5]
    dense = 3072 * 100 + 2 * 100 * 100 + 100 * 10 + 10
    assert counts["mlp-none"] == dense + 300
    assert counts["mlp-bn"] == dense + 3 * 4 * 100  # gamma, beta, moving mean, var


def test_the_figure1_network_trains_and_probes(tmp_path, synthetic):
    config = C.get_grid("figure1").runs[1]
    result = run_one(config, 0, TINY, synthetic, results_dir=tmp_path)
    assert result["status"] == "complete" and result["label"] == "sigmoid MLP, BN, " \
        "standardized inputs, sgd lr 1"
    rows = result["probes"]["activation_input:dense3"]
    assert len(rows) == len(result["curve"]) and len(rows[0]) == 10


# ----------------------------------------------------------------- new knobs
def test_a_probe_does_not_change_the_trajectory(tmp_path, synthetic):
    """Same run with and without a probe: bit-identical curves."""
    plain = RUN[10]
    probed = plain.replace(probes=("activation_input:dense1", "activation_input:conv2"))
    without = run_one(plain, 0, TINY, synthetic, results_dir=tmp_path / "a")
    with_probe = run_one(probed, 0, TINY, synthetic, results_dir=tmp_path / "b")
    assert with_probe["curve"] == without["curve"]
    rows = with_probe["probes"]["activation_input:dense1"]
    assert [row[0] for row in rows] == [p[0] for p in with_probe["curve"]]
    columns = with_probe["probe_columns"]["activation_input:dense1"]
    assert columns[:4] == ["step", "unit_p15", "unit_p50", "unit_p85"]
    for row in rows:
        assert row[1] <= row[2] <= row[3] and row[4] <= row[5] <= row[6]
    assert "probes" not in without


def test_probe_reads_the_relu_input_in_either_placement(synthetic):
    """After the ReLU (article) the probe recomputes XW + b: some values are
    negative, which the ReLU output never is; before it, it reads BN's output,
    about zero-median."""
    from bnlib.probes import ActivationInputProbe

    for position in ("after_relu", "before_relu"):
        config = RUN[9].replace(bn_position=position)
        trainer, _ = T.prepare(config, 0, TINY, synthetic)
        values = ActivationInputProbe(trainer.model, "dense1", synthetic.x_test)()
        assert values[3] < 0 < values[5], (position, values)


@pytest.mark.parametrize("config", [
    RunConfig("ln", norm_conv="layer", norm_dense="layer", input_scaling="standardize"),
    RunConfig("gn", norm_conv="group", norm_dense="layer", groups=8),
    RunConfig("ghost", norm_conv="ghost", norm_dense="ghost", ghost_size=4),
    RunConfig("renorm", norm_conv="renorm", norm_dense="renorm"),
    RunConfig("unit", input_scaling="unit"),
    RunConfig("bn-input", input_scaling="bn_input"),
    RunConfig("sgd", norm_conv="batch", optimizer="sgd", learning_rate=0.05,
              momentum=0.9),
    RunConfig("before", 0.4, "batch", "batch", bn_position="before_relu"),
], ids=lambda c: c.name)
def test_every_kind_of_run_trains(tmp_path, synthetic, config):
    result = run_one(config, 0, TINY, synthetic, results_dir=tmp_path)
    assert result["status"] == "complete"
    assert result["config"]["name"] == config.name
    assert np.isfinite([p[2] for p in result["curve"]]).all()


def test_standardized_inputs_use_and_record_the_training_statistics(synthetic):
    config = C.get_grid("standardized").runs[0]
    trainer, statistics = T.prepare(config, 0, TINY, synthetic)
    x_train = T.subset(synthetic, TINY)[0].astype(np.float64)
    np.testing.assert_allclose(statistics["mean"], x_train.mean(axis=(0, 1, 2)),
                               atol=1e-3)
    np.testing.assert_allclose(statistics["std"], x_train.std(axis=(0, 1, 2)),
                               atol=1e-3)
    layer = trainer.model.get_layer("standardize")
    out = layer(x_train[:64].astype(np.float32)).numpy()
    expected = (x_train[:64] - statistics["mean"]) / np.array(statistics["std"])
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_noisy_bn_draws_the_papers_noise_in_training_only():
    """Santurkar et al.'s noise: per step and channel mu ~ U(-0.5, 0.5), sigma ~
    U(1, 1.25); per example and position m ~ U(mu -+ 0.1), s ~ N(sigma, 0.1**2)."""
    import tensorflow as tf

    from bnlib.layers import NoisyBatchNorm

    layer = NoisyBatchNorm(seed=3)
    x = np.concatenate([np.zeros((2000, 4, 4, 16)), np.ones((2000, 4, 4, 16))])
    out = layer.add_noise(tf.constant(x, tf.float32)).numpy()
    m = out[:2000].reshape(-1, 16)              # zeros in: s * 0 + m
    shifted = out[2000:].reshape(-1, 16)        # ones in: s + m
    mu = m.mean(axis=0)
    assert np.all(np.abs(mu) <= 0.5 + 0.01)
    assert mu.std() > 0.1                        # channels drew different means
    assert np.all(m.max(axis=0) - m.min(axis=0) <= 0.2 + 1e-6)
    assert np.all(np.abs(m - mu).max(axis=0) <= 0.1 + 0.01)
    sigma = shifted.mean(axis=0) - mu
    assert np.all((sigma > 1 - 0.02) & (sigma < 1.25 + 0.02))
    np.testing.assert_allclose((shifted - m.mean(axis=0)).std(axis=0),
                               np.sqrt(0.1 ** 2 + 0.2 ** 2 / 12), rtol=0.1)
    # positions count as batch dimensions: the noise varies inside one image
    assert out[0, :, :, 0].std() > 0
    # a new step draws new means
    again = layer.add_noise(tf.constant(x[:2000], tf.float32)).numpy()
    assert not np.allclose(again.reshape(-1, 16).mean(axis=0), mu, atol=0.02)
    # inference: the plain BN layer, no noise
    data = tf.constant(np.random.default_rng(0).normal(3, 2, (64, 8)), tf.float32)
    plain = ManualBatchNorm()
    plain.build(data.shape)
    noisy = NoisyBatchNorm(seed=3)
    noisy.build(data.shape)
    np.testing.assert_array_equal(noisy(data, training=False).numpy(),
                                  plain(data, training=False).numpy())


def test_noisy_runs_train_and_resume_exactly(tmp_path, synthetic):
    config = RunConfig("noisy", norm_conv="noisy", norm_dense="noisy")
    protocol = C.get_profile("smoke", epochs=2, steps_per_epoch=3, eval_every=2,
                             train_size=640, test_size=200)
    reference = run_one(config, 1, protocol, synthetic, results_dir=tmp_path / "a")

    def stop(step, total, acc):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_one(config, 1, protocol, synthetic, results_dir=tmp_path / "b",
                progress=stop)
    resumed = run_one(config, 1, protocol, synthetic, results_dir=tmp_path / "b")
    assert resumed["curve"] == reference["curve"]


def test_bfloat16_is_refused_without_native_support(monkeypatch, synthetic):
    monkeypatch.setattr(T, "cpu_flags", lambda: {"avx2", "fma"})
    config = RUN[0].replace(precision="mixed_bfloat16")
    with pytest.raises(ValueError, match="needs a CPU with native bfloat16"):
        T.prepare(config, 0, TINY, synthetic)


def test_a_bfloat16_run_records_its_precision(monkeypatch, tmp_path, synthetic):
    """Where allowed, a mixed-bfloat16 run trains with float32 variables, BN
    statistics, optimizer state and loss, and its result says so."""
    monkeypatch.setattr(T, "cpu_flags", lambda: {"avx512_bf16"})
    config = RUN[11].replace(name="bn-both-d4-bf16", precision="mixed_bfloat16")
    result = run_one(config, 0, TINY, synthetic, results_dir=tmp_path)
    assert result["status"] == "complete"
    assert result["config"]["precision"] == "mixed_bfloat16"
    assert result["label"].endswith(", bf16")
    trainer, _ = T.prepare(config, 0, TINY, synthetic)
    model = trainer.model
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert model.get_layer("logits").compute_dtype == "float32"
    # float variables are float32 (the int64 one is dropout's seed state)
    assert {v.dtype for v in model.variables} == {"float32", "int64"}
    assert {v.dtype for v in trainer.optimizer.variables} <= {"float32", "int64"}
    loss, _ = trainer.train_step(np.arange(128, dtype=np.int32))
    assert loss.dtype == "float32"


def test_a_loss_that_grows_by_orders_of_magnitude_is_diverged(synthetic):
    loop = T.EpochLoop(TINY, 640)
    losses = iter([2.3, 5.0, 2.3e4])
    loop.train_step = lambda index: (next(losses), 0)
    loop.evaluate = lambda: 0.1
    with pytest.raises(T.Diverged, match="more than 1000 times") as caught:
        loop.train_epoch(0, 0)
    assert caught.value.step == 3


def test_result_records_no_machine_path(tmp_path):
    """Data provenance names the file and its sha256, never where it lay."""
    from bnlib.data import recorded_source

    assert recorded_source(Path("/somewhere/else/cifar.tar.gz")) == "cifar.tar.gz"
    assert recorded_source(ROOT / "results" / "x.tar.gz") == "results/x.tar.gz"


# ----------------------------------------------------------------- the probes' images
def test_probes_measure_a_shuffled_sample_not_the_stored_order():
    """On a split stored sorted by class (as the offline JPEG copy is), the
    probes' 128 training images and 1000 test images hold every class, and
    the sample is the same at every call (the same for every run)."""
    from bnlib.data import fixed_sample
    from bnlib.probes import PROBE_BATCH, TRAIN_PROBE_BATCH

    labels = np.repeat(np.arange(10), 500)  # 5,000 images, class by class
    images = np.arange(len(labels))
    assert set(labels[:TRAIN_PROBE_BATCH]) == {0}  # what the stored order gives
    chosen, chosen_labels = fixed_sample(images, labels, TRAIN_PROBE_BATCH)
    assert len(chosen) == TRAIN_PROBE_BATCH and len(set(chosen)) == TRAIN_PROBE_BATCH
    assert (labels[chosen] == chosen_labels).all()
    assert np.bincount(chosen_labels, minlength=10).min() >= 4  # 12.8 expected
    assert (fixed_sample(images, labels, TRAIN_PROBE_BATCH)[0] == chosen).all()
    test = fixed_sample(labels, size=PROBE_BATCH)
    assert np.bincount(test, minlength=10).min() >= 70  # 100 expected
    everything = fixed_sample(images)  # the whole split, shuffled
    assert sorted(everything) == list(images) and (everything != images).any()


def test_results_record_the_probe_sample_and_stale_probes_are_refused(tmp_path, synthetic):
    from bnlib import optimizer
    from bnlib.probes import PROBE_SAMPLE, probe_rows

    config = C.get_grid("figure1").runs[0]
    result = run_one(config, 0, TINY, synthetic, results_dir=tmp_path)
    assert result["probe_sample"] == PROBE_SAMPLE
    assert len(probe_rows(result, "activation_input:dense3")) == len(result["curve"])
    stale = {key: value for key, value in result.items() if key != "probe_sample"}
    with pytest.raises(ValueError, match="first images of the split in its stored "
                                         "order.*Retrain it"):
        optimizer.probe_series(stale)
    # an unfinished run probed on other images is not resumed into a mixed series
    path = R.result_path(tmp_path, config, 0)
    path.write_text(json.dumps(dict(stale, status="running")))
    with pytest.raises(ValueError, match="resuming would mix two samples"):
        run_one(config, 0, TINY, synthetic, results_dir=tmp_path)
    assert "probe_sample" not in run_one(RUN[0], 0, TINY, synthetic,
                                         results_dir=tmp_path)  # no probes, no field


def test_protocol_summary_states_what_decides_the_numbers():
    """Every chapter prints this next to its figures: data, budget, seeds,
    precision, hardware, software and time, read from the files; a field the
    files disagree on lists each value with its grids."""
    import copy

    from bnlib.runner import load_results, protocol_summary

    book = load_results(Path(__file__).resolve().parents[1] / "results" / "book")
    longer = copy.deepcopy(book[0])
    longer["grid"], longer["name"] = "budget", "long-run"
    longer["protocol"]["epochs"] = 40
    longer["started"] = "2031-01-02T00:00:00+00:00"
    longer["environment"]["vector_extensions"] = "AVX2"
    summary = protocol_summary(book + [longer], width=1000)
    lines = dict(line.split(":", 1) for line in summary.splitlines())
    assert list(lines) == ["runs", "data", "training", "precision", "hardware",
                           "software", "time"]
    seeds = sorted({r["seed"] for r in book})
    assert lines["runs"].strip() == (f"{len(book) + 1} result files: 13 configurations, "
                                     f"seeds {seeds}")
    assert lines["training"].strip() == (
        "15 epochs x 390 steps of 128 images; test accuracy on 10,000 test images "
        f"every 195 steps ({book[0]['grid']}); 40 epochs x 390 steps of 128 images; test accuracy "
        "on 10,000 test images every 195 steps (budget)")
    assert "(" not in lines["precision"] and lines["precision"].strip() == "float32"
    assert book[0]["data"]["sha256"][:12] in lines["data"]
    env = book[0]["environment"]
    assert "vector_extensions" not in env  # the book's grid predates the field
    assert lines["hardware"].strip() == (
        f"{env['cpu']}, 2 cores, no GPU, 2 worker(s) x 1 thread(s) ({book[0]['grid']}); "
        f"{env['cpu']} (AVX2), 2 cores, no GPU, 2 worker(s) x 1 thread(s) (budget)")
    hours = sum(r["timing"]["wall_seconds"] for r in book + [longer]) / 3600
    first_day = min(r["started"] for r in book)[:10]
    assert lines["time"].strip() == (f"{hours:.1f} hours of training (each run's wall "
                                     f"time, summed); runs from {first_day} to 2031-01-02; "
                                     f"wall times compare only within one hardware setup")
    one_setup = dict(line.split(":", 1) for line in
                     protocol_summary(book, width=1000).splitlines())
    assert "hardware setup" not in one_setup["time"]
    with pytest.raises(ValueError, match="at least one result"):
        protocol_summary([])


@pytest.mark.parametrize("flags, expected", [
    ({"sse4_2", "avx", "avx2", "fma"}, "AVX2"),
    ({"avx", "avx2", "avx512f", "avx512_bf16"}, "AVX-512 + bf16"),
    ({"avx2", "avx512f"}, "AVX-512"),
    ({"sse4_2"}, "SSE or none"),
    (set(), "unknown"),
])
def test_the_environment_names_the_vector_extensions(flags, expected):
    assert T.vector_extensions(flags) == expected
    assert T.environment_record()["vector_extensions"] == T.vector_extensions()
