"""Chapter 05, "is it just the inputs?": which runs answer which question.

The article feeds raw 0-255 pixels to a network without input normalization,
so a BN layer after the first convolution also fixes the input scale. The
controls are four grids (see :mod:`bnlib.config`): ``article`` (chapter 04's
raw runs, ``results/book``), ``standardized`` (the same 12 with per-channel
standardized inputs), ``inputs`` (x/255 without BN, one BN layer on the raw
image, and the paper's BN-before-ReLU placement) and ``budget`` (runs 0, 2, 9
and 11 for 40 epochs, on raw pixels and with standardized inputs). A run is named ``(grid, run name)``; each question
compares two of them with the book's rule (:func:`bnlib.plots.compare_runs`).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import NamedTuple

from . import plots
from .config import Protocol, get_grid
from .runner import chapter_results_dir, results_if_any

GRIDS = ("article", "standardized", "inputs", "budget")


class Question(NamedTuple):
    key: str
    text: str
    better: tuple[str, str]   # (grid, run name) expected ahead
    worse: tuple[str, str]


QUESTIONS = (
    Question("std-helps-no-bn", "standardized vs raw inputs, no BN",
             ("standardized", "std-none-d0"), ("article", "none-d0")),
    Question("unit-helps-no-bn", "inputs /255 vs raw inputs, no BN",
             ("inputs", "unit-none-d0"), ("article", "none-d0")),
    Question("bn-beats-std", "BN conv+dense on raw inputs vs standardized inputs "
             "without BN", ("article", "bn-both-d0"), ("standardized", "std-none-d0")),
    Question("std-bn-conv", "with standardized inputs: BN conv vs no BN",
             ("standardized", "std-bn-conv-d0"), ("standardized", "std-none-d0")),
    Question("std-bn-dense", "with standardized inputs: BN dense vs no BN",
             ("standardized", "std-bn-dense-d0"), ("standardized", "std-none-d0")),
    Question("std-bn-both", "with standardized inputs: BN conv+dense vs no BN",
             ("standardized", "std-bn-both-d0"), ("standardized", "std-none-d0")),
    Question("std-bn-vs-raw-bn", "BN conv+dense: standardized vs raw inputs",
             ("standardized", "std-bn-both-d0"), ("article", "bn-both-d0")),
    Question("unit-vs-std", "inputs /255 vs standardized inputs, no BN",
             ("inputs", "unit-none-d0"), ("standardized", "std-none-d0")),
    Question("bn-inside-vs-unit", "BN conv+dense on raw inputs vs inputs /255 "
             "without BN", ("article", "bn-both-d0"), ("inputs", "unit-none-d0")),
    Question("bn-input-vs-none", "one BN layer on the input image vs nothing",
             ("inputs", "bninput-none-d0"), ("article", "none-d0")),
    Question("bn-inside-vs-input", "BN conv+dense vs one BN layer on the input image",
             ("article", "bn-both-d0"), ("inputs", "bninput-none-d0")),
    Question("before-relu-d0", "BN before vs after the ReLU, dropout 0",
             ("inputs", "bn-both-d0-before"), ("article", "bn-both-d0")),
    Question("before-relu-d4", "BN before vs after the ReLU, dropout 0.4",
             ("inputs", "bn-both-d4-before"), ("article", "bn-both-d4")),
)


def results_folders(protocol: Protocol, root) -> dict[str, Path]:
    """Where each grid's results are under ``protocol`` (the budget grid keeps
    its own 40-epoch profile under the book profile)."""
    return {name: chapter_results_dir(name, protocol, root) for name in GRIDS}


def load_control_results(folders: dict[str, Path]) -> dict[str, list[dict]]:
    """Finished results of each grid (an empty list where none exist yet)."""
    return {name: results_if_any(folder) for name, folder in folders.items()}


def runs_of(results: dict[str, list[dict]], grid: str, name: str) -> list[dict]:
    """The finished seeds of one run, named by its grid and run name."""
    return [r for r in results.get(grid, []) if r["name"] == name
            and r["status"] == "complete"]


def answer(results: dict[str, list[dict]], question: Question) -> dict:
    """The book's verdict on one question, with the two last-N means."""
    better, worse = (runs_of(results, *side) for side in (question.better,
                                                           question.worse))
    row = {"key": question.key, "question": question.text,
           **plots.compare_runs(better, worse)}
    for side, runs in (("better", better), ("worse", worse)):
        values = plots.last_n_means(runs)
        row[f"{side}_mean"] = statistics.fmean(values) if values else None
    return row


def answers(results: dict[str, list[dict]]) -> list[dict]:
    return [answer(results, question) for question in QUESTIONS]


def mean_accuracy(results, grid: str, name: str) -> float | None:
    values = plots.last_n_means(runs_of(results, grid, name))
    return statistics.fmean(values) if values else None


def gap_closed(results: dict[str, list[dict]]) -> dict | None:
    """How much of chapter 04's no-BN gap input standardization alone closes:
    (standardized no BN - raw no BN) / (raw BN conv+dense - raw no BN), on
    last-N means (dropout 0). None until the three runs exist."""
    raw_none = mean_accuracy(results, "article", "none-d0")
    raw_bn = mean_accuracy(results, "article", "bn-both-d0")
    std_none = mean_accuracy(results, "standardized", "std-none-d0")
    if None in (raw_none, raw_bn, std_none):
        return None
    return {"raw_none": raw_none, "raw_bn": raw_bn, "std_none": std_none,
            "gap": raw_bn - raw_none, "closed": std_none - raw_none,
            "share": (std_none - raw_none) / (raw_bn - raw_none),
            "std_seeds": len(runs_of(results, "standardized", "std-none-d0"))}


def planned_seeds(grid: str) -> int:
    """How many seeds each run of a control grid gets under its own profile."""
    from .config import get_profile

    return get_profile(get_grid(grid).profile).seeds


def _status(done: int, planned: int) -> str:
    return "not trained yet" if not done else f"{done} of {planned} seeds"


def unfinished(results: dict[str, list[dict]], runs) -> list[str]:
    """``"label (k of n seeds)"`` for each ``(grid, run name)`` with fewer
    finished seeds than its grid plans (``"label (not trained yet)"`` for none),
    the run named by its legend label, as in the chapter's tables."""
    notes = []
    for grid, name in dict.fromkeys(runs):
        done, planned = len(runs_of(results, grid, name)), planned_seeds(grid)
        if done < planned:
            notes.append(f"{get_grid(grid).run(name).label} ({_status(done, planned)})")
    return notes


def preliminary_note(results: dict[str, list[dict]], runs) -> str:
    """One PRELIMINARY line naming the unfinished runs, or ``""``."""
    notes = unfinished(results, runs)
    return ("" if not notes else
            "PRELIMINARY, still training: " + "; ".join(notes) + ".")


def standardized_runs_note(results: dict[str, list[dict]]) -> str:
    """The standardized grid's unfinished runs by the article's run ids (the
    scaling table's first column), grouped by how far they are, or ``""``."""
    planned = planned_seeds("standardized")
    by_status: dict[str, list[str]] = {}
    for run_id, config in enumerate(get_grid("article").runs):
        done = len(runs_of(results, "standardized", f"std-{config.name}"))
        if done < planned:
            by_status.setdefault(_status(done, planned), []).append(str(run_id))
    if not by_status:
        return ""
    parts = [f"{'runs' if len(ids) > 1 else 'run'} {plots.and_join(ids)} "
             f"{'are' if len(ids) > 1 else 'is'} {status}" if status == "not trained yet"
             else f"{'runs' if len(ids) > 1 else 'run'} {plots.and_join(ids)} "
                  f"{'have' if len(ids) > 1 else 'has'} {status}"
             for status, ids in by_status.items()]
    return ("PRELIMINARY: with standardized inputs, " + "; ".join(parts) + ".")


def question_runs() -> list[tuple[str, str]]:
    return [side for q in QUESTIONS for side in (q.better, q.worse)]


