"""The article's five figures and the chapter's tables, from result JSONs.

Every figure shows test accuracy against training time with the y-axis fixed to
[0.4, 0.8] as in the article: epochs on the bottom axis, training steps (batch
128) on the top one; our mean over seeds as a solid line with markers, the
seeds' range (min to max) shaded, and the article's own curve of the same
configuration (one seed, from ``reference/article_results.json`` via
:mod:`bnlib.article`) as a thin line with hollow markers, on the same steps. A
figure made from synthetic data says so in its title.

Tables are :class:`bnlib.show.Table` objects: an HTML table on the page, aligned
text as the plain-text output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import article as article_data
from .config import ARTICLE, CURVE_COLUMNS

GRID = ARTICLE.runs  # the article's 12 configurations, by run id

Y_LIMITS = (0.4, 0.8)
LAST_N_EVALS = 5  # "last-N mean": the mean of the last N test evaluations
# hue by BN placement, darker for less dropout; markers by position in a figure
COLORS = {
    (False, False): {0.0: "#303030", 0.2: "#6b6b6b", 0.4: "#a3a3a3"},
    (True, False): {0.0: "#08519c", 0.2: "#3182bd", 0.4: "#6baed6"},
    (False, True): {0.0: "#a63603", 0.2: "#e6550d", 0.4: "#fd8d3c"},
    (True, True): {0.0: "#006d2c", 0.2: "#31a354", 0.4: "#74c476"},
}
MARKERS = ("o", "s", "^", "D")
FIGURE_SIZE = (7.0, 5.0)   # inches
FIGURE_DPI = 150
LEGEND_FONTSIZE = 9
ARTICLE_LABEL = "article, 1 seed"

ARTICLE_FIGURES = {
    # file name: (title, run ids)
    "dropout_only": ("No Batch Normalization: dropout 0, 0.2, 0.4", (0, 1, 2)),
    "batch_norm": ("Where to put BN, no dropout", (0, 3, 6, 9)),
    "batch_norm_dropout_2": ("Where to put BN, dropout 0.2", (1, 4, 7, 10)),
    "batch_norm_dropout_4": ("Where to put BN, dropout 0.4", (2, 5, 8, 11)),
}


def group_by_run(results: list[dict]) -> dict[int, list[dict]]:
    grouped = defaultdict(list)
    for result in results:
        grouped[result["run_id"]].append(result)
    return dict(sorted(grouped.items()))


def seed_band(runs: list[dict], column: str = "test_acc"):
    """Steps, mean, min and max of one curve column (one of
    :data:`bnlib.config.CURVE_COLUMNS`, test accuracy unless told) over the
    finished seeds of one run id."""
    index = CURVE_COLUMNS.index(column)
    finished = [r for r in runs if r["status"] == "complete"]
    length = min(len(r["curve"]) for r in finished)
    curves = np.array([[p[index] for p in r["curve"][:length]] for r in finished])
    steps = np.array([p[0] for p in finished[0]["curve"][:length]])
    return steps, curves.mean(axis=0), curves.min(axis=0), curves.max(axis=0)


def data_tag(results) -> str:
    kinds = {r["data"]["kind"] for r in results}
    return " [SYNTHETIC DATA]" if "synthetic" in kinds else ""


def run_color(run_id: int) -> str:
    config = GRID[run_id]
    return COLORS[(config.bn_conv, config.bn_dense)][config.dropout]


def steps_per_epoch(runs: list[dict]) -> float:
    """Steps per epoch of these runs, read off their curves ([step, epoch, ...])."""
    step, epoch = runs[0]["curve"][-1][:2]
    return step / epoch


def plot_runs(ax, grouped: dict[int, list[dict]], run_ids, title: str = "",
              y_limits=Y_LIMITS, with_article: bool = True) -> list:
    """Mean test-accuracy curve per run id, the seeds' range shaded, and the
    article's curve of the same run id on the same steps (up to our last step).

    The x-axis is in epochs (ours: the curve's own epoch column; the article's:
    its step / our steps per epoch, so both sit on one steps axis, shown on
    top). ``y_limits=None`` lets matplotlib choose (for the tiny smoke runs,
    whose accuracies sit below the article's [0.4, 0.8]). Returns the legend
    entries as (handle, label) pairs: ours first, then the article's.
    """
    ours, theirs = [], []
    per_epoch = last_step = None
    for position, run_id in enumerate(run_ids):
        runs = grouped.get(run_id)
        if not runs or not any(r["status"] == "complete" for r in runs):
            continue
        config = GRID[run_id]
        steps, mean, low, high = seed_band(runs)
        per_epoch = steps_per_epoch([r for r in runs if r["status"] == "complete"])
        last_step = max(last_step or 0, steps[-1])
        seeds = sum(r["status"] == "complete" for r in runs)
        color, marker = run_color(run_id), MARKERS[position % len(MARKERS)]
        (line,) = ax.plot(steps / per_epoch, mean, "-", color=color, lw=2.0,
                          marker=marker, markersize=4.5, zorder=3)
        ax.fill_between(steps / per_epoch, low, high, color=color, alpha=0.15,
                        lw=0, zorder=1)
        ours.append((line, f"{run_id}: {config.label} (ours, n={seeds})"))
        if with_article:
            a_steps, a_acc = article_data.curve(run_id, last_step=steps[-1])
            if len(a_steps):
                (line,) = ax.plot(a_steps / per_epoch, a_acc, "-", color=color,
                                  lw=1.0, marker=marker, markersize=4,
                                  markerfacecolor="white", alpha=0.9, zorder=2)
                theirs.append((line, f"{run_id}: {ARTICLE_LABEL}"))
    finish_accuracy_axes(ax, per_epoch, last_step, y_limits)
    if title:
        ax.set_title(title, fontsize=11)
    return ours + theirs


BOOK_STEPS_PER_EPOCH = 390  # 50,000 training images in whole batches of 128
EPOCH_LABEL = "epoch (390 steps of batch 128 each)"


def finish_accuracy_axes(ax, per_epoch: float | None, last_step: float | None,
                         y_limits=Y_LIMITS):
    """The book's axes for test-accuracy curves plotted against epochs: the
    y-limits, labels and grid, and training steps on a secondary top axis
    (``per_epoch`` steps per epoch; nothing on top while no curve was drawn).
    Returns the top axis, or None."""
    if y_limits:
        ax.set_ylim(*y_limits)
    ax.set_xlabel(EPOCH_LABEL if per_epoch == BOOK_STEPS_PER_EPOCH else "epoch")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=9)
    if per_epoch:
        ax.set_xlim(0, last_step / per_epoch)
        top = ax.secondary_xaxis("top", functions=(lambda e: e * per_epoch,
                                                   lambda s: s / per_epoch))
        top.set_xlabel("training step", fontsize=9)
        top.tick_params(labelsize=8)
        return top
    return None


PALETTE = ("#303030", "#08519c", "#a63603", "#006d2c", "#6a51a3", "#b8860b")


def series_figure(series: list[tuple[str, list[dict]]], title: str,
                  y_limits=Y_LIMITS, column: int = 4, y_label: str | None = None,
                  colors: list[str] | None = None):
    """Curves of several runs on one axis: per ``(label, finished seeds)`` the
    mean of curve column ``column`` (4: test accuracy, 3: training accuracy)
    over the seeds, their range shaded, epochs below and training steps on
    top; a legend below. ``colors``: one per series (default: the palette in
    order). None while no series has a finished run."""
    import matplotlib.pyplot as plt

    if not any(runs for _, runs in series):
        return None
    fig, ax = plt.subplots(figsize=FIGURE_SIZE, dpi=FIGURE_DPI, layout="constrained")
    entries = []
    last_step = per_epoch = None
    for position, (label, runs) in enumerate(series):
        if not runs:
            continue
        length = min(len(r["curve"]) for r in runs)
        values = np.array([[p[column] for p in r["curve"][:length]] for r in runs])
        steps = np.array([p[0] for p in runs[0]["curve"][:length]])
        per_epoch = steps_per_epoch(runs)
        color = colors[position] if colors else PALETTE[position % len(PALETTE)]
        marker = MARKERS[position % len(MARKERS)]
        (line,) = ax.plot(steps / per_epoch, values.mean(axis=0), "-", color=color,
                          lw=2.0, marker=marker, markersize=4.5, zorder=3)
        ax.fill_between(steps / per_epoch, values.min(axis=0), values.max(axis=0),
                        color=color, alpha=0.15, lw=0)
        entries.append((line, f"{label} (n={len(runs)})"))
        last_step = max(last_step or 0, steps[-1])
    finish_accuracy_axes(ax, per_epoch, last_step, y_limits)
    if y_label:
        ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=11)
    fig.legend(*zip(*entries), loc="outside lower center", ncol=2,
               fontsize=LEGEND_FONTSIZE, frameon=False)
    return fig


def best_run_id(results: list[dict]) -> int:
    """The run id with the highest mean last-N test accuracy over its seeds."""
    rows = summary_rows(results)
    return max(rows, key=lambda row: row["last_n_mean"])["run_id"]


def figure_specs(results: list[dict]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (title, run ids) of the five figures, in the book's order."""
    best = best_run_id(results)
    twin = next(ARTICLE.run_id(c) for c in GRID if not (c.bn_conv or c.bn_dense)
                and c.dropout == GRID[best].dropout)  # same dropout, no BN
    specs = dict(ARTICLE_FIGURES)
    specs["best"] = ((f"Best run ({best}) against its no-BN twin ({twin})",
                      (twin, best)) if best != twin else
                     (f"Best run ({best}), which has no BN", (best,)))
    return {name: specs[name] for name in FIGURE_ORDER}


FIGURE_ORDER = ("dropout_only", "best", "batch_norm", "batch_norm_dropout_2",
                "batch_norm_dropout_4")


def article_figures(results: list[dict], y_limits=Y_LIMITS,
                    with_article: bool = True) -> dict:
    """name -> matplotlib Figure for the article's five figures."""
    import matplotlib.pyplot as plt

    grouped = group_by_run(results)
    tag = data_tag(results)
    figures = {}
    for name, (title, run_ids) in figure_specs(results).items():
        fig, ax = plt.subplots(figsize=FIGURE_SIZE, dpi=FIGURE_DPI,
                               layout="constrained")
        entries = plot_runs(ax, grouped, run_ids, title + tag, y_limits,
                            with_article)
        if entries:
            handles, labels = zip(*entries)
            # two columns: ours on the left, the article's on the right
            fig.legend(handles, labels, loc="outside lower center",
                       ncol=2 if any(ARTICLE_LABEL in label for label in labels)
                       else 1,
                       fontsize=LEGEND_FONTSIZE, frameon=False)
        figures[name] = fig
    return figures


def below_axis_note(results: list[dict], name: str, y_limits=Y_LIMITS) -> str:
    """Which points of one of the five figures lie below its y-axis (the
    article's 0.4-0.8 window hides the first evaluations of the weakest runs):
    one clause per run, our mean, our lowest seed and the article's run, by
    epoch. ``""`` when nothing is cut off or the axis is free."""
    if y_limits is None:
        return ""
    floor = y_limits[0]
    grouped = group_by_run(results)
    clauses = []
    for run_id in figure_specs(results)[name][1]:
        if run_id not in grouped:
            continue
        steps, mean, lowest, _ = seed_band(grouped[run_id])
        per_epoch = steps_per_epoch(grouped[run_id])
        parts = []
        for what, values, at in (("our mean", mean, steps),
                                 ("our lowest seed", lowest, steps),
                                 ("the article's run", *reversed(
                                     article_data.curve(run_id, last_step=steps[-1])))):
            epochs = [s / per_epoch for s, v in zip(at, values) if v < floor]
            if epochs:
                parts.append(f"{what} at {len(epochs)} point"
                             f"{'s' if len(epochs) > 1 else ''} (epoch "
                             f"{', '.join(f'{e:.1f}' for e in epochs[:4])}"
                             f"{', ...' if len(epochs) > 4 else ''})")
        if parts:
            clauses.append(f"run {run_id}: " + "; ".join(parts))
    if not clauses:
        return ""
    return f"below the axis ({floor:g}): " + " | ".join(clauses)


def save_article_figures(results: list[dict], out_dir, y_limits=Y_LIMITS
                         ) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    # each PNG names the result files it was drawn from (see figure_source)
    metadata = {"Source": figure_source_text(results)}
    for name, fig in article_figures(results, y_limits).items():
        path = out / f"{name}.png"
        partial = path.with_name(f".{name}.partial.png")
        fig.savefig(partial, metadata=metadata)
        os.replace(partial, path)
        plt.close(fig)
        paths.append(path)
    return paths


def results_digest(results: list[dict]) -> str:
    """sha256 of the (run, seed, curve) of these results, in any order."""
    payload = sorted([r["run_id"], r["seed"], r["curve"]] for r in results)
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def figure_source_text(results: list[dict]) -> str:
    """What a figure was drawn from: our curves and the article's, by sha256."""
    return (f"bnlib plot: {len(results)} result files, "
            f"curves sha256 {results_digest(results)}; article curves "
            f"({article_data.REFERENCE_FILE.parent.name}/"
            f"{article_data.REFERENCE_FILE.name}) sha256 "
            f"{article_data.curves_digest()}")


def figure_source(path) -> str | None:
    """The ``Source`` a PNG written by :func:`save_article_figures` carries."""
    from PIL import Image

    with Image.open(path) as image:
        return image.info.get("Source")


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1
                                      else float("nan"))


