"""The article's TF1 graph (bnlib.tf1): build, UPDATE_OPS, training, coexistence."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

warnings.filterwarnings("ignore", message=".*tf.layers.* is deprecated")
from bnlib import tf1  # noqa: E402  (sets TF_USE_LEGACY_KERAS if still possible)
from bnlib.data import synthetic_cifar10  # noqa: E402
from bnlib.config import ARTICLE, get_profile  # noqa: E402
from bnlib.training import Trainer  # noqa: E402
from bnlib.models import expected_param_count  # noqa: E402

GRID = ARTICLE.runs
pytestmark = pytest.mark.filterwarnings("ignore:.*tf.layers.* is deprecated")

TINY = get_profile("smoke", epochs=1, steps_per_epoch=4, eval_every=2, batch_size=32,
                   train_size=None, test_size=None)


@pytest.fixture(scope="module")
def data():
    return synthetic_cifar10(num_train=160, num_test=100, seed=1)


def trainer(data, run_id=9, protocol=TINY, **kwargs):
    kwargs.setdefault("seed", 0)
    return tf1.TF1Trainer(GRID[run_id], protocol, data.x_train, data.y_train,
                          data.x_test, data.y_test, threads=1, **kwargs)


@pytest.mark.parametrize("run", GRID, ids=lambda r: r.name)
def test_graph_builds_with_the_article_param_count(run):
    net = tf1.build_graph(run, seed=0)
    assert net.num_params == expected_param_count(run.bn_conv, run.bn_dense)
    bn_layers = 2 * run.bn_conv + run.bn_dense
    assert len(net.moving_variables) == 2 * bn_layers  # mean and variance each
    assert len(net.update_ops) == 2 * bn_layers
    assert net.logits.shape.as_list() == [None, 10]


def test_bn_layers_use_the_tf_layers_defaults():
    import inspect

    signature = inspect.signature(tf1.tf1.layers.batch_normalization)
    assert signature.parameters["momentum"].default == GRID[9].bn_momentum == 0.99
    assert signature.parameters["epsilon"].default == GRID[9].bn_epsilon == 1e-3


def fused_kernel_count(run_id):
    """FusedBatchNormV3 ops (they sit in the branches of `training`'s cond)."""
    library = tf1.build_graph(GRID[run_id]).graph.as_graph_def().library
    return sum(node.op == "FusedBatchNormV3"
               for function in library.function for node in function.node_def)


def test_conv_bn_uses_the_fused_kernel_dense_bn_does_not():
    assert fused_kernel_count(3) == 4  # 2 conv BN layers x (training, inference)
    assert fused_kernel_count(6) == 0  # the 2-D dense input takes the plain path


def test_update_ops_move_the_statistics_and_leave_training_alone(data):
    index = np.arange(32, dtype=np.int32)
    results = {}
    for flag in (True, False):
        with trainer(data, use_update_ops=flag) as t:
            before = t.moving_statistics()
            losses = [t.train_step(index + 32 * k) for k in range(2)]
            results[flag] = (before, t.moving_statistics(), losses)
    for name, value in results[True][0].items():  # initial values: 0 and 1
        assert np.all(value == (0.0 if name.endswith("moving_mean") else 1.0))
    with_ops, without_ops = results[True][1], results[False][1]
    for name in with_ops:
        init = 0.0 if name.endswith("moving_mean") else 1.0
        assert not np.allclose(with_ops[name], init), name
        assert np.all(without_ops[name] == init), name  # the article's warning
    # the updates are side effects: the training trajectory is the same
    assert results[True][2] == results[False][2]


def test_momentum_update_formula(data):
    """After one step: moving = 0.99 * initial + 0.01 * batch statistic."""
    index = np.arange(32, dtype=np.int32)
    with trainer(data, run_id=6) as t:  # BN on the dense layer only
        graph = t.net.graph
        bn_input = graph.get_tensor_by_name("dense/Relu:0")
        h = t.session.run(bn_input, {t.net.x: data.x_train[index].astype(np.float32)})
        t.train_step(index)
        stats = t.moving_statistics()
    np.testing.assert_allclose(stats["batch_normalization/moving_mean"],
                               0.01 * h.mean(axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats["batch_normalization/moving_variance"],
                               0.99 + 0.01 * h.var(axis=0), rtol=1e-4, atol=1e-4)


def test_training_reduces_the_loss(data):
    index = np.arange(32, dtype=np.int32)
    with trainer(data, run_id=9) as t:
        losses = [t.train_step(index)[0] for _ in range(6)]
        accuracy = t.evaluate()
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0]
    assert 0.0 <= accuracy <= 1.0


def test_same_interface_and_shuffles_as_the_keras_trainer(data):
    with trainer(data) as t:
        assert t.num_train == 160
        np.testing.assert_array_equal(t.epoch_order(3, 1),
                                      Trainer.epoch_order(t, 3, 1))
        order = t.epoch_order(0, 0)
        assert order.dtype == np.int32 and len(order) == 4 * 32
        loss, correct = t.train_step(order[:32])
        assert isinstance(loss, float) and isinstance(correct, int)
        assert 0 <= correct <= 32
        assert isinstance(t.evaluate(), float)


def test_train_tf1_returns_a_run_one_style_curve(data):
    result = tf1.train_tf1(GRID[11], TINY, data, seed=0, use_update_ops=False)
    assert result["status"] == "complete"
    assert result["curve_columns"] == ["step", "epoch", "train_loss", "train_acc",
                                       "test_acc"]
    assert [row[:2] for row in result["curve"]] == [[2, 0.5], [4, 1.0]]
    assert result["final_test_acc"] == result["curve"][-1][4]
    assert result["num_params"] == expected_param_count(True, True)
    assert result["runner"]["use_update_ops"] is False
    assert result["name"] == "bn-both-d4" and result["config"] == GRID[11].to_dict()
    assert all(np.all(v == 0) for k, v in result["moving_stats"].items()
               if k.endswith("moving_mean"))
    assert result["timing"]["train_images_per_second"] > 0


def test_same_seed_same_run(data):
    index = np.arange(32, dtype=np.int32)
    runs = []
    for _ in range(2):
        with trainer(data, run_id=10, seed=5) as t:  # dropout too
            runs.append([t.train_step(index) for _ in range(2)])
    assert runs[0] == runs[1]


def test_keras_3_still_works_in_the_same_process(data):
    import keras
    import tensorflow as tf

    from bnlib import models

    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert keras.__version__.startswith("3.")
    assert type(tf.compat.v1.layers.batch_normalization).__module__ != "keras"
    assert tf.compat.v1.layers.batch_normalization.__module__.startswith("tf_keras")
    model = models.build_cnn(True, True, 0.2, seed=0)
    t = Trainer(model, GRID[10], TINY, data.x_train, data.y_train, data.x_test,
                data.y_test)
    loss, _ = t.train_step(np.arange(32, dtype=np.int32))
    assert np.isfinite(float(loss))
    assert not np.allclose(model.get_layer("bn_conv1").moving_mean.numpy(), 0.0)


def test_clear_error_when_tensorflow_came_first():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    code = ("import tensorflow\n"
            "try:\n"
            "    import bnlib.tf1\n"
            "except ImportError as err:\n"
            "    print(type(err).__name__, err)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("LegacyKerasError")
    assert "TF_USE_LEGACY_KERAS=1" in out.stdout


def test_only_the_article_model_is_built():
    with pytest.raises(ValueError, match="input_scaling 'raw'"):
        tf1.build_graph(GRID[9].replace(input_scaling="unit"))
    with pytest.raises(ValueError, match="Batch Normalization only"):
        tf1.build_graph(GRID[9].replace(norm_conv="layer"))
