"""The committed book run: complete, consistent, and saying what the book says.

``results/book/`` holds the 36 result files behind the experiment chapter and
the introduction's headline. These tests read them (no training) and check
that the grid is complete and was made under one protocol on one copy of the
data; that the committed headline is the one the files give; and that the
conclusions the experiment chapter states in prose are the verdicts the files
give. Change the results and these tests say which sentence to rewrite.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from bnlib import article, plots
from bnlib.config import ARTICLE, get_profile
from bnlib.runner import load_results, plan

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "book"
BOOK_PROTOCOL = get_profile("book")
GRID = ARTICLE.runs


@pytest.fixture(scope="module")
def results():
    return load_results(RESULTS)


def test_the_grid_is_complete(results):
    found = {(r["run_id"], r["seed"]) for r in results}
    assert found == set(plan(ARTICLE, BOOK_PROTOCOL)), (
        "results/book must hold every (run, seed) of the article grid: "
        "python -m bnlib run --grid article --workers 2")
    assert all(r["status"] == "complete" for r in results)
    assert len(results) == len(GRID) * BOOK_PROTOCOL.seeds == 36
    for result in results:
        config = GRID[result["run_id"]]
        assert (result["grid"], result["name"]) == ("article", config.name)
        assert result["config"] == config.to_dict()


def test_one_protocol_one_copy_of_the_data(results):
    assert {json.dumps(r["protocol"], sort_keys=True) for r in results} == {
        json.dumps(BOOK_PROTOCOL.curve_fields(), sort_keys=True)}
    assert len({r["data"]["sha256"] for r in results}) == 1
    data = results[0]["data"]
    assert (data["num_train"], data["num_test"]) == (50_000, 10_000)
    assert data["kind"] != "synthetic"
    expected_points = BOOK_PROTOCOL.total_steps // BOOK_PROTOCOL.eval_every
    assert all(len(r["curve"]) == expected_points for r in results)


def test_the_committed_headline_is_the_one_the_results_give(results):
    committed = (ROOT / "book" / "figures" / "headline.md").read_text()
    assert committed == plots.headline_markdown(results), (
        "book/figures/ is stale: python -m bnlib plot --results-dir results/book "
        "--out book/figures")


def verdict(results, better, worse):
    return plots.compare(results, better, worse)["verdict"]


CLEAR, OTHER_WAY, SPREAD = plots.CLEAR, plots.CLEAR_OTHER_WAY, plots.WITHIN_SPREAD
NO_BN = [i for i, c in enumerate(GRID) if not (c.bn_conv or c.bn_dense)]
WITH_BN = [i for i, c in enumerate(GRID) if c.bn_conv or c.bn_dense]
REPORTED = {run_id: article.final_and_best(run_id) for run_id in range(len(GRID))}

# The verdicts the "Conclusions" of notebooks/04_experiment.md states (and the
# end of book/intro.md sums up), as (better, worse, verdict). Keep them in step.
STATED = [
    # BN beats dropout: each placement without dropout vs run 2 (no BN, 0.4)
    (3, 2, CLEAR), (6, 2, CLEAR), (9, 2, CLEAR),
    # conv + dense vs conv only: level at every dropout rate
    (9, 3, SPREAD), (10, 4, SPREAD), (11, 5, SPREAD),
    # conv + dense vs dense only: level, behind, ahead
    (9, 6, SPREAD), (10, 7, OTHER_WAY), (11, 8, CLEAR),
    # dropout 0.2 and 0.4 beat no dropout for every BN placement
    (4, 3, CLEAR), (5, 3, CLEAR), (7, 6, CLEAR), (8, 6, CLEAR),
    (10, 9, CLEAR), (11, 9, CLEAR),
    # without BN only dropout 0.4 clearly helps
    (2, 0, CLEAR), (1, 0, SPREAD),
]


@pytest.mark.parametrize("better, worse, expected", STATED)
def test_the_chapter_conclusions_are_the_results_verdicts(results, better, worse,
                                                          expected):
    assert verdict(results, better, worse) == expected


def test_bn_gain_over_the_best_dropout_only_network(results):
    rows = {r["run_id"]: r for r in plots.summary_rows(results)}
    assert max(NO_BN, key=lambda r: rows[r]["last_n_mean"]) == 2
    stability = {r["run_id"]: r for r in plots.stability_rows(results)}
    for bn_run in (3, 6, 9):
        gain = plots.compare(results, bn_run, 2)["diff"]
        assert round(gain, 2) == 0.08                       # "about 0.08"
        largest_std = max(stability[r]["between_seed_std"] for r in (bn_run, 2))
        assert gain > 5 * largest_std                      # "more than five times"
    others = [abs(plots.compare(results, a, b)["diff"]) for a, b, _ in STATED
              if b != 2]
    smallest_gain = min(plots.compare(results, r, 2)["diff"] for r in (3, 6, 9))
    assert smallest_gain > max(others)                     # "the largest effect"


def test_dropout_gains_with_bn(results):
    gains = [plots.compare(results, w, base)["diff"]
             for base in (3, 6, 9) for w in (base + 1, base + 2)]
    assert 0.01 <= round(min(gains), 2) and round(max(gains), 2) <= 0.03


def test_stability_as_stated(results):
    wobble = {r["run_id"]: r["within_run_std"] for r in plots.stability_rows(results)}
    between = {r["run_id"]: r["between_seed_std"]
               for r in plots.stability_rows(results)}
    no_bn = [wobble[r] for r in NO_BN]
    assert (round(min(no_bn), 3), round(max(no_bn), 3)) == (0.005, 0.007)
    wobblier = [r for r in WITH_BN if wobble[r] > max(no_bn)]
    assert sorted(set(WITH_BN) - set(wobblier)) == [7]      # "the exception"
    assert (round(min(wobble[r] for r in wobblier), 3),
            round(max(wobble[r] for r in wobblier), 3)) == (0.012, 0.031)
    ranked = sorted(WITH_BN, key=wobble.get)                 # steadiest first
    for both in (9, 10, 11):                                 # "in the middle"
        assert both not in ranked[:2] + ranked[-2:]
    assert max(WITH_BN, key=between.get) == 9
    assert max(wobble, key=wobble.get) == 8                  # "most of all"
    assert round(wobble[8], 3) == 0.031


def test_best_configurations(results):
    assert plots.best_run_id(results) == 11
    assert verdict(results, 11, 5) == SPREAD                 # level with run 5
    assert max(REPORTED, key=lambda r: REPORTED[r]) == 11     # the article's best


def test_against_the_article_as_stated(results):
    at_ten = plots.accuracy_at_epoch(results, 10)
    assert (round(min(at_ten[r] for r in NO_BN), 2),
            round(max(at_ten[r] for r in NO_BN), 2)) == (0.55, 0.60)
    assert (round(min(at_ten[r] for r in WITH_BN), 2),
            round(max(at_ten[r] for r in WITH_BN), 2)) == (0.65, 0.70)
    rows = {r["run_id"]: r for r in plots.summary_rows(results)}
    assert all(abs(rows[r]["final_mean"] - REPORTED[r][0]) <= 0.02 for r in NO_BN)
    shortfall = [REPORTED[r][0] - rows[r]["final_mean"] for r in WITH_BN]
    assert (round(min(shortfall), 2), round(max(shortfall), 2)) == (0.03, 0.06)
    for run_id in NO_BN:                      # "flat from about epoch 8 on"
        late = [plots.accuracy_at_epoch(results, e)[run_id] for e in range(8, 16)]
        assert max(late) - min(late) < 0.02


def test_plot_regenerates_the_committed_figures(results, tmp_path):
    """``python -m bnlib plot`` redraws book/figures from the JSONs: each PNG
    names the curves it was drawn from, and with the same Matplotlib the
    pixels are the same."""
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    done = subprocess.run([sys.executable, "-m", "bnlib", "plot", "--results-dir",
                           str(RESULTS), "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    source = plots.figure_source_text(results)
    for name in plots.ARTICLE_FIGURES:
        committed = ROOT / "book" / "figures" / f"{name}.png"
        assert plots.figure_source(committed) == source, (
            f"{committed} was not drawn from results/book as it is now: "
            f"python -m bnlib plot --results-dir results/book --out book/figures")
        fresh = tmp_path / f"{name}.png"
        assert plots.figure_source(fresh) == source
        with Image.open(committed) as old, Image.open(fresh) as new:
            if old.info.get("Software") == new.info.get("Software"):
                np.testing.assert_array_equal(np.asarray(old), np.asarray(new))
            else:  # fonts and antialiasing change between versions: say so
                warnings.warn(f"{name}.png: pixels not compared, drawn by "
                              f"{old.info.get('Software')!r}, redrawn by "
                              f"{new.info.get('Software')!r}")