def summary_rows(results: list[dict]) -> list[dict]:
    """Per run id: final, best and last-N-mean test accuracy (mean and std over
    seeds), training time and images/s."""
    rows = []
    for run_id, runs in group_by_run(results).items():
        done = [r for r in runs if r["status"] == "complete"]
        if not done:
            continue
        final = [r["curve"][-1][4] for r in done]
        best = [max(p[4] for p in r["curve"]) for r in done]
        last_n = [statistics.fmean(p[4] for p in r["curve"][-LAST_N_EVALS:])
                  for r in done]
        rows.append({
            "run_id": run_id,
            "label": GRID[run_id].label,
            "seeds": len(done),
            "diverged": sum(r["status"] == "diverged" for r in runs),
            "final_mean": _mean_std(final)[0], "final_std": _mean_std(final)[1],
            "best_mean": _mean_std(best)[0], "best_std": _mean_std(best)[1],
            "last_n_mean": _mean_std(last_n)[0], "last_n_std": _mean_std(last_n)[1],
            "train_minutes": statistics.fmean(r["timing"]["wall_seconds"]
                                              for r in done) / 60,
            "images_per_second": statistics.fmean(
                r["timing"]["train_images_per_second"] for r in done),
        })
    return rows


def _pm(mean: float, std: float) -> str:
    """'0.735 ± 0.012', or the mean alone when one seed gives no spread."""
    return f"{mean:.3f} ± {std:.3f}" if std == std else f"{mean:.3f}        "


