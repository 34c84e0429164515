"""The 12-run grid, profiles, the resumable runner and its result files."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bnlib import experiment as E
from bnlib.data import load_cifar10, synthetic_cifar10

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"
TINY = E.get_profile("smoke", epochs=2, steps_per_epoch=3, eval_every=3,
                     train_size=640, test_size=200)


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_cifar10(num_train=640, num_test=200)


# ----------------------------------------------------------------- grid, profiles
def test_grid_matches_the_article_table():
    table = [(r.run_id, r.dropout, r.bn_conv, r.bn_dense) for r in E.GRID]
    assert table == [
        (0, 0.0, False, False), (1, 0.2, False, False), (2, 0.4, False, False),
        (3, 0.0, True, False), (4, 0.2, True, False), (5, 0.4, True, False),
        (6, 0.0, False, True), (7, 0.2, False, True), (8, 0.4, False, True),
        (9, 0.0, True, True), (10, 0.2, True, True), (11, 0.4, True, True)]


def test_unknown_run_id():
    with pytest.raises(ValueError, match="unknown run id 12"):
        E.get_run(12)


def test_profiles_and_overrides(monkeypatch):
    assert E.get_profile("article").epochs == 400
    assert E.get_profile("article").eval_every == 50
    assert E.get_profile("book", epochs=3).epochs == 3
    assert E.get_profile("book").steps_per_epoch == 390
    monkeypatch.setenv(E.PROFILE_ENV_VAR, "smoke")
    assert E.get_profile().profile == "smoke"
    with pytest.raises(ValueError, match="unknown profile 'fast'.*smoke, book, article"):
        E.get_profile("fast")
    with pytest.raises(ValueError, match="epochs must be at least 1"):
        E.get_profile("smoke", epochs=0)


def test_subset_is_balanced(synthetic):
    protocol = E.get_profile("smoke", train_size=100, test_size=50)
    x_train, y_train, x_test, y_test = E.subset(synthetic, protocol)
    assert np.bincount(y_train).tolist() == [10] * 10
    assert np.bincount(y_test).tolist() == [5] * 10


# ----------------------------------------------------------------- one run
def test_run_writes_a_complete_result(tmp_path, synthetic):
    result = E.run_one(11, 0, TINY, synthetic, results_dir=tmp_path)
    saved = json.loads((tmp_path / "run11-seed0.json").read_text())
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


def test_same_seed_same_curve(tmp_path, synthetic):
    first = E.run_one(9, 3, TINY, synthetic, results_dir=tmp_path / "a")
    second = E.run_one(9, 3, TINY, synthetic, results_dir=tmp_path / "b")
    assert first["curve"] == second["curve"]


def test_train_run_is_run_one_in_memory(tmp_path, synthetic, monkeypatch):
    """The notebooks' in-memory training is the runner's, step for step."""
    on_disk = E.run_one(9, 2, TINY, synthetic, results_dir=tmp_path / "runs",
                        bn_kernel="manual")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    in_memory = E.train_run(9, 2, TINY, synthetic, bn_layer="manual")
    np.testing.assert_array_equal(in_memory.curve, np.array(on_disk["curve"]))
    assert in_memory.model.get_layer("bn_dense1").moving_variance.numpy().std() > 0
    assert not list((tmp_path / "cwd").iterdir())   # no result file, no checkpoint


def test_train_run_takes_a_layer_factory_and_stops_at_a_nan(synthetic):
    from bnlib import layers

    made = []

    def counting_layer(name, momentum, epsilon):
        made.append((name, momentum, epsilon))
        return layers.manual_batch_norm(name, momentum, epsilon)

    E.train_run(9, 0, TINY, synthetic, bn_layer=counting_layer)
    assert [m[0] for m in made] == ["bn_conv1", "bn_conv2", "bn_dense1"]
    assert {m[1:] for m in made} == {(TINY.bn_momentum, TINY.bn_epsilon)}

    exploding = dataclasses.replace(TINY, learning_rate=1e12)
    with pytest.raises(E.Diverged, match="Lower the learning rate"):
        E.train_run(0, 0, exploding, synthetic)
    with pytest.raises(ValueError, match="bn_kernel must be one of"):
        E.train_run(9, 0, TINY, synthetic, bn_layer="batchnorm")


def test_finished_runs_are_skipped(tmp_path, synthetic):
    first = E.run_one(0, 0, TINY, synthetic, results_dir=tmp_path)
    calls = []
    again = E.run_one(0, 0, TINY, synthetic, results_dir=tmp_path,
                      progress=lambda *a: calls.append(a))
    assert again == json.loads(json.dumps(first)) and not calls


def test_interrupted_run_resumes_at_its_last_epoch(tmp_path, synthetic):
    protocol = E.get_profile("smoke", epochs=3, steps_per_epoch=3, eval_every=3,
                             train_size=640, test_size=200)
    reference = E.run_one(11, 0, protocol, synthetic, results_dir=tmp_path / "ref")

    def interrupt_in_epoch_three(step, total, acc):
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        E.run_one(11, 0, protocol, synthetic, results_dir=tmp_path / "cut",
                  progress=interrupt_in_epoch_three)
    partial = json.loads((tmp_path / "cut" / "run11-seed0.json").read_text())
    assert partial["status"] == "running" and partial["epochs_done"] == 2
    assert (tmp_path / "cut" / "checkpoints" / "run11-seed0.npz").exists()

    # a crash after the checkpoint but before the JSON: the JSON lags an epoch
    lagging = dict(partial, epochs_done=1, curve=partial["curve"][:1])
    E.write_json_atomic(tmp_path / "cut" / "run11-seed0.json", lagging)

    resumed = E.run_one(11, 0, protocol, synthetic, results_dir=tmp_path / "cut")
    assert resumed["status"] == "complete" and resumed["resumed_at_epoch"] == 2
    assert [p[0] for p in resumed["curve"]] == [3, 6, 9]
    # model, optimizer and dropout state were restored: the curve is the same
    np.testing.assert_allclose(np.array(resumed["curve"]),
                               np.array(reference["curve"]), rtol=1e-5, atol=1e-6)


def test_nan_loss_marks_the_run_diverged_and_the_grid_goes_on(tmp_path, synthetic):
    exploding = E.get_profile("smoke", epochs=2, steps_per_epoch=3, eval_every=3,
                              train_size=640, test_size=200, learning_rate=1e12)
    results = E.run_grid(exploding, run_ids=[0, 9], results_dir=tmp_path,
                         data=synthetic)
    by_id = {r["run_id"]: r for r in results}
    assert set(by_id) == {0, 9}
    assert by_id[0]["status"] == "diverged"
    assert by_id[0]["diverged_at_step"] >= 1
    # the other run still ran to its end (diverged or complete, but finished)
    assert by_id[9]["status"] in ("diverged", "complete")


def test_protocol_mismatch_is_refused(tmp_path, synthetic):
    E.run_one(0, 0, TINY, synthetic, results_dir=tmp_path)
    other = E.get_profile("smoke", epochs=3, steps_per_epoch=3, eval_every=3,
                          train_size=640, test_size=200)
    with pytest.raises(ValueError, match="another protocol"):
        E.run_one(0, 0, other, synthetic, results_dir=tmp_path)


def test_corrupt_result_file_names_the_fix(tmp_path):
    (tmp_path / "run00-seed0.json").write_text("{not json")
    with pytest.raises(ValueError, match="delete it"):
        E.load_results(tmp_path)


def test_parallel_workers_write_the_same_files(tmp_path):
    """Two worker processes share the queue; every task ends in a result."""
    results = E.run_grid(TINY, source="synthetic", run_ids=[0, 3, 6],
                         results_dir=tmp_path, workers=2)
    assert sorted(r["run_id"] for r in results) == [0, 3, 6]
    assert all(r["status"] == "complete" for r in results)
    assert all(r["environment"]["parallel_workers"] == 2 for r in results)


# ----------------------------------------------------------------- CLI
def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "bnlib", *args], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def test_cli_list_and_help():
    listing = run_cli("list")
    assert listing.returncode == 0 and "BN conv+dense, dropout 0.4" in listing.stdout
    assert run_cli("run", "--help").returncode == 0


@pytest.mark.parametrize("args, message", [
    (["run", "--profile", "fast"], "unknown profile"),
    (["run", "--profile", "smoke", "--runs", "14", "--data", "synthetic"],
     "unknown run id 14"),
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
    results = E.load_results(tmp_path)
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
    result_file = tmp_path / "run09-seed0.json"
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
    protocol = E.get_profile("smoke", epochs=2)
    config = E.get_run(9)
    reference = np.array(keras_fit_curve(config, protocol, data, seed=0))
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        keras_layer = np.array(E.run_one(9, 0, protocol, data, results_dir=tmp,
                                         bn_kernel="keras")["curve"])
    with tempfile.TemporaryDirectory() as tmp:
        fused = np.array(E.run_one(9, 0, protocol, data, results_dir=tmp)["curve"])
    np.testing.assert_allclose(keras_layer, reference, rtol=1e-4, atol=1e-4)
    # fused kernel: same function up to float round-off, which training amplifies
    assert abs(fused[0, 2] - reference[0, 2]) / reference[0, 2] < 0.01
    np.testing.assert_allclose(fused[:, 2], reference[:, 2], rtol=0.1)
    assert np.max(np.abs(fused[:, 4] - reference[:, 4])) < 0.1


def test_fused_adam_is_the_same_update_as_keras_adam(synthetic):
    """ResourceApplyAdam on the Keras optimizer's slots = Keras' own Adam."""
    import keras

    from bnlib.models import build_cnn

    protocol = E.get_profile("smoke", train_size=640, test_size=200)
    x_train, y_train, x_test, y_test = E.subset(synthetic, protocol)
    trainers = {}
    for kernel in E.ADAM_KERNELS:
        keras.utils.set_random_seed(5)
        model = build_cnn(True, True, 0.0)
        trainers[kernel] = E.Trainer(model, protocol, x_train, y_train, x_test,
                                     y_test, adam_kernel=kernel)
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
        E.Trainer(build_cnn(), protocol, x_train, y_train, x_test, y_test,
                  adam_kernel="sgd")


def test_resuming_on_other_data_is_refused(tmp_path, synthetic):
    protocol = E.get_profile("smoke", epochs=3, steps_per_epoch=3, eval_every=3,
                             train_size=640, test_size=200)

    def stop_in_epoch_two(step, total, acc):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        E.run_one(0, 0, protocol, synthetic, results_dir=tmp_path,
                  progress=stop_in_epoch_two)
    other = synthetic_cifar10(num_train=640, num_test=200)
    other_prov = dataclasses.replace(other.provenance, sha256="another copy")
    other = dataclasses.replace(other, provenance=other_prov)
    with pytest.raises(ValueError, match="started on other data"):
        E.run_one(0, 0, protocol, other, results_dir=tmp_path)
