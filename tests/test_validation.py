"""Bad protocol input: every flag of ``python -m bnlib run`` and every library
entry point the notebooks use gives either something valid or one clear refusal
(one ``error:`` line naming the flag, exit code 2, nothing written); a result
records exactly what was trained, and a run that blows up is ``diverged``.

The property tests draw flag values in range, at the edges, out of range, of the
wrong type, NaN/inf and empty. Validation runs in-process (``main(argv)``)
with the training stubbed out, so hundreds of command lines take seconds; a few
accepted draws are then really trained, on synthetic data, for a few steps.
"""

import contextlib
import dataclasses
import io
import json
import math
import os
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bnlib.__main__ as cli
from bnlib import config as C
from bnlib import data as D
from bnlib import runner as R
from bnlib import training as T

ROOT = Path(__file__).resolve().parents[1]
CORES = os.cpu_count() or 1
SYNTHETIC = D.synthetic_cifar10()  # what --data synthetic loads: 5,000 / 1,000
PLENTY = 64 << 30  # memory the property tests pretend to have (tested apart)
# deterministic draws: the same examples in CI and here (the machine is slow)
QUICK = dict(deadline=None, database=None, derandomize=True,
             suppress_health_check=[HealthCheck.too_slow])
PROTOCOL_FLAGS = {"--epochs": "epochs", "--eval-every": "eval_every",
                  "--steps-per-epoch": "steps_per_epoch", "--batch-size": "batch_size",
                  "--train-size": "train_size", "--test-size": "test_size",
                  "--seeds": "seeds"}
INT_FLAGS = (*PROTOCOL_FLAGS, "--workers", "--threads")