def format_summary(rows: list[dict]) -> str:
    header = (f"{'id':>2}  {'configuration':28s} {'n':>2}  {'final':>13}  "
              f"{'best':>13}  {f'last-{LAST_N_EVALS} mean':>13}  {'min/run':>7}  "
              f"{'img/s':>6}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['run_id']:2d}  {row['label']:28s} {row['seeds']:2d}  "
            f"{_pm(row['final_mean'], row['final_std'])}  "
            f"{_pm(row['best_mean'], row['best_std'])}  "
            f"{_pm(row['last_n_mean'], row['last_n_std'])}  "
            f"{row['train_minutes']:7.1f}  {row['images_per_second']:6.0f}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- analysis
def last_n_means(runs: list[dict]) -> list[float]:
    """Per finished seed: the mean of its last N test evaluations."""
    return [statistics.fmean(p[4] for p in r["curve"][-LAST_N_EVALS:])
            for r in runs if r["status"] == "complete"]


CLEAR = "clear: every seed ahead"
CLEAR_OTHER_WAY = "clear, but the other way round"
WITHIN_SPREAD = "within seed spread"
ONE_SEED = "one seed: no spread to judge"
MISSING = "missing"


def compare(results: list[dict], better: int, worse: int) -> dict:
    """Is run ``better`` ahead of run ``worse`` by more than the seed spread?
    (:func:`compare_runs` on the seeds of the two run ids.)"""
    grouped = group_by_run(results)
    return {"better": better, "worse": worse,
            **compare_runs(grouped.get(better, []), grouped.get(worse, []))}


def compare_runs(better_runs: list[dict], worse_runs: list[dict]) -> dict:
    """The book's rule on two sets of seeds, each judged by its last-N mean.

    ``clear`` when every seed of one side beats every seed of the other (the
    seed ranges do not overlap) and there are at least two seeds on each side;
    ``within spread`` when the ranges overlap; ``one seed`` when a side has a
    single seed (no spread to judge); ``missing`` when a side has none.
    """
    return compare_values(last_n_means(better_runs), last_n_means(worse_runs))


def compare_values(a: list[float], b: list[float]) -> dict:
    """The book's rule on two lists of per-seed numbers, higher being better:
    ``a`` ahead of ``b`` (see :func:`compare_runs`)."""
    if not a or not b:
        return {"verdict": MISSING, "seeds": (len(a), len(b))}
    diff = statistics.fmean(a) - statistics.fmean(b)
    spread = (statistics.variance(a) / len(a) if len(a) > 1 else 0.0) + \
        (statistics.variance(b) / len(b) if len(b) > 1 else 0.0)
    if min(len(a), len(b)) < 2:
        verdict = ONE_SEED
    elif min(a) > max(b):
        verdict = CLEAR
    elif max(a) < min(b):
        verdict = CLEAR_OTHER_WAY
    else:
        verdict = WITHIN_SPREAD
    return {"diff": diff, "standard_error": spread ** 0.5, "seeds": (len(a), len(b)),
            "verdict": verdict}


def and_join(items) -> str:
    """``a``, ``a and b``, ``a, b and c``: a list in a sentence."""
    items = list(items)
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def verdict_sentence(verdict: str, first: str, second: str, relation: str = "above"
                     ) -> str:
    """A verdict of :func:`compare_values` (``first`` against ``second``) in
    words that name the side ahead: ``relation`` is "above" for a higher-is-
    ahead number, "below" for one where lower counts as ahead (compared
    negated)."""
    return {CLEAR: f"every seed of {first} {relation} every seed of {second}",
            CLEAR_OTHER_WAY: f"every seed of {second} {relation} every seed of {first}",
            WITHIN_SPREAD: "no clear difference, the seed ranges overlap",
            ONE_SEED: "one seed on a side, no verdict",
            MISSING: "not trained yet"}[verdict]


def claims_paragraph(points: list[tuple], plural: bool = False,
                     paper: str = "the paper") -> tuple[str, int]:
    """A chapter's answer to a paper, claim by claim. Each point is ``(verdicts,
    agrees, agreeing words, differing words, open question)``: the claim stays
    open while any of its verdicts has one seed on a side or is missing (or is
    None); otherwise it goes to "agrees" or "differs" — or, where ``agrees``
    is None, to "cannot be tested here" with the differing words as the
    reason. ``plural``: the chapter speaks of "our networks"; ``paper``: whom
    it answers. Returns the paragraph and how many claims agree."""
    agree, differ, untestable, open_ = [], [], [], []
    for used, agrees, yes, no, question in points:
        if any(v in (ONE_SEED, MISSING, None) for v in used):
            open_.append(question)
        elif agrees is None:
            untestable.append(no)
        elif agrees:
            agree.append(yes)
        else:
            differ.append(no)
    subject, verb, pronoun = (("Our networks", "agree", "they differ") if plural else
                              ("Our network", "agrees", "it differs"))
    parts = []
    if agree:
        parts.append(f"{subject} {verb} with {paper} that " + "; that ".join(agree) + ".")
    if differ:
        parts.append(f"Where {pronoun}: " + "; ".join(differ) + ".")
    if untestable:
        parts.append("Cannot be tested here: " + "; ".join(untestable) + ".")
    if open_:
        parts.append("Not judged yet: " + "; ".join(open_) + ".")
    return " ".join(parts), len(agree)


def format_comparison(row: dict) -> str:
    head = f"run {row['better']:2d} vs run {row['worse']:2d}"
    if row["verdict"] == MISSING:
        return f"{head}: results missing"
    return (f"{head}: {row['diff']:+.3f} ± {row['standard_error']:.3f} "
            f"(seeds {row['seeds'][0]}/{row['seeds'][1]}) -> {row['verdict']}")


def stability_rows(results: list[dict]) -> list[dict]:
    """How much each run's test accuracy wobbles: over its last N evaluations
    (within a run) and over seeds (between runs)."""
    rows = []
    for run_id, runs in group_by_run(results).items():
        done = [r for r in runs if r["status"] == "complete"]
        if not done:
            continue
        within = [statistics.pstdev(p[4] for p in r["curve"][-LAST_N_EVALS:])
                  for r in done]
        means = last_n_means(done)
        rows.append({"run_id": run_id, "label": GRID[run_id].label,
                     "within_run_std": statistics.fmean(within),
                     "within_run_range": (min(within), max(within)),
                     "within_run_stds": within,
                     "between_seed_std": (statistics.stdev(means)
                                          if len(means) > 1 else float("nan"))})
    return rows


def accuracy_at_epoch(results: list[dict], epoch: float) -> dict[int, float]:
    """Mean test accuracy over seeds at the evaluation closest to ``epoch``."""
    out = {}
    for run_id, runs in group_by_run(results).items():
        values = []
        for run in runs:
            if run["curve"] and run["curve"][-1][1] >= epoch:
                point = min(run["curve"], key=lambda p: abs(p[1] - epoch))
                values.append(point[4])
        if values:
            out[run_id] = statistics.fmean(values)
    return out


def headline_markdown(results: list[dict]) -> str:
    """The introduction's headline paragraph, written from the result files."""
    from .config import get_profile

    rows = {row["run_id"]: row for row in summary_rows(results)}
    best = best_run_id(results)
    twin = next(ARTICLE.run_id(c) for c in GRID if not (c.bn_conv or c.bn_dense)
                and c.dropout == GRID[best].dropout)
    first = results[0]
    proto, data = first["protocol"], first["data"]
    expected = len(GRID) * get_profile(proto["profile"]).seeds
    finished = sum(r["status"] == "complete" for r in results)
    hours = sum(r["timing"]["wall_seconds"] for r in results) / 3600

    def accuracy(run_id, explain=False):
        row = rows.get(run_id)
        if row is None:
            return "not yet trained"
        seeds = f"{row['seeds']} seed{'s' if row['seeds'] > 1 else ''}"
        if explain and row["seeds"] > 1:
            seeds = f"mean ± standard deviation over {seeds}"
        return f"{_pm(row['last_n_mean'], row['last_n_std']).strip()} ({seeds})"

    status = ("" if finished >= expected else
              f" **Preliminary: {finished} of {expected} runs have finished so far;"
              f" the numbers will move as the rest come in.**")
    if best == twin:
        any_bn = any(GRID[run_id].bn_conv or GRID[run_id].bn_dense for run_id in rows)
        comparison = (f"test accuracy averaged over the last {LAST_N_EVALS} "
                      f"evaluations {accuracy(best, explain=True)}; "
                      + ("no run with Batch Normalization does better."
                         if any_bn else
                         "no run with Batch Normalization has finished yet."))
    else:
        comparison = (f"test accuracy averaged over the last {LAST_N_EVALS} "
                      f"evaluations {accuracy(best, explain=True)}, against "
                      f"{accuracy(twin)} for "
                      f"run {twin} ({GRID[twin].label}).")
    return (
        f"With the `{proto['profile']}` profile ({proto['epochs']} epochs of "
        f"{proto['steps_per_epoch']} steps, batch {proto['batch_size']}, "
        f"{first['config']['precision']}, data: {data['kind']} copy of CIFAR-10{', SYNTHETIC' if data['kind'] == 'synthetic' else ''}"
        f"{' re-encoded as JPEG q75' if 'JPEG' in data['notes'] else ''}; "
        f"{hours:.1f} CPU-hours on {first['environment']['cpu']}), the best "
        f"configuration is run {best} ({GRID[best].label}): {comparison}"
        f"{_level_with(results, best)}{status}\n")


def _level_with(results: list[dict], best: int) -> str:
    """A sentence naming the runs the best one does not clearly beat (the
    book's rule, with at least two seeds on each side), or ``""``."""
    level = [run_id for run_id in sorted(group_by_run(results)) if run_id != best
             and compare(results, best, run_id)["verdict"] == WITHIN_SPREAD]
    if not level:
        return ""
    names = ", ".join(f"run {run_id} ({GRID[run_id].label})" for run_id in level)
    return (f" It is best by its mean only: {names} "
            f"{'is' if len(level) == 1 else 'are'} level with it within the seed "
            f"spread.")


# --------------------------------------------------------------------------- tables
# a number, a number ± its spread, a range of two numbers, a count out of a
# total ("3 of 30"), or an empty marker
_NUMBER_CELL = re.compile(
    r"^([+\-]?\d[\d.,]*(\u00a0±\u00a0[\d.]+|–\d[\d.]*| of \d+)?|-|–)$")


def _result_table_class():
    """:class:`bnlib.show.Table` with cell padding and numbers set flush right
    (inline styles, so the page needs no extra CSS)."""
    from html import escape

    from .show import Table

    class ResultTable(Table):
        def _repr_html_(self) -> str:
            def cell(tag, text, numeric):
                style = ("padding:0.15em 0.45em;vertical-align:top;"
                         + ("text-align:right;" if numeric else "text-align:left;"))
                if numeric and tag == "td":   # a number never splits; headers wrap
                    style += "white-space:nowrap;"
                if tag == "th":
                    style += "border-bottom:1px solid currentColor;"
                return f'<{tag} style="{style}">{escape(text)}</{tag}>'

            numeric = [bool(self.rows) and all(_NUMBER_CELL.match(row[i])
                                               for row in self.rows)
                       for i in range(len(self.columns))]
            head = "".join(cell("th", c, n) for c, n in zip(self.columns, numeric))
            body = "".join(
                "<tr>" + "".join(cell("td", text, bool(_NUMBER_CELL.match(text)))
                                 for text in row) + "</tr>" for row in self.rows)
            caption = (f"<caption>{escape(self.caption)}</caption>"
                       if self.caption else "")
            return ('<table class="bnlib-table" style="border-collapse:collapse;'
                    f'font-size:0.9em;margin:0.5em 0">{caption}<thead><tr>{head}'
                    f"</tr></thead><tbody>{body}</tbody></table>")

    return ResultTable


def result_table(rows, columns, caption: str | None = None):
    """A result table: :class:`bnlib.show.Table` (same text output), with
    padded cells and right-aligned numbers on the page."""
    return _result_table_class()(rows, columns, caption)


def _pm_cell(mean: float, std: float, digits: int = 3) -> str:
    """'0.735 ± 0.012' with no-break spaces (a table cell never splits it), or
    the mean alone when one seed gives no spread."""
    if mean != mean:
        return "-"
    if std != std:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f}\u00a0±\u00a0{std:.{digits}f}"


