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
                    environment={"cpu": "test CPU"},
                    data={"kind": kind, "notes": "re-encoded as JPEG quality 75"})

    results = [with_protocol(flat(run_id, 0, 0.5 + run_id / 100), "folder")
               for run_id in (2, 11)]
    text = plots.headline_markdown(results)
    assert "the best configuration is run 11" in text
    assert "re-encoded as JPEG q75" in text and "SYNTHETIC" not in text
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
