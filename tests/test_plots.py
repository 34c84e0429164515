"""Tables, verdicts and figures of ``bnlib.plots`` on hand-made result records.

The records are built here with known curves, so every expected number is
worked out by hand; the book's own results are checked in test_book_results.py.
"""

from __future__ import annotations

import math

import pytest

from bnlib import plots


def record(run_id, seed, test_accuracies, *, status="complete", kind="image-folder"):
    """A result record whose curve has the given test accuracies, 10 steps apart."""
    curve = [[10 * (i + 1), i + 1, 1.0, 0.5, acc]
             for i, acc in enumerate(test_accuracies)]
    return {"run_id": run_id, "seed": seed, "status": status, "curve": curve,
            "data": {"kind": kind},
            "timing": {"wall_seconds": 60.0 * (seed + 1),
                       "train_images_per_second": 1000.0}}


def flat(run_id, seed, level, length=8):
    return record(run_id, seed, [level] * length)


def test_summary_rows_are_worked_out_by_hand():
    results = [record(3, 0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.7]),
               record(3, 1, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.5])]
    (row,) = plots.summary_rows(results)
    assert row["run_id"] == 3 and row["seeds"] == 2 and row["label"] == "BN conv"
    assert row["final_mean"] == pytest.approx(0.6)
    assert row["final_std"] == pytest.approx(math.sqrt(0.02))
    assert row["best_mean"] == pytest.approx(0.8)
    # last five: 0.4 0.5 0.6 0.9 0.7 -> 0.62, and 0.4 0.5 0.6 0.7 0.5 -> 0.54
    assert row["last_n_mean"] == pytest.approx(0.58)
    assert row["train_minutes"] == pytest.approx(1.5)
    assert "0.580 ± 0.057" in plots.format_summary([row])


def test_one_seed_shows_no_spread():
    (row,) = plots.summary_rows([flat(0, 0, 0.5)])
    assert math.isnan(row["last_n_std"])
    assert "±" not in plots.format_summary([row]).splitlines()[-1]


@pytest.mark.parametrize("better, worse, verdict", [
    ((0.70, 0.71, 0.72), (0.60, 0.65, 0.69), plots.CLEAR),
    ((0.60, 0.65, 0.69), (0.70, 0.71, 0.72), plots.CLEAR_OTHER_WAY),
    ((0.70, 0.71, 0.72), (0.60, 0.65, 0.705), plots.WITHIN_SPREAD),
    ((0.90,), (0.60, 0.65), plots.ONE_SEED),
])
def test_compare_calls_a_difference_clear_only_without_overlap(better, worse,
                                                               verdict):
    results = ([flat(9, s, level) for s, level in enumerate(better)]
               + [flat(2, s, level) for s, level in enumerate(worse)])
    row = plots.compare(results, 9, 2)
    assert row["verdict"] == verdict
    assert row["diff"] == pytest.approx(sum(better) / len(better)
                                        - sum(worse) / len(worse))
    assert verdict in plots.format_comparison(row)


def test_verdict_wording_is_the_one_the_chapter_explains():
    # notebook 04 defines *clear* and *within seed spread* in its prose
    assert (plots.CLEAR, plots.CLEAR_OTHER_WAY, plots.WITHIN_SPREAD) == (
        "clear: every seed ahead", "clear, but the other way round",
        "within seed spread")


def test_compare_names_missing_runs():
    row = plots.compare([flat(9, 0, 0.7)], 9, 2)
    assert row["verdict"] == plots.MISSING
    assert plots.format_comparison(row) == "run  9 vs run  2: results missing"


def test_unfinished_runs_do_not_count():
    results = [flat(9, 0, 0.7), flat(9, 1, 0.8),
               record(9, 2, [0.1], status="running")]
    (row,) = plots.summary_rows(results)
    assert row["seeds"] == 2 and row["last_n_mean"] == pytest.approx(0.75)