def summary_table(rows: list[dict]):
    """:func:`summary_rows` as a :class:`bnlib.show.Table`."""
    return result_table(
        [[row["run_id"], row["label"], row["seeds"],
          _pm_cell(row["final_mean"], row["final_std"]),
          _pm_cell(row["best_mean"], row["best_std"]),
          _pm_cell(row["last_n_mean"], row["last_n_std"]),
          f"{row['train_minutes']:.1f}", f"{row['images_per_second']:.0f}"]
         for row in rows],
        ["id", "configuration", "n", "final", "best", f"last-{LAST_N_EVALS} mean",
         "min/run", "img/s"])


def stability_table(results: list[dict]):
    """:func:`stability_rows` as a :class:`bnlib.show.Table`: the wobble within
    a run (mean over seeds, and its lowest and highest seed) and the spread
    of the last-N mean between seeds."""
    return result_table(
        [[row["run_id"], row["label"], f"{row['within_run_std']:.4f}",
          "{:.4f}\u2013{:.4f}".format(*row["within_run_range"]),
          "-" if row["between_seed_std"] != row["between_seed_std"]
          else f"{row['between_seed_std']:.4f}"]
         for row in stability_rows(results)],
        ["id", "configuration", f"wobble (std of the last {LAST_N_EVALS})",
         "its seeds", f"std of the last-{LAST_N_EVALS} mean between seeds"])