def answers_table(rows: list[dict], results: dict[str, list[dict]] | None = None):
    """The verdicts as a table (HTML on the page, text for nbval)."""
    def number(value, fmt):
        return "–" if value is None else format(value, fmt)

    questions = {q.key: q for q in QUESTIONS}
    cells = [[row["question"], number(row.get("better_mean"), ".3f"),
              number(row.get("worse_mean"), ".3f"),
              number(row.get("diff"), "+.3f"),
              "{}, {}".format(*row["seeds"]),
              row["verdict"] if row["verdict"] == plots.MISSING
              else _marked(row, questions[row["key"]])] for row in rows]
    note = preliminary_note(results, question_runs()) if results is not None else ""
    return plots.result_table(cells, ["question (first vs second)", "first",
                                      "second", "difference",
                                      "seeds (first, second)", "verdict"],
                            caption=note or None)


# --------------------------------------------------------------------------- figures
FIGURES = {
    # name: (title, [(label, grid, run name), ...])
    "no_bn_inputs": ("Without BN: how the input is scaled", [
        ("raw 0-255 (chapter 04)", "article", "none-d0"),
        ("inputs /255", "inputs", "unit-none-d0"),
        ("standardized", "standardized", "std-none-d0"),
        ("one BN layer on the input image", "inputs", "bninput-none-d0")]),
    "bn_with_standardized_inputs": ("BN conv+dense, raw vs standardized inputs", [
        ("no BN, raw", "article", "none-d0"),
        ("no BN, standardized", "standardized", "std-none-d0"),
        ("BN conv+dense, raw", "article", "bn-both-d0"),
        ("BN conv+dense, standardized", "standardized", "std-bn-both-d0")]),
    "bn_places_standardized": ("Standardized inputs: where BN goes", [
        ("no BN", "standardized", "std-none-d0"),
        ("BN conv", "standardized", "std-bn-conv-d0"),
        ("BN dense", "standardized", "std-bn-dense-d0"),
        ("BN conv+dense", "standardized", "std-bn-both-d0")]),
    "before_after_relu": ("BN after the ReLU (article) or before it (paper)", [
        ("after, dropout 0", "article", "bn-both-d0"),
        ("before, dropout 0", "inputs", "bn-both-d0-before"),
        ("after, dropout 0.4", "article", "bn-both-d4"),
        ("before, dropout 0.4", "inputs", "bn-both-d4-before")]),
}
# one color per run across the chapter's figures (a run keeps its color from
# figure to figure; chapter 04's colors where the run is one of its own)
SERIES_COLORS = {
    ("article", "none-d0"): "#303030",
    ("standardized", "std-none-d0"): "#6a51a3",
    ("inputs", "unit-none-d0"): "#b8860b",
    ("inputs", "bninput-none-d0"): "#8c564b",
    ("article", "bn-both-d0"): plots.COLORS[(True, True)][0.0],
    ("standardized", "std-bn-both-d0"): "#17becf",
    ("standardized", "std-bn-conv-d0"): plots.COLORS[(True, False)][0.0],
    ("standardized", "std-bn-dense-d0"): plots.COLORS[(False, True)][0.0],
    ("article", "bn-both-d4"): plots.COLORS[(True, True)][0.4],
    ("inputs", "bn-both-d0-before"): "#d62728",
    ("inputs", "bn-both-d4-before"): "#e377c2",
}


def control_figure(results: dict[str, list[dict]], name: str, y_limits=plots.Y_LIMITS):
    """One of :data:`FIGURES`: mean test accuracy per run over its seeds, the
    seeds' range shaded, epochs below and training steps on top. None while
    none of its runs has a finished result."""
    title, series = FIGURES[name]
    tag = plots.data_tag([r for runs in results.values() for r in runs])
    return plots.series_figure(
        [(label, runs_of(results, grid, run_name)) for label, grid, run_name in series],
        title + tag, y_limits,
        colors=[SERIES_COLORS[(grid, run_name)] for _, grid, run_name in series])


# --------------------------------------------------------------------------- budget
# The budget grid: the article's runs 0, 2, 9 and 11 for 40 epochs, one seed,
# on raw pixels and again with standardized inputs (``std-`` names, as in the
# standardized grid). Each run's 15-epoch twins (same configuration, three
# seeds) are in the grid of its input scaling.
BUDGET_RUNS = tuple(run.name for run in get_grid("budget").runs)
TWIN_GRIDS = {"raw": "article", "standardize": "standardized"}
BUDGET_WINDOWS = ((13, 15), (38, 40))  # the two epochs ending at 15 and at 40
# the same question with a five times wider late window, as a robustness check
WIDE_BUDGET_WINDOWS = ((13, 15), (30, 40))
# (BN, no BN) at dropout 0 and 0.4: on raw pixels, then with standardized inputs
BUDGET_PAIRS = (("bn-both-d0", "none-d0"), ("bn-both-d4", "none-d4"))
STANDARDIZED_BUDGET_PAIRS = tuple((f"std-{bn}", f"std-{none}") for bn, none in BUDGET_PAIRS)
# standardizing alone against BN conv+dense on raw pixels (dropout 0), over 40 epochs
STANDARDIZING_ALONE = ("std-none-d0", "bn-both-d0")


def twin_grid(name: str) -> str:
    """The 15-epoch grid holding the twins of budget run ``name``."""
    return TWIN_GRIDS[get_grid("budget").run(name).input_scaling]


def budget_rows(results: dict[str, list[dict]], windows=BUDGET_WINDOWS) -> list[dict]:
    """For each budget run: our test accuracy (one seed) and, on raw pixels,
    the article's (it never trained standardized inputs: None), mean over the
    evaluations in each window of epochs (first, last] (``ours_15``,
    ``article_15``, ...), and our running training accuracy over the same
    evaluations (``train_15``, ...; the article logged none). ``run_id`` is
    the configuration's id in the article's grid (and its standardized twin)."""
    from . import article

    rows = []
    for name in BUDGET_RUNS:
        runs = runs_of(results, "budget", name)
        grid = get_grid(twin_grid(name))
        run_id = grid.run_id(grid.run(name))
        raw = twin_grid(name) == "article"
        row = {"name": name, "run_id": run_id, "scaling": twin_grid(name),
               "label": get_grid("budget").run(name).label, "trained": bool(runs)}
        for first, last in windows:
            inside = [p for p in runs[0]["curve"] if first < p[1] <= last] if runs else []
            row[f"ours_{last}"] = statistics.fmean(p[4] for p in inside) if inside else None
            row[f"train_{last}"] = statistics.fmean(p[3] for p in inside) if inside else None
            row[f"article_{last}"] = (article.mean_accuracy_between(run_id, first, last)[0]
                                      if raw else None)
        rows.append(row)
    return rows


def bn_gap_over_budget(rows: list[dict], windows=BUDGET_WINDOWS,
                       pair: tuple[str, str] = BUDGET_PAIRS[0]) -> dict:
    """The first run of ``pair`` minus the second (BN conv+dense minus no BN,
    dropout 0, unless ``pair`` says otherwise), ours and the article's (None
    where it has no such run), at the end of each window: does the gap hold,
    shrink or grow with more epochs?"""
    by_name = {row["name"]: row for row in rows}
    gaps = {}
    for _, last in windows:
        for who in ("ours", "article"):
            bn, none = (by_name[n][f"{who}_{last}"] for n in pair)
            gaps[f"{who}_{last}"] = None if None in (bn, none) else bn - none
    return gaps


def seed_spread(results: dict[str, list[dict]], names) -> float | None:
    """The widest seed range (highest minus lowest seed's last-N mean) among
    these budget configurations in the 15-epoch grid of their inputs (chapter
    04's for raw pixels, the standardized grid for standardized inputs): how
    far one seed can land from another, the yardstick for a change seen in
    single runs. None while a configuration has fewer than its planned seeds."""
    ranges = []
    for name in names:
        values = plots.last_n_means(runs_of(results, twin_grid(name), name))
        if len(values) < planned_seeds(twin_grid(name)):
            return None
        ranges.append(max(values) - min(values))
    return max(ranges)


def gap_change_word(change: float, spread: float) -> str:
    """``holds`` when a gap moves by no more than ``spread``, else ``grows`` or
    ``shrinks``."""
    if abs(change) <= spread:
        return "holds"
    return "grows" if change > 0 else "shrinks"