def test_stability_separates_wobble_from_seed_spread():
    steady = [flat(6, 0, 0.7), flat(6, 1, 0.8)]
    # last five: 0.6 0.8 0.6 0.8 0.7, mean 0.7, squared deviations sum to 0.04
    wobbly = [record(9, s, [0.7, 0.7, 0.7, 0.6, 0.8, 0.6, 0.8, 0.7])
              for s in (0, 1)]
    rows = {r["run_id"]: r for r in plots.stability_rows(steady + wobbly)}
    assert rows[6]["within_run_std"] == 0
    assert rows[6]["between_seed_std"] == pytest.approx(math.sqrt(0.005))
    assert rows[9]["within_run_std"] == pytest.approx(math.sqrt(0.04 / 5))
    assert rows[9]["between_seed_std"] == 0


def test_headline_says_preliminary_until_the_grid_is_complete():
    def with_protocol(result, kind):
        return dict(result, protocol={"profile": "book", "epochs": 15,
                                      "steps_per_epoch": 390, "batch_size": 128},
                    environment={"cpu": "test CPU"}, config={"precision": "float32"},
                    data={"kind": kind, "notes": "re-encoded as JPEG quality 75"})

    results = [with_protocol(flat(run_id, 0, 0.5 + run_id / 100), "folder")
               for run_id in (2, 11)]
    text = plots.headline_markdown(results)
    assert "the best configuration is run 11" in text
    assert "re-encoded as JPEG q75" in text and "SYNTHETIC" not in text
    assert "batch 128, float32, data:" in text
    assert "evaluations 0.610 (1 seed), against 0.520 (1 seed)" in text
    assert "Preliminary: 2 of 36 runs" in text
    synthetic = [with_protocol(r, "synthetic") for r in results]
    assert "SYNTHETIC" in plots.headline_markdown(synthetic)


def test_figures_name_their_source_and_flag_synthetic_data(tmp_path):
    results = [flat(run_id, seed, 0.5 + run_id / 100, length=8)
               for run_id in range(12) for seed in (0, 1)]
    paths = plots.save_article_figures(results, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        f"{name}.png" for name in ("dropout_only", "best", "batch_norm",
                                   "batch_norm_dropout_2", "batch_norm_dropout_4"))
    assert all(plots.figure_source(p) == plots.figure_source_text(results)
               for p in paths)
    assert not list(tmp_path.glob(".*partial*"))
    reordered = plots.figure_source_text(results[::-1])
    assert reordered == plots.figure_source_text(results)
    changed = [flat(0, 0, 0.51)] + results[1:]
    assert plots.figure_source_text(changed) != plots.figure_source_text(results)

    synthetic = [dict(r, data={"kind": "synthetic"}) for r in results]
    figures = plots.article_figures(synthetic)
    assert all("[SYNTHETIC DATA]" in fig.axes[0].get_title()
               for fig in figures.values())


# --------------------------------------------------------------- article curves
@pytest.fixture
def fake_article(monkeypatch):
    """The article's curves replaced by known ones: run r logs accuracy
    0.5 + r/100 at steps 50, 100, ..., 300 (so 30 steps are 3 of our 10-step
    epochs in the hand-made records above)."""
    from bnlib import article

    import numpy as np

    curves = {run_id: np.array([[step, step / 10, 0.5 + run_id / 100 + step / 10_000]
                                for step in range(50, 301, 50)], dtype=float)
              for run_id in range(12)}
    monkeypatch.setattr(article, "article_curves", lambda: curves)
    monkeypatch.setattr(article, "STEPS_PER_EPOCH", 10)
    return curves


def test_window_means_average_each_seed_then_the_seeds():
    results = [record(4, 0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]),
               record(4, 1, [0.1, 0.2, 0.5, 0.6, 0.7, 0.8]),
               record(4, 2, [0.1, 0.2], status="running")]
    # epochs (2, 4]: points 3 and 4 -> seed 0: 0.35, seed 1: 0.55
    means = plots.window_means(results, 2, 4)
    assert means[4]["mean"] == pytest.approx(0.45)
    assert means[4]["std"] == pytest.approx(math.sqrt(0.02))
    assert (means[4]["low"], means[4]["high"]) == (pytest.approx(0.35),
                                                   pytest.approx(0.55))
    assert means[4]["seeds"] == 2
    assert plots.window_means(results, 6, 8) == {}   # not reached: left out