def mean_range(values, digits: int = 3) -> str:
    """'0.288 [0.286, 0.290]': the mean over seeds, then the lowest and
    highest seed (what the book's rule compares); the mean alone for one
    value, "–" for none. No-break spaces: a table cell wraps, if at all,
    before the bracket, never inside it."""
    if not values:
        return "–"
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{min(values):.{digits}f},\u00a0{max(values):.{digits}f}]"


def seed_range_cell(runs: list[dict]) -> str:
    """'0.667–0.692': the lowest and highest seed's last-N mean, what the
    book's rule compares (a no-break cell)."""
    values = last_n_means(runs)
    if not values:
        return "-"
    return f"{min(values):.3f}\u2013{max(values):.3f}" if len(values) > 1 \
        else f"{values[0]:.3f}"


def comparison_table(results: list[dict], pairs) -> "object":
    """:func:`compare` for each ``(better, worse)`` pair, as a table: the two
    runs, each with the range of its seeds' last-N means (the rule's input:
    *clear* when the ranges do not overlap), the difference of the means and
    the verdict."""
    grouped = group_by_run(results)
    table_rows = []
    for better, worse in pairs:
        row = compare(results, better, worse)
        if row["verdict"] == MISSING:
            table_rows.append([better, "-", worse, "-", "-", MISSING])
            continue
        table_rows.append([f"{better}: {GRID[better].label}",
                           seed_range_cell(grouped[better]),
                           f"{worse}: {GRID[worse].label}",
                           seed_range_cell(grouped[worse]),
                           f"{row['diff']:+.3f}", row["verdict"]])
    return result_table(table_rows, ["run", "its seeds", "against", "their seeds",
                                     "difference", "verdict"])