def budget_against_twins(results: dict[str, list[dict]],
                         windows=BUDGET_WINDOWS) -> list[dict]:
    """Each finished budget run against its 15-epoch twin of the same
    configuration and seed (chapter 04's run on raw pixels, the standardized
    grid's run for standardized inputs) over the 15 epochs both trained:
    ``run_id``, ``twin_grid``, ``same`` (how many of the ``compared``
    evaluations have exactly the same training loss and test accuracy),
    ``first_difference`` (the epoch of the first evaluation that differs,
    None if none does), and the two runs' mean test accuracy in the window
    ending at epoch 15 (``budget_15``, ``twin_15``), with the lowest and
    highest of the twin's seeds in that window (``seeds_low``,
    ``seeds_high``)."""
    (first, last), _ = windows
    rows = []
    for name in BUDGET_RUNS:
        grid = twin_grid(name)
        seeds_in_window = plots.window_means(results.get(grid, []), first, last)
        for run in runs_of(results, "budget", name):
            twin = [r for r in runs_of(results, grid, name) if r["seed"] == run["seed"]]
            if not twin:
                continue
            ours, theirs = ([p for p in r["curve"] if p[1] <= last] for r in (run, twin[0]))
            pairs = list(zip(ours, theirs))
            differ = [a[1] for a, b in pairs if (a[2], a[4]) != (b[2], b[4])]
            window = [[p[4] for p in curve if first < p[1] <= last]
                      for curve in (ours, theirs)]
            if not all(window):  # shorter runs (the smoke profile): no window
                continue
            rows.append({"name": name, "seed": run["seed"], "run_id": twin[0]["run_id"],
                         "twin_grid": grid, "label": get_grid("budget").run(name).label,
                         "compared": len(pairs), "same": len(pairs) - len(differ),
                         "first_difference": differ[0] if differ else None,
                         "budget_15": statistics.fmean(window[0]),
                         "twin_15": statistics.fmean(window[1]),
                         "seeds_low": seeds_in_window[twin[0]["run_id"]]["low"],
                         "seeds_high": seeds_in_window[twin[0]["run_id"]]["high"]})
    return rows


def budget_twin_table(rows: list[dict], windows=BUDGET_WINDOWS):
    """:func:`budget_against_twins` as a table (short headers; the caption
    names the window and the twins' grids)."""
    from .article import window_label

    (first, last), _ = windows
    cells = [[f"{row['run_id']}: {row['label']}", f"{row['same']} of {row['compared']}",
              "–" if row["first_difference"] is None else f"{row['first_difference']:g}",
              f"{row['budget_15']:.3f}", f"{row['twin_15']:.3f}",
              f"{row['seeds_low']:.3f}–{row['seeds_high']:.3f}"] for row in rows]
    compared = {row["name"] for row in rows}
    for name in BUDGET_RUNS:  # the runs not compared yet keep their row
        if name not in compared:
            grid = get_grid(twin_grid(name))
            cells.append([f"{grid.run_id(grid.run(name))}: "
                          f"{get_grid('budget').run(name).label}", "not yet", "", "", "",
                          ""])
    return plots.result_table(cells, [
        "run", "evaluations the same", "first difference (epoch)",
        "40\u2011epoch run", "15\u2011epoch twin", "twin's seeds"], caption=(
        f"The first {last} epochs of each 40-epoch run (seed "
        f"{', '.join(sorted({str(row['seed']) for row in rows})) or '0'}) against its "
        f"twin, the 15-epoch run of the same configuration and seed (chapter 04's on raw "
        f"pixels, this chapter's standardized grid for standardized inputs); the last "
        f"three columns: mean test accuracy over {window_label(first, last)} (the twin's "
        f"seeds: lowest–highest)"))


def budget_lead(results: dict[str, list[dict]], pair: tuple[str, str],
                windows=BUDGET_WINDOWS) -> dict:
    """The lead of one budget run over another over the longer budget
    (``pair``: usually BN, then no BN): ``ours_15``/``ours_40`` and, when
    both are on raw pixels, ``article_15``/``article_40`` (see
    :func:`bn_gap_over_budget`) and ``article_end`` (the article's lead over
    its last ten epochs; None otherwise), ``run_ids``, ``missing`` (the
    unfinished runs, labelled), and once both runs are trained ``change``
    (epoch 40 minus epoch 15), ``moved`` (each run's own change, first run
    first), ``spread`` (see :func:`seed_spread`), ``word``, ``article_word``
    and ``article_end_word`` (the article's last ten epochs against its epoch
    15; see :func:`gap_change_word`; None without a spread or an article
    run)."""
    from . import article

    rows = budget_rows(results, windows)
    by_name = {row["name"]: row for row in rows}
    (_, first), (_, last) = windows
    end = article.epochs()
    raw = all(by_name[name]["scaling"] == "article" for name in pair)
    if raw:
        bn_end, none_end = (article.mean_accuracy_between(by_name[name]["run_id"],
                                                          end - 10, end)[0]
                            for name in pair)
    lead = {**bn_gap_over_budget(rows, windows, pair=pair),
            "article_end": bn_end - none_end if raw else None,
            "run_ids": tuple(by_name[name]["run_id"] for name in pair),
            "missing": unfinished(results, [("budget", name) for name in pair])}
    if not lead["missing"]:  # finished, but shorter than the windows (smoke runs)
        lead["missing"] = [f"{get_grid('budget').run(name).label} (ends before epoch "
                           f"{last})" for name in pair
                           if None in (by_name[name][f"ours_{first}"],
                                       by_name[name][f"ours_{last}"])]
    if lead["missing"]:
        return lead
    lead["change"] = lead[f"ours_{last}"] - lead[f"ours_{first}"]
    lead["moved"] = tuple(by_name[name][f"ours_{last}"] - by_name[name][f"ours_{first}"]
                          for name in pair)
    lead["spread"] = spread = seed_spread(results, pair)
    lead["word"] = None if spread is None else gap_change_word(lead["change"], spread)
    lead["article_word"] = lead["article_end_word"] = None
    if spread is not None and raw:
        lead["article_word"] = gap_change_word(
            lead[f"article_{last}"] - lead[f"article_{first}"], spread)
        lead["article_end_word"] = gap_change_word(
            lead["article_end"] - lead[f"article_{first}"], spread)
    return lead


def _lead_in_words(lead: dict, head: str, theirs: str = "") -> str:
    """One bullet of :func:`budget_markdown`: our lead at epoch 15 and 40,
    how far it moves, the word by the yardstick (and over the wider window),
    then ``theirs`` (the article's, if any)."""
    from .article import window_label

    (_, first), (_, last) = BUDGET_WINDOWS
    if lead["missing"]:
        return (f"{head} Ours: PRELIMINARY until these runs finish: "
                f"{'; '.join(lead['missing'])}.{theirs}")
    ours = (f"Ours: {lead[f'ours_{first}']:+.3f} at epoch {first}, "
            f"{lead[f'ours_{last}']:+.3f} at epoch {last}; the lead moves by "
            f"{lead['change']:+.3f} (the {lead['who'][0]} {lead['moved'][0]:+.3f}, the "
            f"{lead['who'][1]} {lead['moved'][1]:+.3f})")
    if lead["spread"] is None:
        return (f"{head} {ours}, with no yardstick until the 15-epoch grid has all "
                f"these runs' seeds.{theirs}")
    beyond = "no more than" if lead["word"] == "holds" else "more than"
    (_, _), (wide_first, _) = WIDE_BUDGET_WINDOWS
    return (f"{head} {ours}, {beyond} the yardstick's {lead['spread']:.3f}: it "
            f"*{lead['word']}* (over {window_label(wide_first, last)} instead, "
            f"{lead['wide'][f'ours_{last}']:+.3f}: it *{lead['wide']['word']}*).{theirs}")