def test_budget_rows_put_the_article_next_to_ours(fake_article):
    results = [record(0, s, [0.45, 0.5, 0.55, 0.6, 0.65, 0.7]) for s in (0, 1)]
    # epochs x 10 steps: (2, 5] holds the article's step 50, (4, 10] steps 50, 100
    rows = plots.same_budget_rows(results, windows=((2, 5), (4, 10)))
    assert [row["run_id"] for row in rows] == list(range(12))
    early, late = rows[0]["windows"][(2, 5)], rows[0]["windows"][(4, 10)]
    assert (early["article"], early["article_points"]) == (pytest.approx(0.505), 1)
    assert (late["article"], late["article_points"]) == (pytest.approx(0.5075), 2)
    assert early["ours"]["mean"] == pytest.approx(0.6)      # epochs 3, 4, 5
    assert early["ours"]["std"] == pytest.approx(0.0)
    assert late["ours"] is None                             # our runs stop at 6
    assert rows[0]["article_final"] == pytest.approx(0.53)   # step 300
    assert rows[11]["windows"][(2, 5)]["ours"] is None       # run 11 not trained
    assert rows[11]["windows"][(2, 5)]["article"] == pytest.approx(0.615)

    table = plots.same_budget_table(rows)
    assert table.columns == ["id", "configuration", "article, epochs 2–5",
                             "ours, epochs 2–5", "article, epochs 4–10",
                             "ours, epochs 4–10", "article, final @ 30 epochs"]
    assert table.rows[0] == ["0", "no BN", "0.505", "0.600\u00a0±\u00a00.000",
                             "0.508", "not reached", "0.530"]
    summary = plots.same_budget_summary(rows)
    assert summary[(2, 5)] == {"compared": 1, "ours_ahead": 1, "below_all_seeds": 1}
    assert summary[(4, 10)]["compared"] == 0


def test_result_tables_are_html_with_readable_text():
    results = [record(3, 0, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.7]),
               record(3, 1, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.5]),
               flat(0, 0, 0.4), flat(0, 1, 0.41)]
    summary = plots.summary_table(plots.summary_rows(results))
    assert summary.columns == ["id", "configuration", "n", "final", "best",
                               "last-5 mean", "min/run", "img/s"]
    text, html = repr(summary), summary._repr_html_()
    # the plus-minus cell never wraps: no-break spaces around the sign
    assert "0.580\u00a0±\u00a00.057" in text and "0.580\u00a0±\u00a00.057" in html
    assert html.count("<tr>") == 1 + 2 and html.count("</th>") == 8
    assert "BN conv" in text.splitlines()[-1]
    # the shared display helper's table: same plain text, styled HTML cells
    from bnlib.show import Table

    assert isinstance(summary, Table)
    assert text == repr(Table(summary.rows, summary.columns))
    number = '<td style="padding:0.15em 0.45em;vertical-align:top;text-align:right;'
    assert html.count(number) == 2 * 7                    # all but the label
    assert "white-space:nowrap" not in html.split("</thead>")[0]   # headers wrap
    assert "&lt;" in plots.result_table([["<b>"]], ["x"])._repr_html_()

    stability = plots.stability_table(results)
    assert [row[0] for row in stability.rows] == ["0", "3"]
    comparison = plots.comparison_table(results, [(3, 0), (9, 0)])
    # each side's seed range (last-5 means 0.62/0.54 and 0.40/0.41) beside it
    assert comparison.rows[0] == ["3: BN conv", "0.540\u20130.620", "0: no BN",
                                  "0.400\u20130.410", "+0.175", plots.CLEAR]
    assert comparison.rows[1][-1] == plots.MISSING