SAME_BUDGET_WINDOWS = ((8, 10), (13, 15))  # epochs (first, last]: "around 10 and 15"


def window_means(results: list[dict], first_epoch: float, last_epoch: float
                 ) -> dict[int, dict]:
    """Per run id, from each seed's mean test accuracy at its evaluations with
    epoch in (first, last]: ``mean`` and ``std`` over seeds, ``low`` and
    ``high`` (the lowest and highest seed), ``seeds``. Runs that did not reach
    ``last_epoch`` are left out."""
    out = {}
    for run_id, runs in group_by_run(results).items():
        per_seed = []
        for run in runs:
            if run["status"] != "complete" or run["curve"][-1][1] < last_epoch:
                continue
            inside = [p[4] for p in run["curve"]
                      if first_epoch < p[1] <= last_epoch]
            if inside:
                per_seed.append(statistics.fmean(inside))
        if per_seed:
            mean, std = _mean_std(per_seed)
            out[run_id] = {"mean": mean, "std": std, "low": min(per_seed),
                           "high": max(per_seed), "seeds": len(per_seed)}
    return out


def same_budget_rows(results: list[dict], windows=SAME_BUDGET_WINDOWS) -> list[dict]:
    """For each of the 12 runs: the article's mean test accuracy in each window
    of epochs against ours (mean and std over seeds; None where our runs are
    shorter), and the article's 400-epoch final and best as context."""
    ours = {window: window_means(results, *window) for window in windows}
    rows = []
    for run_id in range(len(GRID)):
        row = {"run_id": run_id, "label": GRID[run_id].label, "windows": {}}
        for window in windows:
            theirs, points = article_data.mean_accuracy_between(run_id, *window)
            row["windows"][window] = {"article": theirs, "article_points": points,
                                      "ours": ours[window].get(run_id)}
        row["article_final"], row["article_best"] = article_data.final_and_best(
            run_id)
        rows.append(row)
    return rows