def budget_markdown(results: dict[str, list[dict]]) -> str:
    """In words, one bullet per pair of budget runs: BN conv+dense's lead over
    no BN at each dropout rate on raw pixels (with the article's) and with
    standardized inputs, then standardizing alone against BN on raw pixels;
    at epoch 15 and at epoch 40 in our single 40-epoch runs, and whether the
    lead holds, grows or shrinks, measured against the seed spread of the
    same configurations in the 15-epoch grids (one seed per budget run, so
    the book's rule cannot judge these); PRELIMINARY while a run is missing."""
    from .article import epochs

    (_, first), (_, last) = BUDGET_WINDOWS
    end = epochs()
    lines = []
    for pair in BUDGET_PAIRS + STANDARDIZED_BUDGET_PAIRS:
        bn = get_grid("budget").run(pair[0])
        lead = {**budget_lead(results, pair), "who": ("BN run", "run without BN"),
                "wide": budget_lead(results, pair, WIDE_BUDGET_WINDOWS)}
        if lead["article_end"] is None:
            head = (f"- **Standardized inputs, dropout {bn.dropout:g}**, BN conv+dense "
                    f"against no BN (runs {lead['run_ids'][0]} and {lead['run_ids'][1]}, "
                    f"standardized).")
            theirs = ""
        else:
            head = (f"- **Dropout {bn.dropout:g}**, {bn.label.split(',')[0]} against no "
                    f"BN (runs {lead['run_ids'][0]} and {lead['run_ids'][1]}).")
            theirs = (f" The article's: {lead[f'article_{first}']:+.3f} at epoch {first}, "
                      f"{lead[f'article_{last}']:+.3f} at epoch {last}")
            if lead.get("article_word"):
                theirs += f" (it *{lead['article_word']}* by the same yardstick)"
            theirs += (f", and {lead['article_end']:+.3f} over epochs {end - 10}–{end} "
                       f"of its {end}")
            if lead.get("article_end_word"):
                theirs += f" (against its epoch {first}, it *{lead['article_end_word']}*)"
            theirs += "."
        lines.append(_lead_in_words(lead, head, theirs))
    alone = {**budget_lead(results, STANDARDIZING_ALONE),
             "who": ("standardized run", "raw BN run"),
             "wide": budget_lead(results, STANDARDIZING_ALONE, WIDE_BUDGET_WINDOWS)}
    lines.append(_lead_in_words(alone, (
        f"- **Standardizing alone against BN on raw pixels**, dropout 0: no BN with "
        f"standardized inputs against BN conv+dense on raw pixels (standardized run "
        f"{alone['run_ids'][0]}, raw run {alone['run_ids'][1]}; a positive lead: "
        f"standardizing ahead).")))
    return "\n".join(lines)


def show_control_figure(results: dict[str, list[dict]], name: str,
                        y_limits=plots.Y_LIMITS) -> None:
    """Draw one of :data:`FIGURES` and, while some of its runs are missing
    seeds, print which (so a partial figure says what it lacks)."""
    _, series = FIGURES[name]
    note = preliminary_note(results, [(grid, run) for _, grid, run in series])
    if note:
        print(note)
    show_figure(control_figure(results, name, y_limits), "this figure's runs")


def show_figure(fig, what: str) -> None:
    """Show a figure, or say that its runs are still to be trained."""
    import matplotlib.pyplot as plt

    if fig is None:
        print(f"PRELIMINARY: no finished run of {what} yet; the figure is drawn "
              f"from the result files once they exist.")
    else:
        plt.show()


def budget_table(rows: list[dict], windows=BUDGET_WINDOWS):
    """:func:`budget_rows` as a table: each window's mean, ours and the
    article's (short headers; the caption names the windows)."""
    from .article import window_label

    def number(row, who, last):
        value = row[f"{who}_{last}"]
        if value is not None:
            return f"{value:.3f}"
        return "not yet" if who == "ours" and not row["trained"] else "–"

    columns = ["run"]
    for first, last in windows:
        span = f"{first:g}\u2060–\u2060{last:g}"  # word joiners: the range never breaks
        columns += [f"ours {span}", f"article {span}"]
    cells = [[f"{row['run_id']}: {row['label']}"]
             + [number(row, who, last) for _, last in windows
                for who in ("ours", "article")] for row in rows]
    return plots.result_table(cells, columns, caption=(
        "Mean test accuracy over the evaluations of "
        + " and ".join(window_label(*window) for window in windows)
        + " (one seed each; \"not yet\": our run is still to train; –: the article "
          "trained no standardized inputs)"))


def budget_training_text(rows: list[dict], windows=BUDGET_WINDOWS) -> str:
    """Our runs' training accuracy in the two windows, one line per run."""
    from .article import window_label

    (first, end_15), (later, end_40) = windows
    lines = [f"training accuracy of our runs, {window_label(first, end_15)} -> "
             f"{window_label(later, end_40)} (the article logged none):"]
    for row in rows:
        if not row["trained"]:
            lines.append(f"  {row['run_id']:2d}: {row['label']}: not trained yet")
        elif row[f"train_{end_15}"] is None or row[f"train_{end_40}"] is None:
            lines.append(f"  {row['run_id']:2d}: {row['label']}: not trained that long")
        else:
            lines.append(f"  {row['run_id']:2d}: {row['label']}: {row[f'train_{end_15}']:.3f}"
                         f" -> {row[f'train_{end_40}']:.3f}")
    return "\n".join(lines)