def test_figures_draw_the_article_on_the_same_steps(fake_article, tmp_path):
    # 10 steps per epoch, 25 evaluations: steps 10 ... 250, the article's 50 ... 250
    results = [flat(run_id, seed, 0.5 + run_id / 100, length=25)
               for run_id in range(12) for seed in (0, 1)]
    figures = plots.article_figures(results)
    assert list(figures) == list(plots.FIGURE_ORDER)
    for name, fig in figures.items():
        ax = fig.axes[0]
        assert fig.dpi >= 150
        (legend,) = fig.legends
        labels = [t.get_text() for t in legend.get_texts()]
        assert all(t.get_fontsize() >= 9 for t in legend.get_texts())
        ours = [line for line in ax.get_lines() if line.get_linewidth() >= 2]
        theirs = [line for line in ax.get_lines() if line.get_linewidth() < 2]
        assert len(ours) == len(theirs) == sum("(ours" in t for t in labels)
        assert sum(t.endswith(plots.ARTICLE_LABEL) for t in labels) == len(theirs)
        for line in ours + theirs:                 # solid, with markers
            assert line.get_linestyle() == "-" and line.get_marker() not in (None, "")
        assert len({line.get_marker() for line in ours}) == len(ours)
        # x in epochs; the article's steps divided by our steps per epoch
        x, y = theirs[0].get_data()
        assert list(x) == pytest.approx([5, 10, 15, 20, 25])
        assert "epoch" in ax.get_xlabel()
    best = figures["best"].axes[0]
    assert best.get_lines()[0].get_data()[0][-1] == pytest.approx(25)

    # the source names the article's curves too: change them, it changes
    before = plots.figure_source_text(results)
    fake_article[0][0, 2] += 0.01
    assert plots.figure_source_text(results) != before


def test_smoke_sized_runs_show_no_article_curve(fake_article):
    results = [flat(run_id, 0, 0.2, length=4) for run_id in range(12)]  # 40 steps
    figures = plots.article_figures(results, y_limits=None)
    labels = [t.get_text() for t in figures["batch_norm"].legends[0].get_texts()]
    assert labels and not any(plots.ARTICLE_LABEL in t for t in labels)


def test_seed_band_reads_any_curve_column():
    """Mean, min and max over the finished seeds, of test accuracy unless a
    column is named; an unknown column is refused, not read as another."""
    def run(seed, status, rows):
        return {"seed": seed, "status": status, "curve": rows}
    runs = [run(0, "complete", [[10, 1, 2.0, 0.3, 0.40], [20, 2, 1.0, 0.5, 0.50]]),
            run(1, "complete", [[10, 1, 4.0, 0.2, 0.20], [20, 2, 3.0, 0.4, 0.60]]),
            run(2, "diverged", [[10, 1, 9.0, 0.1, 0.10]])]
    steps, mean, low, high = plots.seed_band(runs)
    assert steps.tolist() == [10, 20] and mean.tolist() == pytest.approx([0.3, 0.55])
    assert low.tolist() == [0.2, 0.5] and high.tolist() == [0.4, 0.6]
    _, loss, low, high = plots.seed_band(runs, "train_loss")
    assert loss.tolist() == [3.0, 2.0] and low.tolist() == [2.0, 1.0]
    with pytest.raises(ValueError):
        plots.seed_band(runs, "test_loss")


def test_and_join_reads_as_a_sentence():
    assert [plots.and_join(items) for items in ([], ["a"], ["a", "b"], ["a", "b", "c"])] \
        == ["", "a", "a and b", "a, b and c"]


def test_the_note_under_a_figure_names_every_point_below_its_axis(fake_article):
    # run 0 (in "dropout_only"): seed 0 starts at 0.30, 0.35; seed 1 at 0.38, 0.47;
    # mean 0.34, 0.41 -> the mean is below 0.4 at epoch 1 only, the lowest seed at
    # epochs 1 and 2; the fake article's run 0 logs 0.505 and up: never below
    results = [record(0, 0, [0.30, 0.35, 0.5, 0.5]), record(0, 1, [0.38, 0.47, 0.5, 0.5])]
    results += [flat(run_id, seed, 0.6) for run_id in (1, 2, 11) for seed in (0, 1)]
    note = plots.below_axis_note(results, "dropout_only")
    assert note == ("below the axis (0.4): run 0: our mean at 1 point (epoch 1.0); "
                    "our lowest seed at 2 points (epoch 1.0, 2.0)")
    assert plots.below_axis_note(results, "batch_norm_dropout_2") == ""
    assert plots.below_axis_note(results, "dropout_only", None) == ""


def test_mean_range_is_the_seed_range_the_rule_compares():
    from bnlib import plots

    assert plots.mean_range([0.286, 0.290]) == "0.288 [0.286,\u00a00.290]"
    assert plots.mean_range([1.234], 2) == "1.23"
    assert plots.mean_range([]) == "–"
