"""Chapter 05 ("is it just the inputs?"): its comparisons, its generated
findings, and the claims its prose makes about the untrained network."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest

from bnlib import controls, plots
from bnlib.config import GRIDS, RunConfig, get_profile

ROOT = Path(__file__).resolve().parents[1]
SHARED_ARCHIVE = ROOT / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz"


RAW_BUDGET_RUNS = [name for name in controls.BUDGET_RUNS
                   if controls.twin_grid(name) == "article"]


def fake_result(grid, name, seed, accuracy, status="complete"):
    curve = [[195 * i, i / 2, 1.0, 0.5, accuracy] for i in range(1, 7)]
    return {"grid": grid, "name": name, "seed": seed, "status": status,
            "run_id": 0, "curve": curve, "data": {"kind": "folder"}}


def test_every_question_names_runs_that_exist():
    for question in controls.QUESTIONS:
        for grid, name in (question.better, question.worse):
            assert GRIDS[grid].run(name).name == name
    for title, series in controls.FIGURES.values():
        for _, grid, name in series:
            assert GRIDS[grid].run(name).name == name
    # the budget grid: runs 0, 2, 9 and 11, raw and standardized, each the same
    # configuration as its 15-epoch twin
    assert len(controls.BUDGET_RUNS) == 8
    for name in controls.BUDGET_RUNS:
        twin = GRIDS[controls.twin_grid(name)]
        assert GRIDS["budget"].run(name) == twin.run(name)
        assert twin.run_id(twin.run(name)) in (0, 2, 9, 11)
    assert {controls.twin_grid(name) for name in controls.BUDGET_RUNS} == {
        "article", "standardized"}
    for pair in (*controls.BUDGET_PAIRS, *controls.STANDARDIZED_BUDGET_PAIRS,
                 controls.STANDARDIZING_ALONE):
        assert set(pair) <= set(controls.BUDGET_RUNS)
    # the label the chapter's tables, legends and prose use for this control
    assert GRIDS["inputs"].run("bninput-none-d0").label == "one BN layer on the input image"


def test_results_folders_follow_the_grids():
    folders = controls.results_folders(get_profile("book"), Path("results"))
    assert folders == {"article": Path("results/book"),
                       "standardized": Path("results/standardized"),
                       "inputs": Path("results/inputs"),
                       "budget": Path("results/budget")}


def test_answers_and_findings_from_hand_made_results():
    results = {
        "article": [fake_result("article", "none-d0", s, 0.54 + s / 100)
                    for s in range(3)]
        + [fake_result("article", "bn-both-d0", s, 0.68 + s / 100) for s in range(3)],
        "standardized": [fake_result("standardized", "std-none-d0", s, 0.65 + s / 100)
                         for s in range(3)],
        "inputs": [], "budget": []}
    rows = {row["key"]: row for row in controls.answers(results)}
    assert rows["std-helps-no-bn"]["verdict"] == plots.CLEAR
    assert rows["std-helps-no-bn"]["diff"] == pytest.approx(0.11)
    assert rows["bn-beats-std"]["verdict"] == plots.CLEAR
    assert rows["unit-helps-no-bn"]["verdict"] == plots.MISSING
    gap = controls.gap_closed(results)
    assert gap["share"] == pytest.approx(0.11 / 0.14)
    text = controls.findings_markdown(results)
    assert "reaches 0.660 (3 seeds) and so closes **79 %** of that gap." in text
    # the questions grouped by verdict: both trained ones clear, the rest untrained
    lines = text.split("\n")
    assert lines[0].startswith("- **PRELIMINARY, still training:**")
    assert lines[2] == ("- *Clear*, the first network ahead (2 of 13): standardized vs raw "
                        "inputs, no BN; BN conv+dense on raw inputs vs standardized inputs "
                        "without BN.")
    assert lines[3].startswith("- Not trained yet (11 of 13): inputs /255 vs raw inputs, "
                               "no BN; ")
    assert len(lines) == 4
    results["standardized"] = results["standardized"][:2]  # 2 of 3 seeds
    assert ("standardized vs raw inputs, no BN (PRELIMINARY); BN conv+dense on raw inputs "
            "vs standardized inputs without BN (PRELIMINARY).") in \
        controls.findings_markdown(results)


def test_the_control_headline_from_hand_made_results():
    def results(std_seeds, std_bn_accuracies):
        return {
            "article": [fake_result("article", "none-d0", s, 0.54) for s in range(3)]
            + [fake_result("article", "bn-both-d0", s, 0.68) for s in range(3)],
            "standardized": [fake_result("standardized", "std-none-d0", s, 0.65 + s / 100)
                             for s in range(std_seeds)]
            + [fake_result("standardized", "std-bn-both-d0", s, a)
               for s, a in enumerate(std_bn_accuracies)],
            "inputs": [], "budget": []}

    text = controls.headline_markdown(results(3, [0.70, 0.71, 0.72]))
    assert "BN conv+dense leads no BN by +0.140 (0.680 against 0.540)" in text
    assert "- Standardizing alone, without BN, reaches 0.660 (3 seeds): 86 % of that " \
           "gap.\n" in text
    assert "BN conv+dense reaches 0.710 (3 seeds), +0.050 over no BN, every BN seed " \
           "ahead: BN's lead survives the control, at 36 % of its size on raw pixels " \
           "(+0.050 against +0.140)." in text
    # the dropout-0 pair is complete; the budget runs and the rest of the grid are not
    assert "PRELIMINARY" not in text.rsplit("\n- ", 2)[0]
    assert "Chapter" not in text.split("\n- ")[0]  # the lead-in names no chapter
    assert text.count("\n- ") == 5  # a lead-in, then one bullet per finding
    assert ("- Whether BN conv+dense's lead over no BN on raw pixels holds over 40 epochs "
            "instead of 15 is measured once the longer runs are trained (PRELIMINARY, "
            "still to train: BN conv+dense (not trained yet); no BN (not trained yet)).\n"
            ) in text
    assert text.endswith("- The article's three claims (BN beats dropout, BN conv+dense "
                         "is the most stable, dropout still helps with BN) are judged "
                         "again with standardized inputs once chapter 05's whole grid is "
                         "trained (PRELIMINARY: 2 of its 12 configurations have all their "
                         "seeds).")

    overlapping = controls.headline_markdown(results(3, [0.655, 0.70, 0.71]))
    assert "does not clearly survive the control" in overlapping
    partial = controls.headline_markdown(results(2, [0.70]))
    assert "one seed on a side, so no verdict yet" in partial
    assert "reaches 0.655 (PRELIMINARY, 2 of 3 seeds so far): 82 % of that gap" in partial
    assert "reaches 0.700 (PRELIMINARY, 1 of 3 seeds so far), +0.045 over no BN" in partial
    assert "not trained yet" in controls.headline_markdown(
        {"article": [], "standardized": [], "inputs": [], "budget": []})


def test_the_headline_names_the_other_fixes_of_the_input_scale():
    """x/255 and one BN layer on the image, each without BN inside, against raw
    BN conv+dense: verdict from the fix's side, PRELIMINARY while seeds are
    missing, nothing while a fix has no finished run."""
    def results(unit_accuracies, bninput_accuracies):
        return {
            "article": [fake_result("article", "none-d0", s, 0.54) for s in range(3)]
            + [fake_result("article", "bn-both-d0", s, 0.68 + s / 100) for s in range(3)],
            "standardized": [fake_result("standardized", "std-none-d0", s, 0.65)
                             for s in range(3)],
            "inputs": [fake_result("inputs", "unit-none-d0", s, a)
                       for s, a in enumerate(unit_accuracies)]
            + [fake_result("inputs", "bninput-none-d0", s, a)
               for s, a in enumerate(bninput_accuracies)],
            "budget": []}

    text = controls.headline_markdown(results([0.71, 0.72, 0.73], [0.67, 0.685, 0.69]))
    assert ("- Two other fixes of the input scale, with no BN on any hidden layer: "
            "inputs divided by 255 reach 0.720 (3 seeds), every seed above every seed of "
            "BN conv+dense on raw pixels; one BN layer on the raw image reaches 0.682 (3 "
            "seeds), level with BN conv+dense on raw pixels, the seed ranges "
            "overlapping. Inputs divided by 255 end clearly above standardized inputs "
            "(+0.070).\n") in text
    below = controls.headline_markdown(results([0.64, 0.65, 0.66], [0.69]))
    assert ("inputs divided by 255 reach 0.650 (3 seeds), every seed below every seed "
            "of BN conv+dense on raw pixels; one BN layer on the raw image reaches 0.690 "
            "(PRELIMINARY, 1 of 3 seeds so far), too few seeds to judge. "
            "Inputs divided by 255 and standardized inputs end level with each other "
            "(+0.000).") in below
    assert "other fixes" not in controls.headline_markdown(results([], []))
    rows = {row["key"]: row for row in controls.answers(results([0.71, 0.72, 0.73], []))}
    assert rows["unit-vs-std"]["verdict"] == plots.CLEAR
    assert rows["bn-inside-vs-unit"]["verdict"] == plots.CLEAR_OTHER_WAY


def test_the_headline_says_where_bn_goes_with_standardized_inputs():
    def results(conv_accuracies):
        return {
            "article": [fake_result("article", "none-d0", s, 0.54) for s in range(3)]
            + [fake_result("article", "bn-both-d0", s, 0.68) for s in range(3)],
            "standardized": [fake_result("standardized", name, s, a + s / 1000)
                             for name, a in (("std-none-d0", 0.69), ("std-bn-both-d0", 0.72),
                                             ("std-bn-dense-d0", 0.70))
                             for s in range(3)]
            + [fake_result("standardized", "std-bn-conv-d0", s, a)
               for s, a in enumerate(conv_accuracies)],
            "inputs": [], "budget": []}

    text = controls.headline_markdown(results([0.715, 0.72, 0.725]))
    assert ("- Where BN goes, with standardized inputs and no dropout: BN conv+dense "
            "0.721, BN conv 0.720, BN dense 0.701 (3 seeds each); BN conv+dense: "
            "level with BN conv and clearly above BN dense.\n") in text
    partial = controls.headline_markdown(results([0.73]))
    assert ("BN dense 0.701 (PRELIMINARY: seeds still training); BN conv+dense: not "
            "yet judged (one seed) against BN conv and clearly above BN dense.") in partial
    assert "Where BN goes" not in controls.headline_markdown(results([]))


@pytest.mark.parametrize("std_accuracies, words", [
    ([0.69, 0.70, 0.71], "of that gap on the means. The seed ranges overlap "
                         "(0.690–0.710 against 0.680–0.700 for BN conv+dense on raw "
                         "pixels), so by the book's rule the two end level: "
                         "standardizing alone closes the whole gap."),
    ([0.72, 0.73, 0.74], "of that gap on the means, and clearly more than all of it: "
                         "every seed of standardized inputs without BN (0.720–0.740) "
                         "ends ahead of every seed of BN conv+dense on raw pixels "
                         "(0.680–0.700)."),
    ([0.75], "of that gap on the means; one seed on a side, no verdict.")])
def test_a_share_above_100_percent_is_judged_by_the_seed_rule(std_accuracies, words):
    results = {
        "article": [fake_result("article", "none-d0", s, 0.54) for s in range(3)]
        + [fake_result("article", "bn-both-d0", s, 0.68 + s / 100) for s in range(3)],
        "standardized": [fake_result("standardized", "std-none-d0", s, a)
                         for s, a in enumerate(std_accuracies)],
        "inputs": [], "budget": []}
    assert controls.gap_closed(results)["share"] > 1
    assert words in controls.findings_markdown(results)
    assert words in controls.headline_markdown(results)


def test_chapters_04_and_05_show_what_the_files_give():
    """The committed notebooks' generated paragraphs (chapter 04's control
    paragraph, chapter 05's findings) are what the result files give today."""
    import json

    folders = controls.results_folders(get_profile("book"), ROOT / "results")
    found = controls.load_control_results(folders)
    for notebook, expected in (
            ("04_experiment", controls.headline_markdown(found)),
            ("05_inputs", controls.headline_markdown(found)),
            ("05_inputs", controls.findings_markdown(found)),
            ("05_inputs", controls.claims_markdown(found))):
        cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
        outputs = ["".join(o["data"]["text/markdown"]) for c in cells
                   for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
        assert expected in outputs, f"re-execute notebook {notebook}: it now reads\n{expected}"


def _grid_results(grid: str, accuracy_of, seeds=3) -> list[dict]:
    """Finished results of a whole article-shaped grid: ``accuracy_of(run_id,
    seed)`` gives each run's constant test accuracy."""
    results = []
    for run_id, run in enumerate(GRIDS[grid].runs):
        for seed in range(seeds):
            result = fake_result(grid, run.name, seed, accuracy_of(run_id, seed))
            result["run_id"] = run_id
            result["timing"] = {"wall_seconds": 60.0, "train_images_per_second": 100.0}
            results.append(result)
    return results


def test_the_article_claims_on_both_grids_from_hand_made_results():
    from bnlib.config import ARTICLE

    def raw(run_id, seed):  # BN +0.10, dropout +0.01 per step, seeds 0.001 apart
        config = ARTICLE.runs[run_id]
        return 0.55 + 0.10 * (config.bn_conv or config.bn_dense) \
            + 0.05 * config.dropout + seed / 1000

    def standardized(run_id, seed):  # BN only +0.002: within the seeds' spread
        config = ARTICLE.runs[run_id]
        return 0.70 + 0.002 * (config.bn_conv or config.bn_dense) + seed / 100

    results = {"article": _grid_results("article", raw),
               "standardized": _grid_results("standardized", standardized),
               "inputs": [], "budget": []}
    text = controls.claims_markdown(results)
    assert "PRELIMINARY" not in text
    assert ("- **BN beats dropout**: each BN placement without dropout against the best "
            "network without BN (the best network without BN, raw: run 2; "
            "standardized: run 0). Raw 0–255 inputs: 3 of 3 clear, as claimed. "
            "Standardized inputs: 3 of 3 within spread.") in text
    assert controls.headline_markdown(results).endswith(
        "- The article's three claims, judged again on its whole grid with standardized "
        "inputs (the book's verdicts over each claim's comparisons): BN beats dropout: 3 "
        "of 3 within spread (raw inputs: 3 of 3 clear, as claimed); BN conv+dense is the "
        "most stable: 6 of 6 within spread (raw inputs: 6 of 6 within spread); dropout "
        "still helps with BN: 6 of 6 within spread (raw inputs: 6 of 6 clear, as "
        "claimed).")
    assert "- **Dropout still helps with BN**: dropout 0.2 and 0.4 against none, for " \
           "each BN placement. Raw 0–255 inputs: 6 of 6 clear, as claimed. Standardized " \
           "inputs: 6 of 6 within spread." in text
    # steadiness: standardized BN conv+dense without dropout (run 9) wobbles, every
    # other run is flat; so conv+dense is clearly less steady than conv or dense
    # alone at dropout 0, and dropout clearly steadies it
    for result in results["standardized"]:
        if result["run_id"] == 9:
            amplitude = 0.01 + result["seed"] / 1000
            for i, point in enumerate(result["curve"]):
                point[4] += amplitude if i % 2 else -amplitude
    lines = controls.claims_markdown(results).split("\n")
    steadiness = [line for line in lines if line.startswith("  - *On steadiness*")]
    assert steadiness == [
        "  - *On steadiness* (each seed's wobble, lower counting as better): Raw 0–255 "
        "inputs: 6 of 6 within spread. Standardized inputs: 2 of 6 clear, against the "
        "claim; 4 of 6 within spread.",
        "  - *On steadiness* (each seed's wobble, lower counting as better): Raw 0–255 "
        "inputs: 6 of 6 within spread. Standardized inputs: 2 of 6 clear, as claimed; 4 "
        "of 6 within spread."]
    assert lines.index(steadiness[0]) == 2 and lines.index(steadiness[1]) == 4
    wobble_9 = controls.wobbles(results["standardized"])[9]
    # the last five evaluations alternate +a, -a, +a, -a, +a: a population std of
    # a * sqrt(24) / 5
    assert wobble_9 == pytest.approx([a * 24 ** 0.5 / 5 for a in (0.01, 0.011, 0.012)])
    table = str(controls.steadiness_table(results))
    assert "0.0108 [0.0098,\u00a00.0118]\u00a0(3)" in table
    # constant curves wobble 0 everywhere but run 9: never lower, one BN range moves
    assert controls.steadiness_text(results).split("\n") == [
        "mean wobble lower with standardized inputs than with raw pixels: 0 of 12 "
        "configurations",
        "networks with BN, mean wobble per configuration: raw 0.0000–0.0000, "
        f"standardized 0.0000–{statistics.fmean(wobble_9):.4f}",
        "networks without BN, mean wobble per configuration: raw 0.0000–0.0000, "
        "standardized 0.0000–0.0000"]
    rows = controls.scaling_rows(results)
    assert rows[0]["verdict"]["verdict"] == plots.CLEAR  # standardized ahead of raw
    assert rows[0]["standardized"]["seeds"] == 3
    table = str(controls.scaling_table(rows, results))
    assert "0.710 [0.700,\u00a00.720]\u00a0(3)" in table and "PRELIMINARY" not in table
    partial = {**results, "standardized": results["standardized"][:3]}
    assert controls.claims_markdown(partial).startswith(
        "- **PRELIMINARY, still training:** 11 of the standardized grid's 12")
    without_dropout = {**results, "standardized": [
        r for r in results["standardized"] if r["run_id"] in (0, 3, 6, 9)]}
    assert ("(the best network without BN, raw: run 2; standardized: not known until "
            "all three runs without BN have two seeds). Raw 0–255 inputs: 3 of 3 clear, as "
            "claimed. Standardized inputs: 3 of 3 not judged yet (no best network without "
            "BN yet).") in \
        controls.claims_markdown(without_dropout)  # not judged against run 0 alone
    # a best network without BN named on two seeds: "so far", its verdicts PRELIMINARY
    short_no_bn = {**results, "standardized": [r for r in results["standardized"]
                                               if (r["run_id"], r["seed"]) != (1, 2)]}
    assert ("standardized: run 0 so far, with run 1 short of 3 seeds). Raw 0–255 inputs: 3 "
            "of 3 clear, as claimed. Standardized inputs: 3 of 3 within spread "
            "(PRELIMINARY: a side short of its seeds).") in \
        controls.claims_markdown(short_no_bn)
    # a verdict drawn while a side has two of its three seeds is marked PRELIMINARY
    two_seeds = {**results, "standardized": [r for r in results["standardized"]
                                             if (r["run_id"], r["seed"]) != (3, 2)]}
    text = controls.claims_markdown(two_seeds)
    assert ("Standardized inputs: 3 of 3 within spread (1 of them PRELIMINARY: a side short "
            "of its seeds).") in text
    assert ("Standardized inputs: 6 of 6 within spread (2 of them PRELIMINARY: a side short "
            "of its seeds).") in text
    one_seed = {**results, "standardized": [r for r in results["standardized"]
                                            if r["run_id"] != 3 or r["seed"] == 0]}
    assert ("Standardized inputs: 6 of 6 within spread (2 of them PRELIMINARY" not in
            controls.claims_markdown(one_seed))
    assert "2 of 6 not judged yet (a side has one seed)" in controls.claims_markdown(one_seed)
    assert str(controls.scaling_table(controls.scaling_rows(without_dropout),
                                      without_dropout)).count(
        "PRELIMINARY: with standardized inputs, runs 1, 2, 4, 5, 7, 8, 10 and 11 are "
        "not trained yet.") == 1
    fig = controls.scaling_ranges_figure(two_seeds)
    raw_panel, standardized_panel = fig.axes
    # a bar (2 points) per configuration with two or more seeds, a dot per configuration
    bars = [line for line in standardized_panel.lines if len(line.get_xdata()) == 2]
    dots = [line for line in standardized_panel.lines if len(line.get_xdata()) == 1]
    assert (len(bars), len(dots), len(raw_panel.lines)) == (12, 12, 24)
    hollow = [dot for dot in dots if dot.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and hollow[0].get_ydata()[0] == 11 - 3  # run 3, 2 seeds
    assert controls.scaling_ranges_figure({**results, "standardized": []}) is None
    two_seeds_table = str(controls.scaling_table(controls.scaling_rows(two_seeds)))
    assert "clear (so far)" in two_seeds_table.split("\n")[4]  # run 3: 2 of 3 seeds
    assert "(so far)" not in "\n".join(two_seeds_table.split("\n")[1:4])
    assert "0.700 (1)" in str(controls.scaling_table(controls.scaling_rows(
        {**results, "standardized": results["standardized"][:1]})))  # 1 seed: no ±
    import matplotlib

    matplotlib.use("Agg")
    for name in plots.FIGURE_ORDER:
        fig = controls.article_figure_pair(results, name, y_limits=None)
        assert len([a for a in fig.axes if a.get_ylabel() == "test accuracy"]) == 2
    assert controls.article_figure_pair({**results, "standardized": []}, "best") is None
    import warnings

    with warnings.catch_warnings():  # a panel whose runs are all missing says so
        warnings.simplefilter("error")
        only_d0 = [r for r in results["standardized"] if r["run_id"] in (0, 3, 6, 9)]
        fig = controls.article_figure_pair({**results, "standardized": only_d0},
                                           "batch_norm_dropout_2", y_limits=None)
    assert "not trained yet" in fig.axes[1].texts[0].get_text()
    fig = controls.article_figure_pair({**results, "standardized": only_d0}, "best",
                                       y_limits=None)
    assert "Best run so far (" in fig.axes[1].get_title()  # of 4 trained so far
    assert "Best run (" in fig.axes[0].get_title()
    # every configuration trained, one of them with a single seed: still "so far"
    short = [r for r in results["standardized"] if (r["run_id"], r["seed"]) not in
             ((5, 1), (5, 2))]
    fig = controls.article_figure_pair({**results, "standardized": short}, "best",
                                       y_limits=None, number="Figure 5.7")
    assert "Best run so far (" in fig.axes[1].get_title()
    assert fig._suptitle.get_text() == "Figure 5.7"


def test_one_seed_is_never_called_clear():
    results = {"article": [fake_result("article", "none-d0", 0, 0.5)],
               "standardized": [fake_result("standardized", "std-none-d0", 0, 0.7)]}
    row = controls.answer(results, controls.QUESTIONS[0])
    assert row["verdict"] == plots.ONE_SEED


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ARCHIVE.exists(), reason="needs the offline CIFAR-10")
def test_the_prose_about_the_untrained_network():
    """What 'Before any training' says, measured again (one seed)."""
    from bnlib.data import load_cifar10
    from bnlib.diagnostics import at_initialization

    data = load_cifar10(SHARED_ARCHIVE)
    measured = {}
    for scaling in ("raw", "unit", "standardize"):
        for bn in (False, True):
            config = RunConfig(f"{scaling}-{'bn' if bn else 'none'}", input_scaling=scaling,
                               norm_conv="batch" if bn else "none",
                               norm_dense="batch" if bn else "none")
            measured[scaling, bn] = at_initialization(config, 0, data, 256)
    ln10 = math.log(10)
    # "wildly overconfident ... many times ln 10"
    assert measured["raw", False]["loss"] > 5 * ln10
    assert measured["raw", False]["logit_std"] > 10
    # "dividing by 255 or standardizing brings the first loss to ln 10 at once"
    for scaling in ("unit", "standardize"):
        assert measured[scaling, False]["loss"] == pytest.approx(ln10, rel=0.05)
    # "BN brings it within a factor of 1.5 of ln 10 whatever the input scale",
    # "logits of spread about one"
    for scaling in ("raw", "unit", "standardize"):
        assert measured[scaling, True]["loss"] < 1.5 * ln10
        assert 0.5 < measured[scaling, True]["logit_std"] < 2
    # "exactly the same units are on and off" with x/255 as with raw pixels
    for key in ("rarely_active", "mostly_active"):
        assert measured["unit", False][key] == measured["raw", False][key] > 0.1
        # "centering the inputs ... leaves hardly any"
        assert measured["standardize", False][key] < 0.01
    # "together more than half of conv1's units with raw or /255 inputs"
    assert measured["raw", False]["rarely_active"] + \
        measured["raw", False]["mostly_active"] > 0.5
    text = " ".join((ROOT / "notebooks" / "05_inputs.md").read_text().split())
    assert "together more than half of conv1's units with raw or /255 inputs" in text


def test_the_opening_claim_about_chapter_04():
    """'every BN network beat every network without BN' (last-N means, any seed)."""
    from bnlib.config import ARTICLE
    from bnlib.runner import load_results

    results = load_results(ROOT / "results" / "book")
    with_bn = [r for r in results if ARTICLE.runs[r["run_id"]].bn_conv
               or ARTICLE.runs[r["run_id"]].bn_dense]
    without = [r for r in results if r not in with_bn]
    assert len(with_bn) == 27 and len(without) == 9
    assert min(plots.last_n_means(with_bn)) > max(plots.last_n_means(without))


def budget_result(name, accuracy_at_15, accuracy_at_40):
    """A 40-epoch run evaluated every half epoch: one accuracy up to epoch 15,
    another after it."""
    curve = [[195 * i, i / 2, 1.0, 0.5, accuracy_at_15 if i <= 30 else accuracy_at_40]
             for i in range(1, 81)]
    return {"grid": "budget", "name": name, "seed": 0, "status": "complete",
            "run_id": 0, "curve": curve, "data": {"kind": "folder"}}


def test_the_budget_in_words_from_hand_made_results():
    from bnlib import article

    results = {"article": [fake_result("article", name, s, base + s / 100)
                           for name, base in (("none-d0", 0.50), ("bn-both-d0", 0.68),
                                              ("none-d4", 0.57), ("bn-both-d4", 0.70))
                           for s in range(3)],
               "standardized": [], "inputs": [],
               "budget": [budget_result("none-d0", 0.52, 0.51),
                          budget_result("bn-both-d0", 0.68, 0.70),
                          budget_result("none-d4", 0.58, 0.585)]}
    text = controls.budget_markdown(results)
    dropout_0, dropout_4, *standardized = text.split("\n")
    assert standardized[0].startswith(
        "- **Standardized inputs, dropout 0**, BN conv+dense against no BN (runs 9 and 0, "
        "standardized). Ours: PRELIMINARY until these runs finish: BN conv+dense, "
        "standardized inputs (not trained yet); no BN, standardized inputs (not trained "
        "yet).")
    assert standardized[2].startswith(
        "- **Standardizing alone against BN on raw pixels**, dropout 0")
    assert standardized[2].endswith("Ours: PRELIMINARY until these runs finish: no BN, "
                                    "standardized inputs (not trained yet).")
    assert "article" not in " ".join(standardized[:2])  # it never trained these
    # the seed spread of runs 0 and 9 at 15 epochs is 0.02; the lead moves by +0.03
    assert dropout_0.startswith("- **Dropout 0**, BN conv+dense against no BN (runs 9 and 0).")
    assert ("Ours: +0.160 at epoch 15, +0.190 at epoch 40; the lead moves by +0.030 (the "
            "BN run +0.020, the run without BN -0.010), more than the yardstick's 0.020: "
            "it *grows* (over epochs 30–40 instead, +0.190: it *grows*).") in dropout_0
    theirs = [article.mean_accuracy_between(run_id, 13, 15)[0]
              - article.mean_accuracy_between(other, 13, 15)[0]
              for run_id, other in ((9, 0), (11, 2))]
    assert f"The article's: {theirs[0]:+.3f} at epoch 15" in dropout_0
    end = article.epochs()
    article_end = (article.mean_accuracy_between(9, end - 10, end)[0]
                   - article.mean_accuracy_between(0, end - 10, end)[0])
    assert (f", and {article_end:+.3f} over epochs {end - 10}–{end} of its {end} "
            f"(against its epoch 15, it *") in dropout_0
    assert ("Ours: PRELIMINARY until these runs finish: BN conv+dense, dropout 0.4 (not "
            "trained yet).") in dropout_4
    assert f"{theirs[1]:+.3f} at epoch 15" in dropout_4
    results["budget"].append(budget_result("bn-both-d4", 0.70, 0.71))
    dropout_4 = controls.budget_markdown(results).split("\n")[1]
    assert "the lead moves by +0.005" in dropout_4 and "0.020: it *holds* (" in dropout_4
    results["standardized"] = [fake_result("standardized", "std-none-d0", s, 0.65)
                               for s in range(3)]
    assert ("- Trained on raw pixels for 40 epochs instead of 15 (one seed per run), BN "
            "conv+dense's lead over no BN changes by +0.030: +0.160 at epoch 15, +0.190 at "
            "epoch 40. That is more than the widest seed range of these configurations at "
            "15 epochs (0.020), so by this looser, one-seed yardstick (not the book's rule) "
            "it *grows*. Both leads are means over the two epochs ending there, in this one "
            "pair of runs; the +0.180 above averages three seeds' last five evaluations. "
            f"The article's single runs: {theirs[0]:+.3f}, then ") in \
        controls.headline_markdown(results)
    results["budget"][-1]["curve"] = results["budget"][-1]["curve"][:60]  # 30 epochs
    assert ("Ours: PRELIMINARY until these runs finish: BN conv+dense, dropout 0.4 (ends "
            "before epoch 40). The article's") in controls.budget_markdown(results)
    # standardized inputs: the yardstick is the standardized grid's seed spread (0.05)
    results["standardized"] = [fake_result("standardized", name, s, base + s * step)
                               for name, base, step in (("std-none-d0", 0.66, 1 / 40),
                                                        ("std-bn-both-d0", 0.70, 1 / 50))
                               for s in range(3)]
    results["budget"] += [{**budget_result("std-none-d0", 0.66, 0.64)},
                          {**budget_result("std-bn-both-d0", 0.70, 0.75)}]
    _, _, standardized_0, _, alone = controls.budget_markdown(results).split("\n")
    assert standardized_0 == (
        "- **Standardized inputs, dropout 0**, BN conv+dense against no BN (runs 9 and 0, "
        "standardized). Ours: +0.040 at epoch 15, +0.110 at epoch 40; the lead moves by "
        "+0.070 (the BN run +0.050, the run without BN -0.020), more than the yardstick's "
        "0.050: it *grows* (over epochs 30–40 instead, +0.110: it *grows*).")
    assert alone.endswith(
        "Ours: -0.020 at epoch 15, -0.060 at epoch 40; the lead moves by -0.040 (the "
        "standardized run -0.020, the raw BN run +0.020), no more than the yardstick's "
        "0.050: it *holds* (over epochs 30–40 instead, -0.060: it *holds*).")
    assert ("With standardized inputs the same pair's lead goes from +0.040 to +0.110: by "
            "the same yardstick (0.050) it *grows*; standardizing alone, against BN "
            "conv+dense on raw pixels, goes from -0.020 to -0.060.") in \
        controls.headline_markdown(results)
    assert controls.gap_change_word(-0.03, 0.02) == "shrinks"
    assert controls.gap_change_word(0.02, 0.02) == "holds"


def test_budget_runs_against_their_15_epoch_twins():
    """A 40-epoch run whose first 15 epochs repeat its 15-epoch twin (chapter
    04's run, or the standardized grid's, of the same seed) counts every
    evaluation as the same; one that drifts names the epoch of its first
    differing evaluation."""
    twin = budget_result("none-d0", 0.52, 0.51)
    twin["grid"] = "article"
    twin["curve"] = [p for p in twin["curve"] if p[1] <= 15]
    other = budget_result("bn-both-d0", 0.68, 0.70)
    other_twin = {**twin, "name": "bn-both-d0", "run_id": 9,
                  "curve": [p[:4] + [0.68 if p[1] < 10 else 0.60] for p in twin["curve"]]}
    # a standardized 40-epoch run's twin is the standardized grid's run, not chapter 04's
    standardized_twin = {**twin, "grid": "standardized", "name": "std-none-d0",
                         "curve": [p[:4] + [0.66] for p in twin["curve"]]}
    results = {"article": [twin, other_twin], "standardized": [standardized_twin],
               "inputs": [], "budget": [budget_result("none-d0", 0.52, 0.51), other,
                                        budget_result("std-none-d0", 0.66, 0.70)]}
    rows = {row["name"]: row for row in controls.budget_against_twins(results)}
    assert (rows["none-d0"]["same"], rows["none-d0"]["compared"]) == (30, 30)
    assert rows["none-d0"]["first_difference"] is None
    assert rows["none-d0"]["budget_15"] == rows["none-d0"]["twin_15"] == 0.52
    assert (rows["bn-both-d0"]["same"], rows["bn-both-d0"]["first_difference"]) == (19, 10)
    assert rows["bn-both-d0"]["twin_15"] == pytest.approx(0.60)
    assert rows["std-none-d0"]["twin_grid"] == "standardized"
    assert (rows["std-none-d0"]["same"], rows["std-none-d0"]["twin_15"]) == (30, 0.66)
    assert rows["bn-both-d0"]["seeds_low"] == rows["bn-both-d0"]["seeds_high"] == \
        pytest.approx(0.60)
    table = controls.budget_twin_table(list(rows.values()))._repr_html_()
    assert "30 of 30" in table and "19 of 30" in table


def test_figures_are_drawn_only_from_finished_runs():
    import matplotlib

    matplotlib.use("Agg")
    results = {"article": [fake_result("article", "none-d0", s, 0.5) for s in range(2)],
               "standardized": [], "inputs": [], "budget": []}
    fig = controls.control_figure(results, "no_bn_inputs")
    (ax,) = [a for a in fig.axes if a.get_ylabel() == "test accuracy"]
    assert len(ax.lines) == 1 and ax.lines[0].get_linestyle() == "-"
    assert ax.lines[0].get_marker() == "o"
    assert fig.dpi >= 150
    assert controls.control_figure(results, "before_after_relu") is None
    assert controls.budget_figure(results) is None


def test_a_run_keeps_its_colour_across_the_chapters_figures():
    """Every run of chapter 05's figures has one colour, its own, in every
    figure it appears in (chapter 04's colour where it is chapter 04's run)."""
    import matplotlib
    from matplotlib.colors import to_hex

    from bnlib import plots

    matplotlib.use("Agg")
    used = {(grid, name) for _, series in controls.FIGURES.values()
            for _, grid, name in series}
    assert used == set(controls.SERIES_COLORS)
    colours = list(controls.SERIES_COLORS.values())
    assert len(set(colours)) == len(colours)
    assert controls.SERIES_COLORS[("article", "none-d0")] == plots.run_color(0)
    assert controls.SERIES_COLORS[("article", "bn-both-d0")] == plots.run_color(9)
    assert controls.SERIES_COLORS[("article", "bn-both-d4")] == plots.run_color(11)
    results = {grid: [fake_result(grid, name, s, 0.5) for name in
                      {n for _, series in controls.FIGURES.values() for _, g, n in series
                       if g == grid} for s in range(2)]
               for grid in ("article", "standardized", "inputs")}
    results["budget"] = []
    for figure, (_, series) in controls.FIGURES.items():
        fig = controls.control_figure(results, figure)
        (ax,) = [a for a in fig.axes if a.get_ylabel() == "test accuracy"]
        assert [to_hex(line.get_color()) for line in ax.lines] == [
            controls.SERIES_COLORS[(grid, name)] for _, grid, name in series], figure


def test_chapter_05_read_together_holds_in_the_files():
    """The hand-written "Read together" paragraph of chapter 05: each claim is
    checked against the committed result files (a change names the sentence
    to rewrite). It covers the finished grids only: the inputs grid and the
    standardized runs without dropout."""
    text = " ".join((ROOT / "notebooks" / "05_inputs.md").read_text().split())
    found = controls.load_control_results(
        controls.results_folders(get_profile("book"), ROOT / "results"))
    if len(found["inputs"]) < len(GRIDS["inputs"].runs) * controls.planned_seeds("inputs"):
        pytest.skip("the inputs grid is not complete")
    rows = {row["key"]: row for row in controls.answers(found)}

    def rewrite(sentence):
        return f"rewrite chapter 05's 'Read together': {sentence!r}"

    # "lifts the network from 0.544 to between 0.68 and 0.71, level with or
    # above BN conv+dense on raw pixels (0.682)"
    sentence = ("lifts the network from 0.544 to between 0.69 and 0.71, level with or "
                "above BN conv+dense on raw pixels (0.682)")
    assert sentence in text
    assert f"{controls.mean_accuracy(found, 'article', 'none-d0'):.3f}" == "0.544"
    assert f"{controls.mean_accuracy(found, 'article', 'bn-both-d0'):.3f}" == "0.682"
    for key in ("std-helps-no-bn", "unit-helps-no-bn", "bn-input-vs-none"):
        assert rows[key]["verdict"] == plots.CLEAR, rewrite(sentence)
        assert 0.69 <= rows[key]["better_mean"] <= 0.71, rewrite(sentence)
    for key in ("bn-beats-std", "bn-inside-vs-unit", "bn-inside-vs-input"):
        assert rows[key]["verdict"] in (plots.WITHIN_SPREAD, plots.CLEAR_OTHER_WAY), \
            rewrite(sentence)
    # "dividing by 255 ... ends level with standardizing"; /255 leaves the same
    # units on and off as raw pixels (tested on the untrained network above)
    sentence = "dividing by 255, which leaves conv1's units as lopsided as raw pixels do"
    assert sentence in text and "ends level with standardizing" in text
    assert rows["unit-vs-std"]["verdict"] == plots.WITHIN_SPREAD, rewrite(sentence)
    # "BN on the convolutions, on the dense layer or on both is each clearly
    # ahead of no BN, and BN on both clearly ahead of either alone"
    sentence = ("BN on the convolutions, on the dense layer or on both is each clearly "
                "ahead of no BN, and BN on both clearly ahead of either alone")
    assert sentence in text
    for key in ("std-bn-conv", "std-bn-dense", "std-bn-both"):
        assert rows[key]["verdict"] == plots.CLEAR, rewrite(sentence)
    for other in ("std-bn-conv-d0", "std-bn-dense-d0"):
        assert plots.compare_runs(
            controls.runs_of(found, "standardized", "std-bn-both-d0"),
            controls.runs_of(found, "standardized", other))["verdict"] == plots.CLEAR, \
            rewrite(sentence)
    # "its lead is about a fifth of what it seemed on raw pixels"
    sentence = "its lead is about a fifth of what it seemed on raw pixels"
    assert sentence in text
    share = rows["std-bn-both"]["diff"] / controls.gap_closed(found)["gap"]
    assert 0.15 <= share <= 0.25, rewrite(sentence)
    # "The paper's placement, BN before the ReLU, ends level with the article's,
    # after it, without dropout, and clearly below it at dropout 0.4"
    sentence = ("before the ReLU, ends level with the article's, after it, without "
                "dropout, and clearly below it at dropout 0.4")
    assert sentence in text and "the article's placement is at least as good" in text
    assert (rows["before-relu-d0"]["verdict"], rows["before-relu-d4"]["verdict"]) == (
        plots.WITHIN_SPREAD, plots.CLEAR_OTHER_WAY), rewrite(sentence)


def test_chapter_05_budget_twins_prose_holds_in_the_files():
    """The paragraph under the table of the 40-epoch runs against chapter 04's
    runs of the same seed: identical without BN, apart from the first
    evaluation with BN, within (dropout 0) and below (dropout 0.4) chapter
    04's seeds at epoch 15, on another machine and an earlier bnlib."""
    text = " ".join((ROOT / "notebooks" / "05_inputs.md").read_text().split())
    found = controls.load_control_results(
        controls.results_folders(get_profile("book"), ROOT / "results"))
    rows = {row["name"]: row for row in controls.budget_against_twins(found)}
    assert set(RAW_BUDGET_RUNS) <= set(rows), "the raw budget runs are committed"

    def rewrite(sentence):
        return f"rewrite chapter 05's paragraph on the 40-epoch runs' twins: {sentence!r}"

    sentence = ("On raw pixels without BN the two runs are one and the same: every "
                "evaluation of their first 15 epochs repeats chapter 04's to the last digit "
                "recorded")
    assert sentence in text
    for name in ("none-d0", "none-d4"):
        assert rows[name]["same"] == rows[name]["compared"] == 30, rewrite(sentence)
    sentence = "was trained earlier, with an earlier version of bnlib, on another machine"
    assert sentence in text
    for name in RAW_BUDGET_RUNS:
        (budget,) = controls.runs_of(found, "budget", name)
        (twin,) = [r for r in controls.runs_of(found, "article", name) if r["seed"] == 0]
        assert twin["environment"]["cpu"] != budget["environment"]["cpu"], rewrite(sentence)
        assert twin["finished"] < budget["started"], rewrite(sentence)
        assert twin["runner"] != budget["runner"], rewrite(sentence)
    sentence = "With BN the runs part at the first evaluation"
    assert sentence in text
    for name in ("bn-both-d0", "bn-both-d4"):
        assert rows[name]["first_difference"] == 0.5, rewrite(sentence)
    sentence = ("By epoch 15 the BN run without dropout lies within the range of chapter "
                "04's three seeds; the one with dropout 0.4 lands below all three, whose "
                "range there is narrow (0.715–0.720).")
    assert sentence in text
    d0, d4 = rows["bn-both-d0"], rows["bn-both-d4"]
    assert d0["seeds_low"] <= d0["budget_15"] <= d0["seeds_high"], rewrite(sentence)
    assert d4["budget_15"] < d4["seeds_low"], rewrite(sentence)
    assert f"({d4['seeds_low']:.3f}–{d4['seeds_high']:.3f})" in sentence, rewrite(sentence)


def test_chapter_05_budget_prose_holds_in_the_files():
    """The paragraph after the budget's generated words, and the budget
    paragraph of the chapter's closing section."""
    import statistics

    from bnlib import article

    text = " ".join((ROOT / "notebooks" / "05_inputs.md").read_text().split())
    found = controls.load_control_results(
        controls.results_folders(get_profile("book"), ROOT / "results"))
    assert not controls.unfinished(found, [("budget", name) for name in RAW_BUDGET_RUNS])
    rows = {row["name"]: row for row in controls.budget_rows(found)
            if row["name"] in RAW_BUDGET_RUNS}
    leads = [controls.budget_lead(found, pair) for pair in controls.BUDGET_PAIRS]
    moved = {name: rows[name]["ours_40"] - rows[name]["ours_15"] for name in rows}
    article_moved = {name: rows[name]["article_40"] - rows[name]["article_15"]
                     for name in rows}

    def rewrite(sentence):
        return f"rewrite chapter 05's words on the longer budget: {sentence!r}"

    sentence = ("In our single runs, then, 25 more epochs leave BN's lead on raw pixels "
                "where it was: it holds at both dropout rates. Without dropout it rises a "
                "little only because the run without BN slips (by 0.011), while the BN run's "
                "two-epoch mean stays put (0.676 to 0.677) — though its single evaluations "
                "swing between 0.61 and 0.72 after epoch 15, and the epoch-40 window includes "
                "the dip at the end of the figure.")
    assert sentence in text
    assert [lead["word"] for lead in leads] == ["holds", "holds"], rewrite(sentence)
    bn = rows["bn-both-d0"]
    assert f"{-moved['none-d0']:.3f}" == "0.011" and abs(moved["bn-both-d0"]) < 0.001, \
        rewrite(sentence)
    assert [f"{bn[key]:.3f}" for key in ("ours_15", "ours_40")] == ["0.676", "0.677"], \
        rewrite(sentence)
    (run_9,) = controls.runs_of(found, "budget", "bn-both-d0")
    later = [p[4] for p in run_9["curve"] if p[1] > 15]
    assert (f"{min(later):.2f}", f"{max(later):.2f}") == ("0.61", "0.72"), rewrite(sentence)
    last_window = [p[4] for p in run_9["curve"] if 38 < p[1] <= 40]
    assert min(last_window) == min(later), rewrite(sentence)  # the dip is in the window
    sentence = ("The article's lead without dropout grows by epoch 40 instead, and the table "
                "shows where: the article's BN network climbs from 0.680 to 0.754, while the "
                "networks without BN, the article's and ours, each stay within 0.02 of where "
                "they were at epoch 15. That growth is a snapshot: over the article's last ten "
                "epochs (390–400) its lead without dropout falls to +0.167, below its +0.200 "
                "at epoch 15 (a shrink by the same yardstick), while at dropout 0.4 it ends at "
                "+0.169 (it holds).")
    assert sentence in text
    assert leads[0]["article_word"] == "grows", rewrite(sentence)
    assert [f"{bn[key]:.3f}" for key in ("article_15", "article_40")] == ["0.680", "0.754"], \
        rewrite(sentence)
    assert abs(moved["none-d0"]) < 0.02 and abs(article_moved["none-d0"]) < 0.02, \
        rewrite(sentence)
    assert [f"{lead['article_end']:+.3f}" for lead in leads] == ["+0.167", "+0.169"], \
        rewrite(sentence)
    assert f"{leads[0]['article_15']:+.3f}" == "+0.200", rewrite(sentence)
    assert [lead["article_end_word"] for lead in leads] == ["shrinks", "holds"], \
        rewrite(sentence)
    sentence = "at dropout 0.4 both BN runs gain about 0.01 in those epochs."
    assert sentence in text
    assert round(moved["bn-both-d4"], 2) == round(article_moved["bn-both-d4"], 2) == 0.01, \
        rewrite(sentence)
    sentence = ("A longer budget leaves the raw-pixel comparison where it was, in our single "
                "runs: from epoch 15 to epoch 40 none of our four networks' two-epoch means "
                "moves by more than about 0.01, so BN's lead holds at both dropout rates, "
                "while the article's BN network without dropout climbs from 0.680 to 0.754.")
    assert sentence in text
    assert round(max(abs(change) for change in moved.values()), 2) == 0.01, rewrite(sentence)
    sentence = ("ours (filled triangles) wobbles around 0.68 after epoch 15, the article's "
                "(hollow triangles) climbs to about 0.75 and stays there.")
    assert sentence in text  # Figure 5.5's caption
    assert round(statistics.fmean(later), 2) == 0.68, rewrite(sentence)
    steps, accuracies = article.curve(bn["run_id"], last_step=40 * article.STEPS_PER_EPOCH)
    settled = accuracies[steps > 25 * article.STEPS_PER_EPOCH]
    assert 0.745 <= settled.min() and settled.max() < 0.755, rewrite(sentence)
    sentence = ("Our BN network without dropout had already fit its training images by epoch "
                "15 (training accuracy 0.986, then 0.992 at epoch 40)")
    assert sentence in text
    assert (f"{bn['train_15']:.3f}", f"{bn['train_40']:.3f}") == ("0.986", "0.992"), \
        rewrite(sentence)
    sentence = ("The network without BN is still fitting them (0.896 to 0.962) while its test "
                "accuracy slips")
    assert sentence in text
    none = rows["none-d0"]
    assert (f"{none['train_15']:.3f}", f"{none['train_40']:.3f}") == ("0.896", "0.962"), \
        rewrite(sentence)
    assert none["ours_40"] < none["ours_15"], rewrite(sentence)
    # "four of our evaluations in each" (Figure 5.5), "twenty evaluations instead of four"
    assert "four of our evaluations in each" in text
    assert "(twenty evaluations instead of four)" in text
    for run in found["budget"]:
        counts = [sum(first < p[1] <= last for p in run["curve"])
                  for first, last in (*controls.BUDGET_WINDOWS,
                                      controls.WIDE_BUDGET_WINDOWS[1])]
        assert counts == [4, 4, 20], rewrite("four/twenty evaluations")
    standardized = [("budget", name) for name in controls.BUDGET_RUNS
                    if name not in RAW_BUDGET_RUNS]
    for sentence in ("The same four configurations with standardized inputs are not "
                     "trained for 40 epochs yet, so whether standardizing alone stays level "
                     "with BN over a longer budget is still open.",
                     "The standardized 40-epoch runs are not trained yet: their rows join "
                     "the table, and this paragraph their story, when they are."):
        assert sentence in text
        assert controls.unfinished(found, standardized), rewrite(sentence)



def test_exercise_5_single_runs_answer_holds_in_the_files():
    """Chapter 05's exercise 5: seed 0 alone, raw and standardized."""
    from bnlib.runner import load_results

    text = " ".join((ROOT / "notebooks" / "05_inputs.md").read_text().split())

    def seed_0(folder):
        runs = [r for r in load_results(ROOT / "results" / folder) if r["seed"] == 0]
        return {r["run_id"]: plots.last_n_means([r])[0] for r in runs}

    raw, standardized = seed_0("book"), seed_0("standardized")
    assert len(raw) == len(standardized) == 12
    sentence = ("With raw pixels one seed tells the article's story: run 11 (BN conv+dense, "
                "dropout 0.4) comes out best, and every BN placement without dropout ends "
                "above the best network without BN (3 of 3), by 0.08 to 0.09.")
    assert sentence in text
    best_no_bn = max((0, 1, 2), key=raw.get)
    margins = [raw[run_id] - raw[best_no_bn] for run_id in (3, 6, 9)]
    assert max(raw, key=raw.get) == 11
    assert (round(min(margins), 2), round(max(margins), 2)) == (0.08, 0.09)
    sentence = ("With standardized inputs the single runs tell another one: run 5 (BN conv, "
                "dropout 0.4) comes out best, and no BN with dropout 0.4 ends above every BN "
                "placement without dropout (0 of 3)")
    assert sentence in text
    assert max(standardized, key=standardized.get) == 5
    assert max((0, 1, 2), key=standardized.get) == 2
    assert all(standardized[2] > standardized[run_id] for run_id in (3, 6, 9))


def test_chapter_05_sentence_on_bn_against_dropout_with_standardized_inputs():
    """The closing section's sentence on the article's first claim with
    standardized inputs: final once every side has all its seeds."""
    text = " ".join((ROOT / "notebooks" / "05_inputs.md").read_text().split())
    found = controls.load_control_results(
        controls.results_folders(get_profile("book"), ROOT / "results"))
    sentence = ("the answer is already in (three seeds on every side), and it goes the other "
                "way: with standardized inputs the best network without BN, with dropout 0.4, "
                "ends clearly above BN on the convolutions and BN on the dense layer without "
                "dropout, and level with BN on both.")
    assert sentence in text
    claim = controls.article_claims(found["standardized"])[0]
    rewrite = f"rewrite chapter 05's closing sentence: {sentence!r}"
    assert claim.pairs == ((3, 2), (6, 2), (9, 2)), rewrite  # best: dropout 0.4, no BN
    assert controls.claim_verdicts(found["standardized"], claim) == [
        plots.CLEAR_OTHER_WAY, plots.CLEAR_OTHER_WAY, plots.WITHIN_SPREAD], rewrite
    assert not any(controls.claim_short_of_seeds(found["standardized"], claim, 3)), rewrite