def budget_figure(results: dict[str, list[dict]], y_limits=plots.Y_LIMITS):
    """Our 40-epoch runs (one seed), raw pixels with the article's curves on
    the same steps (left) and standardized inputs (right), a configuration
    in one color and marker in both panels; None while none has finished."""
    import matplotlib.pyplot as plt

    from . import article

    if not any(runs_of(results, "budget", name) for name in BUDGET_RUNS):
        return None

    fig, axes = plt.subplots(1, 2, figsize=(7.4, 5.2), dpi=plots.FIGURE_DPI,
                             layout="constrained", sharex=True, sharey=True)
    per_epoch, last_step = None, 0
    raw_names = [name for name in BUDGET_RUNS if twin_grid(name) == "article"]
    for ax, grid in zip(axes, SCALINGS):
        entries = []
        for position, raw_name in enumerate(raw_names):
            name = raw_name if grid == "article" else f"std-{raw_name}"
            runs = runs_of(results, "budget", name)
            if not runs:
                continue
            config = get_grid("budget").run(name)
            run_id = get_grid(grid).run_id(get_grid(grid).run(name))
            color = plots.run_color(run_id)  # chapter 04's, as in Figures 5.6-5.10
            marker = plots.MARKERS[position % len(plots.MARKERS)]
            curve = runs[0]["curve"]
            per_epoch = plots.steps_per_epoch(runs)
            steps = [p[0] for p in curve]
            last_step = max(last_step, steps[-1])
            # 80 evaluations on a half-width panel: a marker every other epoch
            (line,) = ax.plot([s / per_epoch for s in steps], [p[4] for p in curve], "-",
                              color=color, lw=2.0, marker=marker, markersize=4, zorder=3,
                              markevery=4)
            # the panel's title names the inputs: the legend gives the rest
            label = config.label.replace(", standardized inputs", "")
            entries.append((line, f"{run_id}: {label} (ours, 1 seed)"))
            if grid != "article":
                continue
            a_steps, a_acc = article.curve(run_id, last_step=steps[-1])
            if len(a_steps):
                (line,) = ax.plot(a_steps / per_epoch, a_acc, "-", color=color, lw=1.0,
                                  marker=marker, markersize=3.5, markerfacecolor="white",
                                  alpha=0.9, zorder=2, markevery=4)
                entries.append((line, f"{run_id}: {plots.ARTICLE_LABEL}"))
        ax.set_title(f"{SCALINGS[grid]}\n40 epochs"
                     + (" against the article's curves" if grid == "article" else ""),
                     fontsize=9)
        if entries:  # one column under each panel: the legends stay apart
            ax.legend(*zip(*entries), fontsize=plots.LEGEND_FONTSIZE, loc="upper center",
                      bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
        else:
            ax.text(0.5, 0.5, "PRELIMINARY: not trained yet", transform=ax.transAxes,
                    ha="center", va="center", fontsize=11, color="#555555")
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        top = plots.finish_accuracy_axes(ax, per_epoch, last_step, y_limits)
        if top is not None:  # 40 epochs' steps on a half-width panel: fewer labels
            top.xaxis.set_major_locator(MaxNLocator(4))
    tag = plots.data_tag([r for runs in results.values() for r in runs])
    if tag:
        fig.suptitle(tag.strip(), fontsize=10)
    return fig


# --------------------------------------------------------------------------- words
def _short_of_seeds(row: dict, question: Question) -> bool:
    """Does a side of this comparison still lack some of its planned seeds?"""
    return any(count < planned_seeds(grid) for count, (grid, _) in
               zip(row["seeds"], (question.better, question.worse)))


def _marked(row: dict, question: Question) -> str:
    """The verdict, marked PRELIMINARY while a side still lacks seeds."""
    return row["verdict"] + (" (PRELIMINARY)" if _short_of_seeds(row, question) else "")


def findings_markdown(results: dict[str, list[dict]]) -> str:
    """The chapter's findings in words, generated from the result files: the
    share of chapter 04's gap that standardizing closes, then the questions
    of :func:`answers_table` grouped by verdict (the table gives the numbers)."""
    lines = []
    notes = unfinished(results, question_runs())
    if notes:
        lines.append(f"- **PRELIMINARY, still training:** {'; '.join(notes)}. Verdicts "
                     f"on those runs will move as their seeds come in.")
    gap = gap_closed(results)
    if gap is not None:
        lines.append(
            f"- Chapter 04's gap between no BN ({gap['raw_none']:.3f}) and BN "
            f"conv+dense ({gap['raw_bn']:.3f}) on raw inputs is "
            f"{gap['gap']:+.3f}; standardizing the inputs alone, without BN, "
            f"reaches {gap['std_none']:.3f} ({gap['std_seeds']} seed"
            f"{'s' if gap['std_seeds'] > 1 else ''}) and so closes "
            f"**{100 * gap['share']:.0f} %** of that gap{_more_than_all(gap, results)}")
    # the table above gives each comparison's numbers: here, which way each went
    groups: dict[str, list[str]] = {}
    for question, row in zip(QUESTIONS, answers(results)):
        groups.setdefault(row["verdict"], []).append(
            question.text + (" (PRELIMINARY)" if row["verdict"] != plots.MISSING
                             and _short_of_seeds(row, question) else ""))
    for verdict, words in FINDINGS_GROUPS.items():
        if groups.get(verdict):
            lines.append(f"- {words} ({len(groups[verdict])} of {len(QUESTIONS)}): "
                         f"{'; '.join(groups[verdict])}.")
    return "\n".join(lines)


# how findings_markdown names each group of verdicts (the first side of each
# question is the one expected ahead)
FINDINGS_GROUPS = {
    plots.CLEAR: "*Clear*, the first network ahead",
    plots.CLEAR_OTHER_WAY: "*Clear the other way*, the second network ahead",
    plots.WITHIN_SPREAD: "*Within spread*, level by the book's rule",
    plots.ONE_SEED: "Not judged yet, one seed on a side",
    plots.MISSING: "Not trained yet",
}


def _more_than_all(gap: dict, results: dict[str, list[dict]]) -> str:
    """The end of the sentence "... closes N % of that gap": what a share above
    100 % means under the book's rule (standardized no BN ahead of raw BN
    conv+dense on the means, but clearly ahead?), with the seed ranges named so
    the reader can apply the rule."""
    if gap["share"] <= 1:
        return "."
    verdict = answer(results, _question("bn-beats-std"))["verdict"]
    ranges = {}
    for side, (grid, name) in (("std", ("standardized", "std-none-d0")),
                               ("raw", ("article", "bn-both-d0"))):
        values = plots.last_n_means(runs_of(results, grid, name))
        ranges[side] = f"{min(values):.3f}–{max(values):.3f}"
    if verdict == plots.CLEAR_OTHER_WAY:
        return (f" on the means, and clearly more than all of it: every seed of "
                f"standardized inputs without BN ({ranges['std']}) ends ahead of every "
                f"seed of BN conv+dense on raw pixels ({ranges['raw']}).")
    if verdict == plots.WITHIN_SPREAD:
        return (f" on the means. The seed ranges overlap ({ranges['std']} against "
                f"{ranges['raw']} for BN conv+dense on raw pixels), so by the book's "
                f"rule the two end level: standardizing alone closes the whole gap.")
    return " on the means; one seed on a side, no verdict."


def _question(key: str) -> Question:
    return QUESTIONS[[q.key for q in QUESTIONS].index(key)]


HEADLINE_VERDICT_WORDS = {
    plots.CLEAR: "every BN seed ahead: BN's lead survives the control",
    plots.CLEAR_OTHER_WAY: "every seed without BN ahead: BN's lead does not survive "
                           "the control",
    plots.WITHIN_SPREAD: "the seed ranges overlap: on this evidence BN's lead does "
                         "not clearly survive the control",
    plots.ONE_SEED: "one seed on a side, so no verdict yet",
}


def headline_markdown(results: dict[str, list[dict]]) -> str:
    """The introduction's (and chapters 04's and 05's) summary of chapter 05's
    control, written from the result files: a lead-in, then one bullet each
    for chapter 04's BN gap (dropout 0), how much of it standardizing the
    inputs alone closes, the other fixes of the input scale, whether (and by
    how much) BN conv+dense still beats no BN with standardized inputs, where
    BN goes with standardized inputs, whether BN's lead on raw pixels holds
    over 40 epochs, and the article's three claims on the whole standardized
    grid. Each place that embeds it says whose it is, so
    it names no chapter; PRELIMINARY wherever a run still lacks seeds."""
    gap = gap_closed(results)
    if gap is None:
        return ("The comparison with standardized inputs is not trained yet.")
    seeds = planned_seeds("standardized")
    lines = [
        "The article feeds raw 0–255 pixels to the network, so BN after the first "
        "convolution's ReLU also rescales what every later layer sees. The comparison "
        "without dropout (no BN against BN conv+dense), repeated with standardized "
        "inputs (each color channel shifted and scaled by its mean and standard "
        "deviation over the training split), and over a longer budget:",
        "",
        f"- On raw pixels BN conv+dense leads no BN by {gap['gap']:+.3f} "
        f"({gap['raw_bn']:.3f} against {gap['raw_none']:.3f}).",
        f"- Standardizing alone, without BN, reaches {gap['std_none']:.3f} "
        f"({_seeds(gap['std_seeds'], seeds)}): {100 * gap['share']:.0f} % of that "
        f"gap{_more_than_all(gap, results)}"]
    other = _other_fixes(results)
    if other:
        lines.append(f"- {other}")
    std_bn = runs_of(results, "standardized", "std-bn-both-d0")
    if std_bn:
        row = answer(results, _question("std-bn-both"))
        lines.append(
            f"- With standardized inputs BN conv+dense reaches {row['better_mean']:.3f} "
            f"({_seeds(len(std_bn), seeds)}), {row['diff']:+.3f} over no BN, "
            f"{HEADLINE_VERDICT_WORDS[row['verdict']]}, at "
            f"{100 * row['diff'] / gap['gap']:.0f} % of its size on raw pixels "
            f"({row['diff']:+.3f} against {gap['gap']:+.3f}).")
    placement = _placement_standardized(results)
    if placement:
        lines.append(f"- {placement}")
    lines.append(f"- {_budget_in_brief(results)}")
    lines.append(f"- {_claims_in_brief(results)}")
    return "\n".join(lines)


def _budget_in_brief(results: dict[str, list[dict]]) -> str:
    """The headline's bullet on the longer budget: BN's lead without dropout
    at epoch 15 and at epoch 40 (one seed per run) and whether it holds,
    grows or shrinks, on raw pixels with the article's, then with
    standardized inputs, and standardizing alone against raw BN."""
    from .article import epochs

    lead = budget_lead(results, BUDGET_PAIRS[0])
    (_, first), (_, last) = BUDGET_WINDOWS
    if lead["missing"] or lead["spread"] is None:
        missing = "; ".join(lead["missing"]) or "the 15-epoch grid's seeds of these runs"
        return (f"Whether BN conv+dense's lead over no BN on raw pixels holds over "
                f"{last} epochs instead of {first} is measured once the longer runs are "
                f"trained (PRELIMINARY, still to train: {missing}).")
    beyond = "no more than" if lead["word"] == "holds" else "more than"
    raw = (f"Trained on raw pixels for {last} epochs instead of {first} (one seed per "
           f"run), BN conv+dense's lead over no BN changes by {lead['change']:+.3f}: "
           f"{lead[f'ours_{first}']:+.3f} at epoch {first}, {lead[f'ours_{last}']:+.3f} "
           f"at epoch {last}. That is {beyond} the widest seed range of these "
           f"configurations at {first} epochs ({lead['spread']:.3f}), so by this looser, "
           f"one-seed yardstick (not the book's rule) it *{lead['word']}*. Both leads are "
           f"means over the two epochs ending there, in this one pair of runs; the "
           f"{gap_closed(results)['gap']:+.3f} above averages three seeds' last five "
           f"evaluations. The article's single runs: {lead[f'article_{first}']:+.3f}, "
           f"then {lead[f'article_{last}']:+.3f} at epoch {last}, and "
           f"{lead['article_end']:+.3f} over epochs {epochs() - 10}–{epochs()} of its "
           f"{epochs()}.")
    standardized = budget_lead(results, STANDARDIZED_BUDGET_PAIRS[0])
    alone = budget_lead(results, STANDARDIZING_ALONE)
    if standardized["missing"] or alone["missing"]:
        missing = "; ".join(dict.fromkeys(standardized["missing"] + alone["missing"]))
        return (f"{raw} The same pair with standardized inputs, over {last} epochs: "
                f"PRELIMINARY until these runs finish: {missing}.")
    if standardized["spread"] is None:
        word = "(no yardstick until the standardized grid has all its seeds)"
    else:
        word = f"by the same yardstick ({standardized['spread']:.3f}) it *{standardized['word']}*"
    return (f"{raw} With standardized inputs the same pair's lead goes from "
            f"{standardized[f'ours_{first}']:+.3f} to {standardized[f'ours_{last}']:+.3f}: "
            f"{word}; standardizing alone, against BN conv+dense on raw pixels, goes from "
            f"{alone[f'ours_{first}']:+.3f} to {alone[f'ours_{last}']:+.3f}.")


def _seeds(count: int, planned: int) -> str:
    """``3 seeds`` for a finished run, ``PRELIMINARY, 2 of 3 seeds so far`` for
    one still training."""
    if count >= planned:
        return f"{count} seed{'s' if count > 1 else ''}"
    return f"PRELIMINARY, {count} of {planned} seeds so far"


# a fix of the input scale without BN on any hidden layer, against raw BN
# conv+dense (the question's "better" side): its verdict read from the fix's side
AGAINST_RAW_BN = {
    plots.CLEAR: "every seed below every seed of BN conv+dense on raw pixels",
    plots.CLEAR_OTHER_WAY: "every seed above every seed of BN conv+dense on raw pixels",
    plots.WITHIN_SPREAD: "level with BN conv+dense on raw pixels, the seed ranges "
                         "overlapping",
    plots.ONE_SEED: "too few seeds to judge",
}
OTHER_FIXES = (("bn-inside-vs-unit", "inputs divided by 255 reach"),
               ("bn-inside-vs-input", "one BN layer on the raw image reaches"))
# inputs /255 (the question's "better" side) against standardized inputs
UNIT_AGAINST_STD = {
    plots.CLEAR: "Inputs divided by 255 end clearly above standardized inputs",
    plots.CLEAR_OTHER_WAY: "Inputs divided by 255 end clearly below standardized inputs",
    plots.WITHIN_SPREAD: "Inputs divided by 255 and standardized inputs end level with "
                         "each other",
}


def _other_fixes(results: dict[str, list[dict]]) -> str:
    """The headline's bullet on the two other fixes of the input scale (x/255,
    one BN layer on the image), each with no BN on any hidden layer, against
    raw BN conv+dense, and x/255 against standardized inputs; ``""`` until one
    of them has a finished run."""
    parts = []
    for key, words in OTHER_FIXES:
        question = _question(key)
        row = answer(results, question)
        fix_runs = runs_of(results, *question.worse)
        if not fix_runs or row["verdict"] == plots.MISSING:
            continue
        seeds = _seeds(len(fix_runs), planned_seeds(question.worse[0]))
        parts.append(f"{words} {row['worse_mean']:.3f} ({seeds}), "
                     f"{AGAINST_RAW_BN[row['verdict']]}")
    if not parts:
        return ""
    text = ("Two other fixes of the input scale, with no BN on any hidden layer: "
            + "; ".join(parts) + ".")
    row = answer(results, _question("unit-vs-std"))
    if row["verdict"] in UNIT_AGAINST_STD:
        text += f" {UNIT_AGAINST_STD[row['verdict']]} ({row['diff']:+.3f})."
    return text


PLACEMENT_WORDS = {plots.CLEAR: "clearly above", plots.CLEAR_OTHER_WAY: "clearly below",
                   plots.WITHIN_SPREAD: "level with",
                   plots.ONE_SEED: "not yet judged (one seed) against"}


def _placement_standardized(results: dict[str, list[dict]]) -> str:
    """Where BN goes with standardized inputs and no dropout: BN conv+dense
    against BN on the convolutions and on the dense layer alone; ``""`` until
    the three have finished runs."""
    names = {"conv+dense": "std-bn-both-d0", "conv": "std-bn-conv-d0",
             "dense": "std-bn-dense-d0"}
    runs = {where: runs_of(results, "standardized", name) for where, name in names.items()}
    if not all(runs.values()):
        return ""
    planned = planned_seeds("standardized")
    means = ", ".join(f"BN {where} {mean_accuracy(results, 'standardized', name):.3f}"
                      for where, name in names.items())
    seeds = (f"{planned} seeds each" if min(map(len, runs.values())) >= planned
             else "PRELIMINARY: seeds still training")
    verdict_of = {where: plots.compare_runs(runs["conv+dense"], runs[where])["verdict"]
                  for where in ("conv", "dense")}
    verdicts = [f"{PLACEMENT_WORDS[verdict]} BN {where}"
                for where, verdict in verdict_of.items()]
    return (f"Where BN goes, with standardized inputs and no dropout: {means} ({seeds}); "
            f"BN conv+dense: {' and '.join(verdicts)}.")


# --------------------------------------------------------------------------- the whole grid
# The article's grid again with standardized inputs (the "standardized" grid has
# the article's run ids 0-11): its five figures, its summary table and its three
# claims, each beside chapter 04's raw-input version.
SCALINGS = {"article": "raw 0–255 inputs", "standardized": "standardized inputs"}


def article_figure_pair(results: dict[str, list[dict]], name: str,
                        y_limits=plots.Y_LIMITS, number: str = ""):
    """One of the article's five figures (:data:`bnlib.plots.FIGURE_ORDER`)
    twice, raw inputs (chapter 04, left) and standardized inputs (right), on
    the same axes, headed ``number`` (e.g. "Figure 5.6"); each panel picks
    its own "best" run for the ``best`` figure ("so far" while some
    configuration lacks seeds, since a one-seed mean is noisier and a
    maximum favours it). None while the standardized grid has no finished
    run."""
    import matplotlib.pyplot as plt

    finished = {grid: [r for r in results.get(grid, []) if r["status"] == "complete"]
                for grid in SCALINGS}
    if not finished["standardized"] or not finished["article"]:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(7.4, 5.2), dpi=plots.FIGURE_DPI,
                             layout="constrained", sharex=True, sharey=True)
    for ax, (grid, label) in zip(axes, SCALINGS.items()):
        title, run_ids = plots.figure_specs(finished[grid])[name]
        seeds = [len(runs) for runs in plots.group_by_run(finished[grid]).values()]
        if (len(seeds) < len(get_grid("article").runs)
                or min(seeds) < planned_seeds(grid)):
            title = title.replace("Best run", "Best run so far", 1)
        entries = plots.plot_runs(ax, plots.group_by_run(finished[grid]), run_ids,
                                  y_limits=y_limits, with_article=grid == "article")
        # two short lines a panel: the two titles must not run into each other
        ax.set_title(f"{label}\n{title}", fontsize=9)
        if entries:  # one column under each panel: the legends stay apart too
            ax.legend(*zip(*entries), fontsize=plots.LEGEND_FONTSIZE, loc="upper center",
                      bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
        else:  # none of this figure's runs has finished in this grid
            ax.text(0.5, 0.5, "PRELIMINARY: not trained yet", transform=ax.transAxes,
                    ha="center", va="center", fontsize=11, color="#555555")
    heading = f"{number}{plots.data_tag(finished['article'] + finished['standardized'])}"
    if heading.strip():
        fig.suptitle(heading.strip(), fontsize=10)
    return fig


def scaling_rows(results: dict[str, list[dict]]) -> list[dict]:
    """Per run id of the article's grid, with raw and with standardized
    inputs: its summary row and each seed's last-N mean (``<grid>_seeds``),
    and the book's verdict on standardized vs raw."""
    rows = []
    summaries = {grid: {row["run_id"]: row for row in plots.summary_rows(
        [r for r in results.get(grid, []) if r["status"] == "complete"])}
        if results.get(grid) else {} for grid in SCALINGS}
    grouped = {grid: plots.group_by_run(results.get(grid, [])) for grid in SCALINGS}
    for run_id, config in enumerate(get_grid("article").runs):
        row = {"run_id": run_id, "label": config.label}
        for grid in SCALINGS:
            row[grid] = summaries[grid].get(run_id)
            row[f"{grid}_seeds"] = plots.last_n_means(
                [r for r in grouped[grid].get(run_id, []) if r["status"] == "complete"])
        row["verdict"] = plots.compare_runs(grouped["standardized"].get(run_id, []),
                                            grouped["article"].get(run_id, []))
        rows.append(row)
    return rows


def scaling_ranges_figure(results: dict[str, list[dict]]):
    """The summary table as a picture: each configuration's seeds (a bar from
    the lowest to the highest seed's last-N mean, a marker at their mean),
    raw inputs on the left and standardized on the right, each panel on its
    own accuracy axis so that the differences inside a grid show; a bar is
    missing while its configuration has fewer than two seeds. None while the
    standardized grid has no finished run."""
    import matplotlib.pyplot as plt

    rows = scaling_rows(results)
    if not any(row["standardized_seeds"] for row in rows):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(7.4, 4.6), dpi=plots.FIGURE_DPI,
                             layout="constrained", sharey=True)
    for ax, grid in zip(axes, SCALINGS):
        for row in rows:
            values = row[f"{grid}_seeds"]
            if not values:
                continue
            y = len(rows) - 1 - row["run_id"]  # run 0 at the top, as in the table
            color = plots.run_color(row["run_id"])
            if len(values) > 1:  # the seeds' range, its ends capped: a short bar
                ax.plot([min(values), max(values)], [y, y], "-", color=color, lw=2.5,
                        solid_capstyle="butt", marker="|", markersize=9,
                        markeredgewidth=1.5)  # shows its ends beside the dot
            full = len(values) >= planned_seeds(grid)
            ax.plot([statistics.fmean(values)], [y], "o", color=color, markersize=4.5,
                    markeredgecolor="black" if full else color, markeredgewidth=1.2,
                    markerfacecolor=color if full else "white")
        ax.set_title(SCALINGS[grid], fontsize=10)
        ax.set_xlabel(f"last-{plots.LAST_N_EVALS} mean test accuracy", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(range(len(rows)),
                       [f"{row['run_id']}: {row['label']}" for row in reversed(rows)],
                       fontsize=8)
    tag = plots.data_tag([r for grid in SCALINGS for r in results.get(grid, [])])
    if tag:
        fig.suptitle(tag.strip(), fontsize=10)
    return fig


# a verdict in a narrow table cell: the rule itself is stated above the table
SHORT_VERDICTS = {plots.CLEAR: "clear", plots.CLEAR_OTHER_WAY: "clear, other way",
                  plots.WITHIN_SPREAD: "within spread", plots.ONE_SEED: "one seed",
                  plots.MISSING: "not trained yet"}


def scaling_table(rows: list[dict], results: dict[str, list[dict]] | None = None):
    """The article's twelve configurations, raw vs standardized inputs."""
    def cell(values):  # mean [lowest, highest] (seeds): the range the rule compares
        if not values:
            return "–"
        if len(values) < 2:
            return f"{values[0]:.3f} (1)"
        return f"{plots.mean_range(values)}\u00a0({len(values)})"

    def verdict(row):  # "so far": judged while a side is short of its seeds
        word = SHORT_VERDICTS.get(row["verdict"]["verdict"], row["verdict"]["verdict"])
        judged = row["verdict"]["verdict"] in (plots.CLEAR, plots.CLEAR_OTHER_WAY,
                                               plots.WITHIN_SPREAD)
        short = min(len(row[f"{grid}_seeds"]) - planned_seeds(grid) for grid in SCALINGS)
        return f"{word} (so far)" if judged and short < 0 else word

    cells = [[str(row["run_id"]), row["label"], cell(row["article_seeds"]),
              cell(row["standardized_seeds"]),
              "–" if row["verdict"]["verdict"] == plots.MISSING
              else f"{row['verdict']['diff']:+.3f}", verdict(row)]
             for row in rows]
    note = standardized_runs_note(results) if results is not None else ""
    return plots.result_table(
        cells, ["run", "configuration", "raw (seeds)", "standardized (seeds)",
                "standardized − raw", "verdict"], caption=note or None)


class Claim(NamedTuple):
    key: str
    text: str
    pairs: tuple[tuple[int, int | None], ...]  # (better, worse) run ids; None: unknown yet
    # run ids whose seeds decide the pairs besides their own (the candidates
    # for "the best network without BN")
    depends: tuple[int, ...] = ()


def article_claims(results: list[dict]) -> tuple[Claim, ...]:
    """The article's three claims as chapter 04 tests them, in one grid's run
    ids: BN (each placement, dropout 0) against the best network without BN;
    BN conv+dense against the other placements at each dropout rate; dropout
    0.2 and 0.4 against none for each BN placement. The best network
    without BN is named once all three have two seeds (a one-seed mean is
    noisier, and a maximum favors it); while one of them is short of its
    planned seeds, the verdicts against it are PRELIMINARY
    (:func:`claim_short_of_seeds`)."""
    rows = {row["run_id"]: row for row in plots.summary_rows(
        [r for r in results if r["status"] == "complete"])}
    no_bn = [run_id for run_id in (0, 1, 2) if rows.get(run_id, {}).get("seeds", 0) >= 2]
    best_no_bn = (max(no_bn, key=lambda r: rows[r]["last_n_mean"]) if len(no_bn) == 3
                  else None)
    return (
        Claim("bn-beats-dropout", "each BN placement without dropout against the best "
              "network without BN", tuple((bn, best_no_bn) for bn in (3, 6, 9)),
              depends=(0, 1, 2)),
        Claim("conv-dense-best", "BN conv+dense against BN on the convolutions or "
              "the dense layer only, at each dropout rate",
              tuple((both, other) for both, conv in ((9, 3), (10, 4), (11, 5))
                    for other in (conv, conv + 3))),
        Claim("dropout-helps-bn", "dropout 0.2 and 0.4 against none, for each BN "
              "placement", tuple((base + d, base) for base in (3, 6, 9) for d in (1, 2))),
    )


# a comparison against "the best network without BN" before that is known
NO_BASELINE = "no baseline yet"


def claim_verdicts(results: list[dict], claim: Claim) -> list[str]:
    """The book's verdict on each of a claim's comparisons in one grid."""
    return [NO_BASELINE if worse is None else
            plots.compare(results, better, worse)["verdict"]
            for better, worse in claim.pairs]


def _tally(verdicts) -> dict[str, int]:
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def wobbles(results: list[dict]) -> dict[int, list[float]]:
    """Per run id of one grid, each finished seed's wobble (the standard
    deviation of its last N test evaluations, :func:`bnlib.plots.stability_rows`)."""
    return {row["run_id"]: row["within_run_stds"] for row in plots.stability_rows(
        [r for r in results if r["status"] == "complete"])}


def steadiness_verdicts(results: list[dict], claim: Claim) -> list[str]:
    """The verdict on each of a claim's comparisons when each seed is judged
    by its wobble instead of its accuracy, lower being steadier (the
    "better" side of a pair is the one the claim expects steadier)."""
    per_seed = wobbles(results)
    return [NO_BASELINE if worse is None else
            plots.compare_values(*[[-w for w in per_seed.get(run_id, [])]
                                   for run_id in (better, worse)])["verdict"]
            for better, worse in claim.pairs]


def _seed_counts(results: list[dict]) -> dict[int, int]:
    """Finished seeds per run id of one grid."""
    return {run_id: len(runs) for run_id, runs in plots.group_by_run(
        [r for r in results if r["status"] == "complete"]).items()}


def claim_short_of_seeds(results: list[dict], claim: Claim, planned: int) -> list[bool]:
    """For each of a claim's comparisons: is a side short of its ``planned``
    seeds (its verdict, if any, PRELIMINARY)?"""
    seeds = _seed_counts(results)
    return [worse is None or min(seeds.get(run_id, 0)
                                 for run_id in (better, worse, *claim.depends)) < planned
            for better, worse in claim.pairs]


VERDICT_SHORT = {plots.CLEAR: "clear, as claimed",
                 plots.CLEAR_OTHER_WAY: "clear, against the claim",
                 plots.WITHIN_SPREAD: "within spread",
                 plots.ONE_SEED: "not judged yet (a side has one seed)",
                 plots.MISSING: "not trained yet",
                 NO_BASELINE: "not judged yet (no best network without BN yet)"}


# the claims whose words are about stability: chapter 04 judges them on the
# wobble too ("the most stable"; with dropout the BN networks "seem more stable")
STEADINESS_CLAIMS = ("conv-dense-best", "dropout-helps-bn")


def steadiness_table(results: dict[str, list[dict]]):
    """Each configuration's wobble with raw and with standardized inputs:
    the mean over seeds, then the lowest and highest seed, and the seeds."""
    per_grid = {grid: wobbles(results.get(grid, [])) for grid in SCALINGS}

    def cell(values):
        if not values:
            return "–"
        if len(values) < 2:
            return f"{values[0]:.4f} (1)"
        return f"{plots.mean_range(values, digits=4)}\u00a0({len(values)})"

    cells = [[str(run_id), config.label] + [cell(per_grid[grid].get(run_id, []))
                                             for grid in SCALINGS]
             for run_id, config in enumerate(get_grid("article").runs)]
    return plots.result_table(
        cells, ["run", "configuration", "wobble, raw (seeds)",
                "wobble, standardized (seeds)"],
        caption=f"Wobble: the standard deviation of a run's last {plots.LAST_N_EVALS} test "
                f"evaluations; mean over seeds [lowest, highest seed] (number of seeds)")


def steadiness_text(results: dict[str, list[dict]]) -> str:
    """Under :func:`steadiness_table`: in how many configurations the mean
    wobble is lower with standardized inputs than with raw pixels, and the
    range of the mean wobbles with and without BN in each grid."""
    means = {grid: {run_id: statistics.fmean(values)
                    for run_id, values in wobbles(results.get(grid, [])).items()}
             for grid in SCALINGS}
    both = [run_id for run_id in means["article"] if run_id in means["standardized"]]
    if not both:
        return "No configuration has finished runs in both grids yet."
    lower = [run_id for run_id in both
             if means["standardized"][run_id] < means["article"][run_id]]
    lines = [f"mean wobble lower with standardized inputs than with raw pixels: "
             f"{len(lower)} of {len(both)} configurations"]
    note = standardized_runs_note(results)
    if note:
        lines.insert(0, note + " Their mean wobbles below will move.")
    configs = get_grid("article").runs
    for words, with_bn in (("with BN", True), ("without BN", False)):
        ranges = []
        for grid in SCALINGS:
            values = [value for run_id, value in means[grid].items()
                      if bool(configs[run_id].bn_conv or configs[run_id].bn_dense) == with_bn]
            ranges.append(f"{min(values):.4f}–{max(values):.4f}" if values else "–")
        lines.append(f"networks {words}, mean wobble per configuration: raw "
                     f"{ranges[0]}, standardized {ranges[1]}")
    return "\n".join(lines)


CLAIM_NAMES = {"bn-beats-dropout": "BN beats dropout",
               "conv-dense-best": "BN conv+dense is the most stable",
               "dropout-helps-bn": "dropout still helps with BN"}


def _counts_text(results: list[dict], claim: Claim, separator: str = ", ",
                 verdicts=claim_verdicts, planned: int = 3) -> str:
    """How many of a claim's comparisons get each verdict, in words
    (``verdicts``: :func:`claim_verdicts` or :func:`steadiness_verdicts`),
    marking the verdicts of the rule drawn while a side has fewer than
    ``planned`` seeds."""
    found = verdicts(results, claim)
    early = claim_short_of_seeds(results, claim, planned)
    counts = _tally(found)
    judged = (plots.CLEAR, plots.CLEAR_OTHER_WAY, plots.WITHIN_SPREAD)
    preliminary = _tally(v for v, short in zip(found, early) if short and v in judged)

    def words(verdict):
        text = f"{counts[verdict]} of {len(claim.pairs)} {VERDICT_SHORT[verdict]}"
        if preliminary.get(verdict):
            text += (" (PRELIMINARY: a side short of its seeds)"
                     if preliminary[verdict] == counts[verdict] else
                     f" ({preliminary[verdict]} of them PRELIMINARY: a side short of "
                     f"its seeds)")
        return text

    return separator.join(words(v) for v in VERDICT_SHORT if counts.get(v))


def _claims_in_brief(results: dict[str, list[dict]]) -> str:
    """The headline's last bullet: the article's three claims on the whole
    standardized grid beside the raw one, once every configuration has its
    seeds; until then, how far the standardized grid is."""
    configs = [f"std-{c.name}" for c in get_grid("article").runs]
    planned = planned_seeds("standardized")
    done = sum(len(runs_of(results, "standardized", name)) >= planned for name in configs)
    if done < len(configs):
        return (f"The article's three claims (BN beats dropout, BN conv+dense is the most "
                f"stable, dropout still helps with BN) are judged again with standardized "
                f"inputs once chapter 05's whole grid is trained (PRELIMINARY: {done} of "
                f"its {len(configs)} configurations have all their seeds).")
    raw_claims, std_claims = (article_claims(results.get(grid, []))
                              for grid in ("article", "standardized"))
    parts = [f"{CLAIM_NAMES[std.key]}: "
             f"{_counts_text(results['standardized'], std, planned=planned)} "
             f"(raw inputs: {_counts_text(results.get('article', []), raw)})"
             for raw, std in zip(raw_claims, std_claims)]
    return ("The article's three claims, judged again on its whole grid with "
            "standardized inputs (the book's verdicts over each claim's comparisons): "
            + "; ".join(parts) + ".")


def _best_no_bn_words(results: list[dict], claim: Claim, words: str, planned: int) -> str:
    """"raw: run 2", "standardized: run 2 so far (...)", or why none is named yet."""
    best = claim.pairs[0][1]
    if best is None:
        return f"{words}: not known until all three runs without BN have two seeds"
    seeds = _seed_counts(results)
    short = [str(run_id) for run_id in claim.depends if seeds.get(run_id, 0) < planned]
    if not short:
        return f"{words}: run {best}"
    return (f"{words}: run {best} so far, with run{'s' if len(short) > 1 else ''} "
            f"{plots.and_join(short)} short of {planned} seeds")


def _capitalized(words: str) -> str:
    return words[:1].upper() + words[1:]


def claims_markdown(results: dict[str, list[dict]]) -> str:
    """The article's three claims judged on both grids, side by side, in
    words (counts of the book's verdicts over each claim's comparisons; for
    the two claims about stability, :data:`STEADINESS_CLAIMS`, also on each
    seed's wobble)."""
    lines = []
    raw_claims, std_claims = (article_claims(results.get(grid, []))
                              for grid in ("article", "standardized"))
    for raw_claim, std_claim in zip(raw_claims, std_claims):
        parts = []
        for grid, claim in (("article", raw_claim), ("standardized", std_claim)):
            counts = _counts_text(results.get(grid, []), claim, "; ",
                                  planned=planned_seeds(grid))
            parts.append(f"{_capitalized(SCALINGS[grid])}: {counts}.")
        extra = ""
        if raw_claim.key == "bn-beats-dropout":
            best = [_best_no_bn_words(results.get(grid, []), claim, words, planned_seeds(grid))
                    for grid, claim, words in (("article", raw_claim, "raw"),
                                               ("standardized", std_claim, "standardized"))]
            extra = f" (the best network without BN, {best[0]}; {best[1]})"
        lines.append(f"- **{_capitalized(CLAIM_NAMES[raw_claim.key])}**: "
                     f"{raw_claim.text}{extra}. "
                     f"{' '.join(parts)}")
        if raw_claim.key in STEADINESS_CLAIMS:
            steadiness = [
                f"{_capitalized(SCALINGS[grid])}: "
                + _counts_text(results.get(grid, []), claim, "; ", steadiness_verdicts,
                               planned_seeds(grid)) + "."
                for grid, claim in (("article", raw_claim), ("standardized", std_claim))]
            lines.append(f"  - *On steadiness* (each seed's wobble, lower counting as "
                         f"better): {' '.join(steadiness)}")
    notes = unfinished(results, [("standardized", f"std-{c.name}")
                                 for c in get_grid("article").runs])
    if notes:
        lines.insert(0, f"- **PRELIMINARY, still training:** {len(notes)} of the "
                        f"standardized grid's 12 configurations lack seeds; a verdict "
                        f"drawn while a side is short of its seeds says so.")
    return "\n".join(lines)