def same_budget_table(rows: list[dict]):
    """:func:`same_budget_rows` as a :class:`bnlib.show.Table`."""
    windows = list(rows[0]["windows"]) if rows else []
    columns = ["id", "configuration"]
    for window in windows:
        label = article_data.window_label(*window)
        columns += [f"article, {label}", f"ours, {label}"]
    columns.append(f"article, final @ {article_data.epochs()} epochs")
    table_rows = []
    for row in rows:
        cells = [row["run_id"], row["label"]]
        for window in windows:
            cell = row["windows"][window]
            ours = cell["ours"]
            cells += [f"{cell['article']:.3f}",
                      _pm_cell(ours["mean"], ours["std"]) if ours else "not reached"]
        cells.append(f"{row['article_final']:.3f}")
        table_rows.append(cells)
    return result_table(table_rows, columns)


def same_budget_summary(rows: list[dict]) -> dict:
    """Per window of :func:`same_budget_rows`: in how many runs our mean is ahead
    of the article's, in how many the article's value is below even our lowest
    seed, and how many runs were compared."""
    out = {}
    for window in (rows[0]["windows"] if rows else ()):
        cells = [row["windows"][window] for row in rows
                 if row["windows"][window]["ours"]]
        out[window] = {
            "compared": len(cells),
            "ours_ahead": sum(c["ours"]["mean"] > c["article"] for c in cells),
            "below_all_seeds": sum(c["ours"]["low"] > c["article"] for c in cells),
        }
    return out


def write_book_assets(results: list[dict], out_dir, y_limits=Y_LIMITS) -> list[Path]:
    """The five figures and the headline snippet the book's introduction uses."""
    paths = save_article_figures(results, out_dir, y_limits)
    headline = Path(out_dir) / "headline.md"
    partial = headline.with_name(".headline.partial.md")
    partial.write_text(headline_markdown(results))
    os.replace(partial, headline)
    return [*paths, headline]