def call(argv):
    """``main(argv)`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    handler = signal.getsignal(signal.SIGTERM)  # cmd_run installs its own
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
    finally:
        signal.signal(signal.SIGTERM, handler)
    return code, out.getvalue(), err.getvalue()


def assert_one_error_line(code, stderr, flags=()):
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    if flags:  # names one of the flags given
        assert any(flag in lines[0] for flag in flags), (flags, lines[0])


# ----------------------------------------------------------------- the oracle
def whole(text):
    """A whole number as the README promises to read it, else None."""
    if re.fullmatch(r"\s*[+-]?[0-9]+\s*", text, re.ASCII):
        return int(text)
    return None


def expected_run(flags):
    """What ``flags`` ask for (grid, protocol, run ids, workers, threads) by
    the rules the README states, or None if some flag must be refused. Data:
    synthetic (5,000 train / 1,000 test images)."""
    grid = C.GRIDS.get(flags.get("--grid", "article"))
    if grid is None:
        return None
    profile = C.PROFILES.get(flags.get("--profile", grid.profile))
    if profile is None:
        return None
    numbers = {}
    for flag in INT_FLAGS:
        if flag in flags:
            numbers[flag] = whole(flags[flag])
            if numbers[flag] is None:
                return None
    protocol = dataclasses.replace(profile, **{
        field: numbers[flag] for flag, field in PROTOCOL_FLAGS.items()
        if flag in numbers})
    p = protocol
    train_images = p.train_size or len(SYNTHETIC.x_train)
    rules = [
        p.epochs >= 1, p.steps_per_epoch >= 1, 1 <= p.seeds <= 1000,
        1 <= p.batch_size <= min(50_000, train_images),
        p.train_size is None or (p.batch_size <= p.train_size <= 5000
                                 and p.train_size % 10 == 0),
        p.test_size is None or (10 <= p.test_size <= 1000 and p.test_size % 10 == 0),
        p.steps_per_epoch * p.batch_size <= 10_000_000,
        1 <= p.eval_every <= p.total_steps,
        p.total_steps // max(p.eval_every, 1) <= 100_000,
        1 <= numbers.get("--workers", 1) <= CORES,
        numbers.get("--threads") is None or 1 <= numbers["--threads"] <= CORES,
    ]
    if not all(rules):
        return None
    changes = {}
    if "--learning-rate" in flags:
        try:
            rate = float(flags["--learning-rate"])
        except ValueError:
            return None
        if not (math.isfinite(rate) and 0 < rate <= 10):
            return None
        changes["learning_rate"] = rate
    if "--bn-position" in flags:
        position = flags["--bn-position"]
        if position not in ("after_relu", "before_relu"):
            return None
        if position == "before_relu" and any(
                r.norm_conv == r.norm_dense == "none" for r in grid.runs):
            return None  # BN before the ReLU of a run without BN
        changes["bn_position"] = position
    if "--precision" in flags:
        precision = flags["--precision"]
        native = T.cpu_flags() & {"avx512_bf16", "amx_bf16"}
        if precision not in ("float32", "mixed_bfloat16") or (
                precision == "mixed_bfloat16" and not native):
            return None
        changes["precision"] = precision
    run_ids = None
    if "--runs" in flags:
        run_ids = []
        names = {run.name: i for i, run in enumerate(grid.runs)}
        for part in flags["--runs"].split(","):
            part = part.strip()
            span = re.fullmatch(r"([0-9]+)-([0-9]+)", part)
            if part in names:
                run_ids.append(names[part])
            elif re.fullmatch(r"[0-9]+", part) and int(part) < len(grid.runs):
                run_ids.append(int(part))
            elif span and int(span[1]) <= int(span[2]) < len(grid.runs):
                run_ids.extend(range(int(span[1]), int(span[2]) + 1))
            else:
                return None
        run_ids = list(dict.fromkeys(run_ids))
    runs = tuple(dataclasses.replace(run, **changes) for run in grid.runs)
    return (dataclasses.replace(grid, runs=runs), protocol, run_ids,
            numbers.get("--workers", 1), numbers.get("--threads"))


# ----------------------------------------------------------------- the draws
EDGES = [-1, 0, 1, 2, 3, 5, 9, 10, 11, 20, 21, 127, 128, 129, 1000, 1001, 1280,
         5000, 5010, 10_000, 50_000, 50_001, 10**7, 10**12]
JUNK = ["", " ", "abc", "1.5", "1e3", "nan", "inf", "-inf", "0x10", "\u0663",
        "1_0", "--", "3 4", " 7 ", "+5"]
INT_TEXT = st.one_of(st.sampled_from(EDGES).map(str), st.integers(-3, 6000).map(str),
                     st.sampled_from(JUNK))
RATE_TEXT = st.one_of(
    st.sampled_from(["1e-3", "0.01", "10", "10.000001", "0", "-1", "-0.0", "1e-300",
                     "5e-324", "nan", "inf", "-inf", "1e999", "", "abc", "0.1.2"]),
    st.floats(-20, 20).map(repr))
RUNS_TEXT = st.one_of(
    st.sampled_from(["0", "11", "12", "0,3,9-11", "9-11", "11-9", "bn-both-d4",
                     "none-d0,bn-conv-d2", "", ",", "0,,1", "-1", "1--2",
                     "0-99999999999", "bn-all", "0,0", " 3 ", "\uff13"]),
    st.lists(st.integers(0, 13), min_size=1, max_size=3).map(
        lambda ids: ",".join(map(str, ids))))
VALUES = {
    **{flag: INT_TEXT for flag in INT_FLAGS},
    "--learning-rate": RATE_TEXT,
    "--profile": st.sampled_from(["smoke", "book", "long", "article", "", "fast",
                                  "SMOKE", " smoke"]),
    "--grid": st.sampled_from(["article", "inputs", "budget", "lost", ""]),
    "--runs": RUNS_TEXT,
    "--bn-position": st.sampled_from(["after_relu", "before_relu", "", "middle"]),
    "--precision": st.sampled_from(["float32", "mixed_bfloat16", "float16", ""]),
}


@st.composite
def command_lines(draw):
    """A few flags (usually) with drawn values, each as ``--flag value`` or
    ``--flag=value``."""
    chosen = draw(st.lists(st.sampled_from(sorted(VALUES)), max_size=4, unique=True))
    flags = {flag: draw(VALUES[flag]) for flag in chosen}
    argv = []
    for flag, value in flags.items():
        argv += ([f"{flag}={value}"] if draw(st.booleans()) else [flag, value])
    return flags, argv


@contextlib.contextmanager
def validation_only():
    """The CLI up to training: synthetic data from memory, run_grid recorded
    instead of run, memory aplenty (the memory check is tested apart)."""
    calls = []

    def fake_load(source=None, **kwargs):
        assert source == "synthetic"
        return SYNTHETIC

    def fake_run_grid(grid, protocol, **kwargs):
        calls.append((grid, protocol, kwargs))
        return []

    with mock.patch.object(D, "load_cifar10", fake_load), \
            mock.patch.object(R, "run_grid", fake_run_grid), \
            mock.patch.object(C, "_available_memory", lambda: PLENTY), \
            mock.patch.dict(os.environ):
        os.environ.pop(C.PROFILE_ENV_VAR, None)
        yield calls


# ----------------------------------------------------------------- the CLI
@settings(max_examples=150, **QUICK)
@given(drawn=command_lines())
def test_every_flag_is_accepted_as_given_or_refused_in_one_line(drawn,
                                                                tmp_path_factory):
    flags, argv = drawn
    folder = tmp_path_factory.mktemp("cli") / "results"
    with validation_only() as calls:
        code, _, stderr = call(["run", *argv, "--data", "synthetic",
                                "--results-dir", str(folder)])
    assert not folder.exists()  # nothing written, accepted or refused
    wanted = expected_run(flags)
    if wanted is None:
        assert_one_error_line(code, stderr, flags)
        assert not calls
        return
    assert code == 0, stderr
    (grid, protocol, kwargs), = calls
    want_grid, want_protocol, want_ids, workers, threads = wanted
    assert protocol == want_protocol
    assert grid.runs == want_grid.runs and grid.name == want_grid.name
    assert kwargs["run_ids"] == want_ids
    assert kwargs["options"].workers == workers
    assert kwargs["options"].threads == threads
    assert kwargs["results_dir"] == str(folder)


@pytest.mark.parametrize("flags, flag", [
    (["--train-size", "7"], "--train-size"),        # less than one batch
    (["--learning-rate", "-1"], "--learning-rate"),  # trained uphill
    (["--batch-size", "100000"], "--batch-size"),    # segmentation fault
    (["--epochs", "abc"], "--epochs"),
    (["--workers", "0"], "--workers"),
    (["--seeds", "1.5"], "--seeds"),
])
def test_the_issues_examples_exit_2_in_one_line_writing_nothing(tmp_path, flags, flag):
    """As a new user runs them: a process of its own, exit code and stderr."""
    folder = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(C.PROFILE_ENV_VAR, None)
    completed = subprocess.run(
        [sys.executable, "-m", "bnlib", "run", "--profile", "smoke", *flags,
         "--data", "synthetic", "--results-dir", str(folder)],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert_one_error_line(completed.returncode, completed.stderr, [flag])
    assert completed.stdout == ""
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_a_batch_beyond_the_memory_is_refused_before_any_file(tmp_path):
    folder = tmp_path / "results"
    with validation_only() as calls, \
            mock.patch.object(C, "_available_memory", lambda: 3 << 30):
        code, _, stderr = call(["run", "--profile", "smoke", "--batch-size", "5000",
                                "--train-size", "5000", "--data", "synthetic",
                                "--results-dir", str(folder)])
    assert_one_error_line(code, stderr, ["--batch-size"])
    assert "GB available" in stderr and not calls and not folder.exists()
    book = C.get_profile("book")
    with mock.patch.object(C, "_available_memory", lambda: 32 << 30):
        C.check_machine(dataclasses.replace(book, batch_size=20_000))
        with pytest.raises(C.ConfigError, match="batch_size must be at most") as err:
            C.check_machine(dataclasses.replace(book, batch_size=50_000))
    assert err.value.field == "batch_size"


def test_the_runner_checks_the_data_before_touching_a_file(tmp_path):
    """Library callers get the same refusals as the CLI: nothing is created."""
    too_big = C.get_profile("smoke", train_size=10_000, test_size=100)
    with pytest.raises(C.ConfigError, match="train_size must be at most 5,000"):
        R.run_grid("article", too_big, run_ids=[0], data=SYNTHETIC,
                   results_dir=tmp_path / "grid")
    with pytest.raises(C.ConfigError, match="train_size must be at most 5,000"):
        R.run_one(C.ARTICLE.runs[0], 0, too_big, SYNTHETIC,
                  results_dir=tmp_path / "one")
    labels = np.repeat(np.arange(10, dtype=np.int32), [190] + [90] * 9)
    unbalanced = dataclasses.replace(SYNTHETIC, x_train=SYNTHETIC.x_train[:1000],
                                     y_train=labels)
    with pytest.raises(C.ConfigError, match="needs 100 training images of each"):
        C.check_data(C.get_profile("smoke", train_size=1000, test_size=100),
                     unbalanced)
    C.check_data(C.get_profile("smoke", train_size=900, test_size=100), unbalanced)
    with pytest.raises(C.ConfigError, match="workers must be a whole number"):
        R.run_grid("article", C.get_profile("smoke"), run_ids=[0], data=SYNTHETIC,
                   results_dir=tmp_path / "workers",
                   options=T.RunnerOptions(workers=CORES + 1))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- really trained
@st.composite
def tiny_runs(draw):
    """Accepted command lines small enough to train in seconds."""
    batch = draw(st.integers(1, 16))
    train = draw(st.integers(-(-batch // 10), 6)) * 10
    steps, epochs = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    return {"--profile": "smoke", "--threads": "1",
            "--runs": str(draw(st.integers(0, 11))),
            "--batch-size": str(batch), "--train-size": str(train),
            "--test-size": str(draw(st.integers(1, 5)) * 10),
            "--steps-per-epoch": str(steps), "--epochs": str(epochs),
            "--eval-every": str(draw(st.integers(1, steps * epochs))),
            "--learning-rate": draw(st.sampled_from(["1e-4", "1e-3", "0.05"]))}


def train_cli(flags, folder):
    argv = ["run", "--data", "synthetic", "--results-dir", str(folder)]
    for flag, value in flags.items():
        argv += [flag, value]
    with mock.patch.dict(os.environ):
        os.environ.pop(C.PROFILE_ENV_VAR, None)
        return call(argv)


def assert_records_what_was_trained(flags, folder):
    """The one result in ``folder`` says what ``flags`` asked for, and its curve
    and status agree with its own protocol."""
    grid, protocol, run_ids, _, _ = expected_run(flags)
    (path,) = folder.glob("*-s0.json")
    result = json.loads(path.read_text())
    run = grid.runs[run_ids[0]]
    assert result["protocol"] == protocol.curve_fields()
    assert result["config"] == run.to_dict()
    assert result["run_id"] == run_ids[0] and result["seed"] == 0
    assert result["data"]["kind"] == "synthetic"
    total = protocol.total_steps
    steps = [row[0] for row in result["curve"]]
    assert steps == sorted(steps) and all(1 <= s <= total for s in steps)
    if result["status"] == "complete":
        assert steps == [s for s in range(1, total + 1)
                         if s % protocol.eval_every == 0 or s == total]
        assert result["epochs_done"] == protocol.epochs
        assert result["diverged_at_step"] is None
        assert all(math.isfinite(v) for row in result["curve"] for v in row)
    else:
        assert result["status"] == "diverged"
        assert 1 <= result["diverged_at_step"] <= total
        assert all(s < result["diverged_at_step"] for s in steps)
    assert not (folder / "checkpoints").exists() or not any(
        (folder / "checkpoints").iterdir())
    return result


@settings(max_examples=3, **QUICK)
@given(flags=tiny_runs())
def test_accepted_flags_train_what_the_result_records(flags, tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained") / "results"
    code, stdout, stderr = train_cli(flags, folder)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert "1 result(s)" in stdout
    assert_records_what_was_trained(flags, folder)


def test_a_large_learning_rate_is_recorded_diverged_not_complete(tmp_path):
    """The issue's uphill run, with a rate the validation accepts: the loss
    explodes (or turns NaN), the run is ``diverged`` at a recorded step."""
    flags = {"--profile": "smoke", "--threads": "1", "--runs": "0",
             "--learning-rate": "10", "--epochs": "2",
             "--steps-per-epoch": "3", "--eval-every": "3", "--train-size": "640",
             "--test-size": "200"}
    code, stdout, stderr = train_cli(flags, tmp_path / "results")
    assert code == 0, stderr
    assert "1 diverged" in stdout
    result = assert_records_what_was_trained(flags, tmp_path / "results")
    assert result["status"] == "diverged"
    assert result["diverged_at_step"] >= 1
    assert "final_test_acc" not in result


# ----------------------------------------------------------------- library entry points
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.sampled_from(EDGES), st.integers(-3, 3000),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(JUNK),
    st.just([128]))


@settings(max_examples=200, **QUICK)
@given(name=st.sampled_from(["smoke", "book", "long", "article", "", "fast", 3]),
       overrides=st.dictionaries(
           st.sampled_from([f.name for f in dataclasses.fields(C.Protocol)]
                           + ["bogus"]), ANY_VALUE, max_size=4))
def test_get_profile_returns_a_valid_protocol_or_names_the_field(name, overrides):
    try:
        protocol = C.get_profile(name, **overrides)
    except C.ConfigError as err:
        assert err.field and err.field in str(err)
        return
    assert C.validate_protocol(protocol) is protocol
    for field, value in overrides.items():
        if value is not None:
            assert getattr(protocol, field) == value
            assert type(getattr(protocol, field)) is int


CONFIG_VALUES = {
    "name": st.sampled_from(["x", "ok-1", "", "Bad Name", None, 3]),
    "dropout": ANY_VALUE, "learning_rate": ANY_VALUE, "momentum": ANY_VALUE,
    "bn_momentum": ANY_VALUE, "bn_epsilon": ANY_VALUE, "adam_epsilon": ANY_VALUE,
    "adam_beta_1": st.floats(-1, 2), "adam_beta_2": ANY_VALUE,
    "norm_conv": st.sampled_from([*C.NORM_KINDS, "", "BN", None, 1]),
    "norm_dense": st.sampled_from([*C.NORM_KINDS, "", "BN", None, 1]),
    "bn_position": st.sampled_from([*C.BN_POSITIONS, "", ["after_relu"]]),
    "input_scaling": st.sampled_from([*C.INPUT_SCALINGS, "centre", None]),
    "optimizer": st.sampled_from([*C.OPTIMIZERS, "rmsprop", ""]),
    "precision": st.sampled_from([*C.PRECISIONS, "float16", ""]),
    "model": st.sampled_from([*C.MODELS, "resnet"]),
    "ghost_size": st.one_of(st.none(), st.integers(-2, 130),
                            st.sampled_from([True, 2.0, "4"])),
    "groups": st.one_of(st.none(), st.integers(-2, 70), st.sampled_from([2.0, "4"])),
    "probes": st.one_of(
        st.lists(st.sampled_from(["activation_input:conv1", "activation_input:dense1",
                                  "activation_input:x", "bogus", "", 5])).map(tuple),
        st.just(["activation_input:conv1"])),
    "bogus": st.just(1),
}


@settings(max_examples=200, **QUICK)
@given(base=st.sampled_from(C.ARTICLE.runs),
       changes=st.fixed_dictionaries({}, optional=CONFIG_VALUES))
def test_run_config_replace_returns_a_valid_config_or_names_the_field(base, changes):
    fields = [f.name for f in dataclasses.fields(C.RunConfig)]
    try:
        config = base.replace(**changes)
        C.validate_config(config, C.get_profile("book"))
    except C.ConfigError as err:
        assert err.field in fields + ["bogus"], err
        assert "\n" not in str(err)
        assert any(field.split("_")[0] in str(err) for field in fields + ["bogus"])
        return
    for field, value in changes.items():
        assert getattr(config, field) == value


@pytest.fixture(scope="module")
def tiny_python_batches(tmp_path_factory):
    """An official-layout copy with 2 training and 1 test image per class."""
    root = tmp_path_factory.mktemp("tiny") / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)

    def dump(name, per_class, start, stop):
        labels = np.repeat(np.arange(10), per_class)[start:stop]
        images = rng.integers(0, 256, size=(len(labels), 3 * 32 * 32), dtype=np.uint8)
        with open(root / name, "wb") as handle:
            pickle.dump({b"data": images, b"labels": labels.tolist()}, handle)

    for i in range(5):
        dump(f"data_batch_{i + 1}", 2, 4 * i, 4 * i + 4)
    dump("test_batch", 1, 0, 10)
    return root


@settings(max_examples=40, **QUICK)
@given(sizes=st.one_of(st.none(), st.tuples(st.sampled_from([0, 1, 10, 20, 21]),
                                            st.sampled_from([-1, 10, 11])),
                       st.sampled_from([(20, 10), [20, 10], (20.0, 10), (True, 10),
                                        "ab", (20,), (20, 10, 1), (np.int64(20), 10)])))
def test_load_cifar10_sizes_give_the_data_or_a_clear_error(sizes, tiny_python_batches):
    try:
        data = D.load_cifar10(tiny_python_batches, use_cache=False, sizes=sizes)
    except D.DataError as err:  # the copy is not of the sizes asked for
        assert "images" in str(err)
        return
    except ValueError as err:  # the sizes themselves are not sizes
        assert str(err).startswith("sizes must be")
        return
    assert (len(data.x_train), len(data.x_test)) == (20, 10)
    assert sizes is None or tuple(sizes) == (20, 10)
