"""Chapter 06 (BN and the optimizer): the drift numbers of Figure 1, the
learning-rate map, the one-step measurement, and the committed notebook's
findings against the committed result files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bnlib import optimizer, plots
from bnlib.config import GRIDS, get_profile
from bnlib.probes import PROBE_SAMPLE
from bnlib.runner import chapter_results_dir, load_results, previous_result

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_optimizer.ipynb"
COLUMNS = (["step"] + [f"{w}_p{p}" for w in ("unit", "all", "median")
                       for p in (15, 50, 85)])


def fake_figure1(normalized: bool, seed: int, median_end: float, spread_end: float,
                 accuracy: float) -> dict:
    """20 evaluations; the unit's median moves linearly from 0 to
    ``median_end`` and its 15-85 spread from 2 to ``spread_end``."""
    rows, curve = [], []
    for i in range(1, 21):
        t = (i - 1) / 19
        median, half = t * median_end, (2 + t * (spread_end - 2)) / 2
        unit = [median - half, median, median + half]
        rows.append([500 * i] + unit * 3)
        curve.append([500 * i, i / 2, 1.0, 0.5, accuracy])
    return {"name": "mlp-bn" if normalized else "mlp-none", "seed": seed,
            "status": "complete", "run_id": int(normalized), "curve": curve,
            "config": {"norm_dense": "batch" if normalized else "none"},
            "probes": {optimizer.FIGURE1_PROBE: rows},
            "probe_columns": {optimizer.FIGURE1_PROBE: COLUMNS},
            "probe_sample": PROBE_SAMPLE, "data": {"kind": "folder"}}


def test_drift_numbers_by_hand():
    result = fake_figure1(False, 0, median_end=-3.0, spread_end=4.0, accuracy=0.4)
    drift = optimizer.drift(result)
    # first tenth: evaluations at steps 500 and 1000 (<= 1000); last: 9500, 10000
    assert drift["median_first"] == pytest.approx(-3.0 * (0 + 1) / 19 / 2)
    assert drift["median_last"] == pytest.approx(-3.0 * (18 + 19) / 19 / 2)
    spread_first = 2 + 2 * (0 + 1) / 19 / 2
    assert drift["spread_first"] == pytest.approx(spread_first)
    assert drift["relative_shift"] == pytest.approx(
        abs(drift["median_last"] - drift["median_first"]) / spread_first)
    assert drift["spread_ratio"] == pytest.approx(drift["spread_last"] / spread_first)


def test_figure1_verdicts_and_words():
    results = ([fake_figure1(False, s, -3.0 - s / 10, 4.0, 0.40 + s / 100) for s in range(3)]
               + [fake_figure1(True, s, 0.2 + s / 10, 2.1, 0.45 + s / 100)
                  for s in range(3)])
    verdicts = optimizer.drift_verdicts(results)
    assert verdicts["accuracy"]["verdict"] == plots.CLEAR
    assert verdicts["relative_shift"]["verdict"] == plots.CLEAR
    assert verdicts["spread_change"]["verdict"] == plots.CLEAR
    text = optimizer.figure1_findings(results)
    assert "reaches 0.460 (last five evaluations, mean of 3 seeds) against 0.410" in text
    assert text.count("every seed of BN above every seed of no BN") == 1  # accuracy
    assert text.count("does BN's move less? yes: every seed of BN below every seed "
                      "of no BN") == 2  # the shifts
    assert text.count("does BN's change less? yes: every seed of BN closer to 1 than "
                      "every seed of no BN") == 2
    one_seed = [r for r in results if r["seed"] == 0]
    assert "clear" not in optimizer.figure1_findings(one_seed).replace(
        "no spread", "")
    assert optimizer.figure1_findings(results[:3]).startswith("**PRELIMINARY")


def fake_map(optimizer_name: str, norm: str, rate: float, accuracy: float | None):
    curve = [[195 * i, i / 2, 1.0, 0.5, accuracy or 0.1] for i in range(1, 7)]
    return {"name": f"{optimizer_name}-{norm}-lr{rate:g}", "seed": 0,
            "status": "complete" if accuracy is not None else "diverged",
            "diverged_at_step": None if accuracy is not None else 42,
            "config": {"norm_dense": norm, "learning_rate": rate,
                       "optimizer": optimizer_name},
            "curve": curve if accuracy is not None else curve[:1],
            "probe_sample": PROBE_SAMPLE, "data": {"kind": "folder"}}


def test_learning_rate_map_by_hand():
    none = {0.01: 0.40, 0.03: 0.50, 0.1: 0.46, 0.3: None, 1.0: None}
    bn = {0.01: 0.45, 0.03: 0.55, 0.1: 0.60, 0.3: 0.58, 1.0: 0.30}
    results = ([fake_map("sgd", "none", r, a) for r, a in none.items()]
               + [fake_map("sgd", "batch", r, a) for r, a in bn.items()])
    rows = optimizer.rate_rows(results)
    best = optimizer.best_rates(rows)
    assert (best["none"]["learning_rate"], best["batch"]["learning_rate"]) == (0.03, 0.1)
    assert optimizer.usable_range(rows, "none") == (0.03, 0.1)   # >= 0.45
    assert optimizer.usable_range(rows, "batch") == (0.03, 0.3)  # >= 0.54
    text = optimizer.map_findings(results)
    assert "Best rate 0.03 (test accuracy 0.500 after 3 epochs)" in text
    assert "diverged at 0.3, 1" in text
    assert "BN's best rate is 3.33333 times" in text
    assert "at the rate best for no BN, BN reaches 0.550 against 0.500" in text
    diverged = next(row for row in rows if row["accuracy"] is None)
    assert diverged["diverged_at_step"] == 42


def test_a_partial_map_lists_its_rates():
    results = [fake_map("sgd", "none", 0.001, 0.55), fake_map("sgd", "batch", 0.001, 0.65),
               fake_map("sgd", "none", 0.003, None)]
    text = optimizer.map_findings(results)
    assert text.startswith("- **PRELIMINARY:** 3 of the map's 14 runs are finished")
    assert "- **no BN, SGD, rates trained so far.** 0.001: 0.550; 0.003: diverged." in text
    assert "- **BN, SGD, rates trained so far.** 0.001: 0.650." in text
    assert "Best rate 0" not in text and "The two best rates" not in text
    assert optimizer.adam_findings([fake_map("adam", "none", 1e-3, 0.6)]) == \
        "- **Adam.** 0.001: no BN 0.600."
    assert optimizer.adam_findings([]).startswith("**PRELIMINARY:**")


def test_one_step_in_words():
    def measured(cosine, ratios):
        return {"ratios": ratios, "step_sizes": [0.01, 0.1, 10.0], "loss": 2.3,
                "gradient_norm": 1.0, "gradient_cosine": cosine}
    one_step = {"none": [measured(-0.1, [1.01, 2.0, 50.0]), measured(-0.2, [1.02, 3.0, 70.0])],
                "batch": [measured(0.3, [0.98, 1.10, 5.0]), measured(-0.1, [0.99, 1.30, 7.0])]}
    text = optimizer.one_step_findings(one_step)
    assert ("- **no BN.** The batch gradient's cosine with the other images' gradient is "
            "-0.15 (seeds -0.20 to -0.10: every seed the same sign). No step size lowers "
            "the loss on the other images; at η = 10 the loss is 60 times what it was.") in text
    assert ("(seeds -0.10 to +0.30: not every seed the same sign). Steps up to η = 0.01 "
            "lower the loss on the other images (to 0.985 of its value at best, at "
            "η = 0.01); ten times that step (η = 0.1) takes it to 1.2 times; at η = 10 "
            "the loss is 6 times what it was.") in text
    assert "**Both.**" not in text  # no step helps the network without BN
    # both helped by η = 0.01: the loss at ten times that step, side by side
    one_step["none"] = [measured(-0.1, [0.99, 2.0, 50.0]), measured(-0.2, [0.98, 3.0, 70.0])]
    text = optimizer.one_step_findings(one_step)
    assert text.endswith("- **Both.** At η = 0.1, ten times the best step of both, the "
                         "loss grows less for BN's network (1.2 with BN against 2.5 "
                         "without BN); at η = 10, for BN's (6 with BN against 60 "
                         "without BN).")


def test_map_accuracy_is_the_last_epochs_mean():
    result = fake_map("sgd", "none", 0.1, 0.5)
    result["curve"][-1][4] = 0.7  # epochs 2.5 and 3.0 form the last epoch
    assert optimizer.map_accuracy(result) == pytest.approx((0.5 + 0.7) / 2)


def test_one_step_leaves_the_model_as_it_was():
    from bnlib.config import RunConfig
    from bnlib.data import synthetic_cifar10
    from bnlib.training import build_run_model

    data = synthetic_cifar10(num_train=384, num_test=10)
    model = build_run_model(RunConfig("s", norm_conv="batch", norm_dense="batch",
                                      input_scaling="unit"), 0)
    before = [v.numpy().copy() for v in model.variables]
    measured = optimizer.step_loss_ratios(
        model, data.x_train[:128], data.y_train[:128], data.x_train[128:],
        data.y_train[128:], [1e-6, 1e3])
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, model.variables))
    assert measured["ratios"][0] == pytest.approx(1.0, abs=1e-3)
    assert measured["gradient_norm"] > 0 and measured["loss"] > 0
    summary = optimizer.one_step_summary([measured])
    assert summary["ratio_at_largest"] == measured["ratios"][-1]


def fake_followup(norm: str, rate: float, seed: int, accuracies: list[float],
                  status: str = "complete"):
    """A 15-epoch follow-up run: one evaluation per epoch (390 steps)."""
    result = fake_map("sgd", norm, rate, None if status == "diverged" else 0.5)
    result["seed"] = seed
    result["curve"] = [[390 * (i + 1), i + 1, 1.0, 0.5, a] for i, a in enumerate(accuracies)]
    return result


RATES = {"none": 0.03, "batch": 0.1, "batch_highest": 0.3}


def test_followup_by_hand():
    rising = [0.30, 0.45, 0.55, 0.61, 0.64, 0.66, 0.67]
    slow = [0.20, 0.30, 0.40, 0.50, 0.58, 0.59, 0.59]
    results = [fake_followup("none", 0.03, 0, slow), fake_followup("none", 0.03, 1,
                                                                 slow[:4] + [0.61] * 3),
               fake_followup("batch", 0.1, 0, rising), fake_followup("batch", 0.1, 1, rising),
               fake_followup("batch", 0.03, 0, rising),
               fake_followup("batch", 0.03, 1, rising, status="diverged")]
    rows = {row["role"]: row for row in optimizer.followup_rows(results, 0.60, RATES)}
    assert list(rows) == ["none-best", "bn-best", "bn-at-none-best"]  # no 0.3 run yet
    # seed 0 without BN never reaches 0.60; seed 1 does at its 5th evaluation
    assert rows["none-best"]["steps_to_target"] == [None, 1950.0]
    assert rows["bn-best"]["steps_to_target"] == [1560.0, 1560.0]
    assert rows["bn-at-none-best"]["seeds"] == 1
    assert rows["bn-at-none-best"]["diverged"] == [1]
    assert rows["none-best"]["accuracy"] == pytest.approx(
        [np.mean(slow[-5:]), np.mean([0.40, 0.50, 0.61, 0.61, 0.61])])
    verdicts = optimizer.followup_verdicts(results, 0.60, RATES)
    assert verdicts["bn-best"]["accuracy"]["verdict"] == plots.CLEAR
    assert verdicts["bn-best"]["steps"]["verdict"] == plots.CLEAR  # 1560 < 1950, never
    assert verdicts["bn-at-none-best"]["steps"]["verdict"] == plots.ONE_SEED
    text = optimizer.followup_findings(results, planned=6, target=0.60, rates=RATES)
    assert "PRELIMINARY" not in text
    assert "Steps to 0.60: 1560 [1560,\u00a01560] against 1950; 1 of 2 seeds not within 2,730 steps" in text
    assert "BN at its best rate (0.1) against no BN at its best rate (0.03)" in text
    assert "BN's mean curve passes no BN's final accuracy after 1,170 steps (3.0 epochs)" in text
    assert "(+1 diverged)" in str(optimizer.followup_table(list(rows.values())))
    partial = optimizer.followup_findings(results[:2], planned=6, rates=RATES)
    assert partial.startswith("- **PRELIMINARY:** 2 of the follow-up's 6 runs")
    assert partial.endswith("no finished pair of no BN and BN yet.")


def test_followup_at_bns_highest_usable_rate():
    fast = [0.50, 0.62, 0.66, 0.68, 0.69, 0.70, 0.70]
    results = [fake_followup("none", 0.03, s, [0.4, 0.5, 0.55, 0.58, 0.59, 0.61, 0.62])
               for s in (0, 1)] + [fake_followup("batch", 0.3, s, fast) for s in (0, 1)]
    rows = {row["role"]: row for row in optimizer.followup_rows(results, 0.60, RATES)}
    assert list(rows) == ["none-best", "bn-highest"]
    assert rows["bn-highest"]["steps_to_target"] == [780.0, 780.0]
    text = optimizer.followup_findings(results, planned=8, target=0.60, rates=RATES)
    assert "- **BN at its highest usable rate (0.3) against no BN at its best rate " \
           "(0.03).**" in text
    assert "(fewer with BN? every seed of BN below every seed of no BN)" in text


def test_followup_when_the_best_rates_coincide():
    same = {"none": 0.03, "batch": 0.03, "batch_highest": 0.03}
    rising = [0.5, 0.6, 0.7]
    results = [fake_followup("none", 0.03, s, [0.4, 0.5, 0.55]) for s in (0, 1)] + \
              [fake_followup("batch", 0.03, s, rising) for s in (0, 1)]
    roles = optimizer.followup_roles(results, same)
    assert roles["bn-best"] is roles["bn-at-none-best"] or \
        roles["bn-best"] == roles["bn-at-none-best"]
    text = optimizer.followup_findings(results, planned=4, rates=same)
    assert "The map's rates coincide: BN at the no-BN best rate is the same runs as BN at its best rate." in text
    assert text.count("against no BN at its best rate") == 1
    assert "BN at its highest usable rate is the same runs as BN at its best rate." in text
    import matplotlib

    matplotlib.use("Agg")
    fig = optimizer.followup_figure(results, rates=same)
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert labels == ["no BN at its best rate (0.03) (n=2)",
                      "BN at its best rate (0.03), also at the no-BN best rate, also at "
                      "its highest usable rate (n=2)"]


def test_the_chapters_answer_by_hand():
    """The closing paragraph sorts the paper's four claims into agree / differ /
    not yet judged, from hand-made files of all four grids."""
    from bnlib.config import ADAM_LEARNING_RATES, SGD_LEARNING_RATES

    # Figure 1: BN clearly ahead, its median moving clearly *more* (differs)
    figure1 = ([fake_figure1(False, s, 0.2 + s / 10, 2.1, 0.40 + s / 100) for s in range(3)]
               + [fake_figure1(True, s, -3.0 - s / 10, 2.1, 0.45 + s / 100)
                  for s in range(3)])
    # the map: both best at 0.01; no BN usable to 0.03, BN to 0.1
    none = dict(zip(SGD_LEARNING_RATES, (0.50, 0.60, 0.70, 0.65, 0.40, 0.10, None)))
    bn = dict(zip(SGD_LEARNING_RATES, (0.62, 0.66, 0.70, 0.68, 0.66, 0.30, None)))
    lrmap = ([fake_map("sgd", "none", r, a) for r, a in none.items()]
             + [fake_map("sgd", "batch", r, a) for r, a in bn.items()])
    lradam = [fake_map("adam", "none", r, a) for r, a in
              zip(ADAM_LEARNING_RATES, (0.60, 0.66, 0.10))] + \
             [fake_map("adam", "batch", r, a) for r, a in
              zip(ADAM_LEARNING_RATES, (0.65, 0.69, 0.66))]
    rates = {"none": 0.01, "batch": 0.01, "batch_highest": 0.1}
    text = optimizer.what_we_found(figure1, lrmap, [], lradam, rates=rates)
    assert text.startswith(
        "Our networks agree with the paper that the sigmoid network with BN ends with a "
        "higher accuracy (every seed of BN above every seed of no BN); that BN tolerates "
        "higher learning rates (BN stays within 90 % of its best up to a rate of 0.1, no "
        "BN up to 0.03, on the one-seed map). Where they differ: BN does not keep the "
        "sigmoid's input steadier (the median's move: every seed of no BN below every "
        "seed of BN). Not judged yet: whether at the same rate BN alone reaches 0.60 "
        "in fewer steps (BN against no BN, both at the no-BN best rate: two seeds of "
        "both needed); whether a higher rate lets BN reach 0.60 in fewer steps")
    assert "both networks train best at 0.01" in text
    assert ("With Adam at the article's rate (0.001) BN reaches 0.690 against 0.660"
            in text)
    assert ("At Adam's 0.01 only the network with BN learns (BN 0.660, no BN 0.100, "
            "chance): the article's rate is one at which both networks train" in text)
    # the follow-up: at BN's highest rate BN is there in fewer steps, every seed;
    # at the same rate one seed each way (no clear difference)
    slow = [0.40, 0.50, 0.55, 0.58, 0.59, 0.61, 0.62]
    fast = [0.50, 0.62, 0.66, 0.68, 0.69, 0.70, 0.70]
    followup = ([fake_followup("none", 0.01, s, slow) for s in (0, 1)]
                + [fake_followup("batch", 0.1, s, fast) for s in (0, 1)]
                + [fake_followup("batch", 0.01, s, curve) for s, curve in
                   ((0, fast), (1, [0.5] * 7))])
    text = optimizer.what_we_found(figure1, lrmap, followup, lradam, rates=rates)
    assert ("that a higher rate lets BN reach 0.60 in fewer steps (BN at its highest "
            "usable rate against no BN at its best: every seed of BN below every seed "
            "of no BN; counted at evaluations 390 steps apart; it ends at 0.686 against 0.590: every seed of BN above every "
            "seed of no BN)." in text)
    assert ("at the same rate BN alone does not reach 0.60 in clearly fewer steps (BN "
            "against no BN, both at the no-BN best rate: no clear difference, the seed "
            "ranges overlap; counted at evaluations 390 steps apart)" in text)
    assert "Not judged yet" not in text
    assert ("On the book's CNN, both at the no-BN best rate for 7 epochs, BN ends at "
            "0.593 against 0.590 (no clear difference, the seed ranges overlap); its "
            "steps to 0.60 are counted at evaluations 390 steps apart" in text)
    # the paper's own measure: no BN ends at 0.590 (last five, both seeds);
    # BN at 0.1 passes it at its 2nd evaluation (780 of 2,730 steps), BN at 0.01
    # (mean of a fast and a flat seed: 0.50, 0.56, 0.58, 0.59, ...) at its 4th
    assert ("(0.590 after 2,730 steps) — BN at 0.01 passes it after 1,560 steps, 57 % "
            "of the run (the paper's BN-Baseline: 43 % of Inception's steps); BN at 0.1 "
            "passes it after 780 steps, 29 % of the run (the paper's BN-x5: 7 % of "
            "Inception's steps)." in text)
    # a partial map leaves the rate claim open instead of reading a range off it
    text = optimizer.what_we_found(figure1, lrmap[:5], followup, [], rates=rates)
    assert "whether BN tolerates higher learning rates (the map is not complete)" in text
    assert "Adam" not in text


def test_figure_6_5_prefers_the_followup_pair():
    mapped = [fake_map("sgd", "none", 0.03, 0.5), fake_map("sgd", "batch", 0.03, 0.55),
              fake_map("sgd", "batch", 0.1, 0.6)]
    runs, rate, source = optimizer.cnn_probe_pair(mapped, [], RATES)
    assert (len(runs), rate, source) == (2, 0.03, "the map (3 epochs, one seed)")
    followup = [fake_followup("none", 0.03, 0, [0.5] * 6),
                fake_followup("batch", 0.1, 0, [0.6] * 6)]
    runs, rate, _ = optimizer.cnn_probe_pair(mapped, followup, RATES)
    assert rate == 0.03 and len(runs) == 2  # BN at 0.03 not in the follow-up yet
    followup += [fake_followup("batch", 0.03, s, [0.55] * 6) for s in (0, 1)]
    runs, rate, source = optimizer.cnn_probe_pair(mapped, followup, RATES)
    assert (len(runs), rate, source) == (3, 0.03, "the follow-up (15 epochs)")
    assert optimizer.cnn_probe_pair([], [], RATES) == ([], None, "nothing yet")
    # runs whose probes measured other images (the stored order) are left out
    stale = [dict(r, probe_sample=None) for r in followup]
    runs, rate, source = optimizer.cnn_probe_pair(mapped, stale, RATES)
    assert (len(runs), rate, source) == (2, 0.03, "the map (3 epochs, one seed)")


def test_followup_grid_runs_the_maps_configurations():
    """The follow-up trains the map's own configurations at the map's best
    rates, and chapter 07 uses the no-BN best rate."""
    from bnlib import config as C

    mapped = {run.name: run for run in GRIDS["lrmap"].runs}
    followup = GRIDS["lrfollowup"].runs
    assert all(mapped[run.name] == run for run in followup)
    assert {(run.norm_dense, run.learning_rate) for run in followup} == {
        ("none", C.MAP_BEST_RATES["none"]), ("batch", C.MAP_BEST_RATES["batch"]),
        ("batch", C.MAP_BEST_RATES["none"]), ("batch", C.MAP_BN_HIGHEST_RATE)}
    assert {run.learning_rate for run in GRIDS["santurkar"].runs} == {
        C.MAP_BEST_RATES["none"], C.MAP_BN_HIGHEST_RATE}
    assert get_profile(GRIDS["lrfollowup"].profile).epochs == get_profile("book").epochs


def test_the_best_rates_are_the_maps():
    """MAP_BEST_RATES and MAP_BN_HIGHEST_RATE, which the follow-up and chapter
    07 train at, are the committed map's best rates and BN's highest rate
    within 90 % of its best."""
    from bnlib.config import MAP_BEST_RATES, MAP_BN_HIGHEST_RATE

    results = _committed("lrmap")
    if len(results) < len(GRIDS["lrmap"].runs):
        pytest.skip("the learning-rate map is not complete")
    best = optimizer.best_rates(optimizer.rate_rows(results))
    assert {arm: row["learning_rate"] for arm, row in best.items()} == MAP_BEST_RATES, \
        "set bnlib.config.MAP_BEST_RATES to the map's best rates (and retrain the follow-up)"
    assert optimizer.usable_range(optimizer.rate_rows(results), "batch")[1] == \
        MAP_BN_HIGHEST_RATE, "set bnlib.config.MAP_BN_HIGHEST_RATE from the map"


def test_result_folders():
    book = get_profile("book")
    assert chapter_results_dir("figure1", book) == Path("results/figure1")
    assert chapter_results_dir("lrmap", book) == Path("results/lrmap")
    assert chapter_results_dir("lrmap", get_profile("smoke")) == Path(
        "results/smoke/lrmap")


# ----------------------------------------------------------------- committed
def _committed(grid: str) -> list[dict]:
    folder = ROOT / "results" / grid
    return load_results(folder) if folder.is_dir() else []


def _notebook_markdown_outputs() -> list[str]:
    notebook = json.loads(NOTEBOOK.read_text())
    texts = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/markdown" in data:
                texts.append("".join(data["text/markdown"]))
    return texts


def test_the_notebook_states_the_findings_the_files_give():
    """Every generated paragraph of the committed notebook is what the
    committed result files give today: changing a result names the paragraph."""
    outputs = _notebook_markdown_outputs()
    figure1 = _committed("figure1")
    expected = optimizer.figure1_findings(figure1)
    assert expected in outputs, f"re-execute notebook 06: Figure 1 findings now read\n{expected}"
    expected = optimizer.map_findings(_committed("lrmap"))
    assert expected in outputs, f"re-execute notebook 06: the map's findings now read\n{expected}"
    expected = optimizer.adam_findings(_committed("lradam"))
    assert expected in outputs, f"re-execute notebook 06: the Adam findings now read\n{expected}"
    grid = GRIDS["lrfollowup"]
    planned = len(grid.runs) * get_profile(grid.profile).seeds
    expected = optimizer.followup_findings(_committed("lrfollowup"), planned)
    assert expected in outputs, f"re-execute notebook 06: the follow-up now reads\n{expected}"
    expected = optimizer.what_we_found(figure1, _committed("lrmap"),
                                       _committed("lrfollowup"), _committed("lradam"))
    assert expected in outputs, f"re-execute notebook 06: its answer now reads\n{expected}"


def test_the_followup_evaluates_every_195_steps():
    """Chapter 06 says the follow-up's steps to 0.60 are counted on evaluations
    195 steps apart (why the count is coarse)."""
    results = _committed("lrfollowup")
    if not results:
        pytest.skip("no follow-up run is committed")
    assert {r["protocol"]["eval_every"] for r in results} == {195}
    assert "Evaluations\ncome every 195 steps" in NOTEBOOK.with_suffix(".md").read_text()


def test_committed_figure1_runs_follow_the_protocol():
    results = _committed("figure1")
    if not results:
        pytest.skip("no figure1 results committed yet")
    grid = GRIDS["figure1"]
    protocol = get_profile("figure1")
    for result in results:
        path = ROOT / "results" / "figure1" / f"{result['name']}-s{result['seed']}.json"
        # the runner's own check: same protocol and configuration (fields added
        # since then count as their defaults), or it raises
        assert previous_result(path, grid.run(result["name"]), protocol) is not None
        assert result["curve"][-1][0] == 50_000
        rows = result["probes"][optimizer.FIGURE1_PROBE]
        assert [row[0] for row in rows] == [p[0] for p in result["curve"]]
        assert all(math.isfinite(v) for row in rows for v in row)


def test_the_prose_about_figure1_matches_the_files():
    """The paragraph after Figure 6.1's findings: BN ahead in accuracy (clear);
    BN's sigmoid input moves "at least as much" as without BN: for the probed
    unit "within the seed spread", over all units pooled "clearly farther"."""
    results = _committed("figure1")
    if len(results) < 6:
        pytest.skip("the figure1 grid is not complete")
    assert optimizer.drift_verdicts(results)["accuracy"]["verdict"] == plots.CLEAR
    unit = optimizer.drift_verdicts(results, "unit")["relative_shift"]["verdict"]
    pooled = optimizer.drift_verdicts(results, "all")["relative_shift"]["verdict"]
    assert unit == plots.WITHIN_SPREAD, "rewrite: 'the two drifts lie within the seed spread'"
    assert pooled == plots.CLEAR_OTHER_WAY, "rewrite: 'BN's median moves clearly farther'"
    # chapter 07 leans on the same finding
    chapter_07 = (ROOT / "notebooks" / "07_santurkar.md").read_text()
    assert "found that BN does not hold it still" in chapter_07
    text = (ROOT / "notebooks" / "06_optimizer.md").read_text()
    for sentence in ("moves at least as much with BN as\nwithout it",
                     "For the probed unit the two drifts lie within the seed spread",
                     "BN's median moves clearly farther"):
        assert sentence in text, sentence


def test_exercise_5_reads_the_higher_rate_off_the_files():
    """Exercise 5's answer says BN at its highest usable rate is behind BN at
    the no-BN best rate in training loss and test accuracy at every epoch it
    lists, that the lower rate fits the training set almost perfectly, and
    how many evaluations the higher rate leads (printed): all from the files."""
    roles = optimizer.followup_roles(_committed("lrfollowup"))
    if not {"bn-highest", "bn-at-none-best"} <= set(roles):
        pytest.skip("the follow-up's two BN runs are not committed")
    high, same = roles["bn-highest"], roles["bn-at-none-best"]
    steps = plots.seed_band(high)[0]
    per_epoch = plots.steps_per_epoch(high)
    loss = {runs is high: plots.seed_band(runs, "train_loss")[1] for runs in (high, same)}
    accuracy = {runs is high: plots.seed_band(runs)[1] for runs in (high, same)}
    for epoch in (1, 5, 10, 15):
        i = np.flatnonzero(steps <= epoch * per_epoch)[-1]
        assert loss[True][i] > loss[False][i] and accuracy[True][i] < accuracy[False][i], \
            f"exercise 5: the higher rate is not behind in both columns at epoch {epoch}"
    assert loss[False][-1] < 0.01, "exercise 5: the lower rate no longer fits the " \
        "training set almost perfectly"
    text = NOTEBOOK.with_suffix(".md").read_text()
    assert "higher rate is behind in both columns at every epoch listed" in text
    ahead = int((accuracy[True] > accuracy[False]).sum())
    printed = [t for t in _notebook_stream_outputs() if "has the higher test accuracy" in t]
    rate = high[0]["config"]["learning_rate"]
    assert printed and (f"BN at {rate:g} has the higher test accuracy at {ahead} of "
                        f"{len(accuracy[True])} evaluations") in printed[0], \
        "re-execute notebook 06: exercise 5's count changed"


def test_exercise_3_answer_reads_the_map():
    """Exercise 3's answer in words: both best rates 0.01, BN usable up to
    0.1 (ten times), 5x inside and 30x outside that range, from the files."""
    results = _committed("lrmap")
    if len(results) < len(GRIDS["lrmap"].runs):
        pytest.skip("the learning-rate map is not complete")
    rows = optimizer.rate_rows(results)
    best = {arm: row["learning_rate"] for arm, row in optimizer.best_rates(rows).items()}
    low, high = optimizer.usable_range(rows, "batch")
    assert best == {"none": 0.01, "batch": 0.01}, "rewrite exercise 3's answer: best rates"
    assert high == 0.1, "rewrite exercise 3's answer: BN's highest usable rate"
    assert low <= 5 * best["none"] <= high < 30 * best["none"], \
        "rewrite exercise 3's answer: where 5x and 30x land"
    text = " ".join(NOTEBOOK.with_suffix(".md").read_text().split())
    assert ("both networks do best at the same rate, 0.01" in text
            and "up to 0.1, ten times that rate" in text)


def _notebook_stream_outputs() -> list[str]:
    notebook = json.loads(NOTEBOOK.read_text())
    return ["".join(output.get("text", "")) for cell in notebook["cells"]
            for output in cell.get("outputs", []) if output.get("output_type") == "stream"]


def test_figure1s_rate_is_the_pilots_best():
    """Part A trains at the rate its committed pilot found best for the network
    without BN; the pilot is that network at three rates, nothing else
    changed; the notebook prints the pilot's sentence from the files."""
    from bnlib import config as C

    plain = GRIDS["figure1"].runs[0]
    pilot = GRIDS["figure1pilot"].runs
    assert C.FIGURE1_LEARNING_RATE in C.FIGURE1_PILOT_RATES
    assert [run.learning_rate for run in pilot] == list(C.FIGURE1_PILOT_RATES)
    assert all(run.replace(name=plain.name, learning_rate=plain.learning_rate,
                           probes=plain.probes) == plain for run in pilot)
    assert get_profile(GRIDS["figure1pilot"].profile).epochs * get_profile(
        GRIDS["figure1pilot"].profile).steps_per_epoch == 10_000
    results = _committed("figure1pilot")
    assert len(results) == len(pilot), "train the pilot: python -m bnlib run --grid figure1pilot"
    assert optimizer.pilot_best_rate(results) == C.FIGURE1_LEARNING_RATE
    text = optimizer.pilot_findings(results, len(pilot))
    assert text.endswith(f"the best rate is {C.FIGURE1_LEARNING_RATE:g}.")
    outputs = _notebook_markdown_outputs()
    assert text in outputs, f"re-execute notebook 06: the pilot now reads\n{text}"
