"""The article's five figures and a summary table, from result JSONs.

Every figure shows test accuracy against training step with the y-axis fixed to
[0.4, 0.8] as in the article: the mean over seeds as a line, the seeds' range
(min to max) shaded. A figure made from synthetic data says so in its title.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np

from .config import ARTICLE

GRID = ARTICLE.runs  # the article's 12 configurations, by run id

Y_LIMITS = (0.4, 0.8)
LAST_N_EVALS = 5  # "last-N mean": the mean of the last N test evaluations
# colours by BN placement, line style by dropout
COLORS = {(False, False): "tab:gray", (True, False): "tab:blue",
          (False, True): "tab:orange", (True, True): "tab:green"}
STYLES = {0.0: "-", 0.2: "--", 0.4: ":"}

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


def seed_band(runs: list[dict]):
    """Steps, mean, min and max test accuracy over the seeds of one run id."""
    finished = [r for r in runs if r["status"] == "complete"]
    length = min(len(r["curve"]) for r in finished)
    curves = np.array([[p[4] for p in r["curve"][:length]] for r in finished])
    steps = np.array([p[0] for p in finished[0]["curve"][:length]])
    return steps, curves.mean(axis=0), curves.min(axis=0), curves.max(axis=0)


def _data_tag(results) -> str:
    kinds = {r["data"]["kind"] for r in results}
    return " [SYNTHETIC DATA]" if "synthetic" in kinds else ""


def plot_runs(ax, grouped: dict[int, list[dict]], run_ids, title: str = "",
              y_limits=Y_LIMITS) -> None:
    """Mean test-accuracy curve per run id, the seeds' range shaded.

    ``y_limits=None`` lets matplotlib choose (for the tiny smoke runs, whose
    accuracies sit below the article's [0.4, 0.8]).
    """
    for run_id in run_ids:
        runs = grouped.get(run_id)
        if not runs or not any(r["status"] == "complete" for r in runs):
            continue
        config = GRID[run_id]
        steps, mean, low, high = seed_band(runs)
        seeds = sum(r["status"] == "complete" for r in runs)
        color = COLORS[(config.bn_conv, config.bn_dense)]
        ax.plot(steps, mean, STYLES[config.dropout], color=color, lw=1.6,
                label=f"{run_id}: {config.label} (n={seeds})")
        ax.fill_between(steps, low, high, color=color, alpha=0.18, lw=0)
    if y_limits:
        ax.set_ylim(*y_limits)
    ax.set_xlabel("training step (batch 128)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)


def best_run_id(results: list[dict]) -> int:
    """The run id with the highest mean last-N test accuracy over its seeds."""
    rows = summary_rows(results)
    return max(rows, key=lambda row: row["last_n_mean"])["run_id"]


def article_figures(results: list[dict], y_limits=Y_LIMITS) -> dict:
    """name -> matplotlib Figure for the article's five figures."""
    import matplotlib.pyplot as plt

    grouped = group_by_run(results)
    tag = _data_tag(results)
    figures = {}
    best = best_run_id(results)
    twin = next(ARTICLE.run_id(c) for c in GRID if not (c.bn_conv or c.bn_dense)
                and c.dropout == GRID[best].dropout)  # same dropout, no BN
    specs = dict(ARTICLE_FIGURES)
    specs["best"] = ((f"Best run ({best}) against its no-BN twin ({twin})",
                      (twin, best)) if best != twin else
                     (f"Best run ({best}), which has no BN", (best,)))
    for name in ("dropout_only", "best", "batch_norm", "batch_norm_dropout_2",
                 "batch_norm_dropout_4"):
        title, run_ids = specs[name]
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        plot_runs(ax, grouped, run_ids, title + tag, y_limits)
        fig.tight_layout()
        figures[name] = fig
    return figures


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
    return (f"bnlib plot: {len(results)} result files, "
            f"curves sha256 {results_digest(results)}")


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

    Uses each seed's last-N mean. ``clear`` when every seed of one run beats
    every seed of the other (the seed ranges do not overlap) and there are at
    least two seeds on each side; ``within spread`` when the ranges overlap.
    """
    grouped = group_by_run(results)
    a = last_n_means(grouped.get(better, []))
    b = last_n_means(grouped.get(worse, []))
    if not a or not b:
        return {"better": better, "worse": worse, "verdict": MISSING}
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
    return {"better": better, "worse": worse, "diff": diff,
            "standard_error": spread ** 0.5, "seeds": (len(a), len(b)),
            "verdict": verdict}


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

    def accuracy(run_id):
        row = rows.get(run_id)
        if row is None:
            return "not yet trained"
        return (f"{_pm(row['last_n_mean'], row['last_n_std']).strip()} "
                f"({row['seeds']} seed{'s' if row['seeds'] > 1 else ''})")

    status = ("" if finished >= expected else
              f" **Preliminary: {finished} of {expected} runs have finished so far;"
              f" the numbers will move as the rest come in.**")
    if best == twin:
        any_bn = any(GRID[run_id].bn_conv or GRID[run_id].bn_dense for run_id in rows)
        comparison = (f"test accuracy {accuracy(best)} averaged over the last "
                      f"{LAST_N_EVALS} evaluations; "
                      + ("no run with Batch Normalization does better."
                         if any_bn else
                         "no run with Batch Normalization has finished yet."))
    else:
        comparison = (f"test accuracy {accuracy(best)} averaged over the last "
                      f"{LAST_N_EVALS} evaluations, against {accuracy(twin)} for "
                      f"run {twin} ({GRID[twin].label}).")
    return (
        f"With the `{proto['profile']}` profile ({proto['epochs']} epochs of "
        f"{proto['steps_per_epoch']} steps, batch {proto['batch_size']}, "
        f"data: {data['kind']} copy of CIFAR-10{', SYNTHETIC' if data['kind'] == 'synthetic' else ''}"
        f"{' re-encoded as JPEG q75' if 'JPEG' in data['notes'] else ''}; "
        f"{hours:.1f} CPU-hours on {first['environment']['cpu']}), the best "
        f"configuration is run {best} ({GRID[best].label}): {comparison}"
        f"{status}\n")


def write_book_assets(results: list[dict], out_dir, y_limits=Y_LIMITS) -> list[Path]:
    """The five figures and the headline snippet the book's introduction uses."""
    paths = save_article_figures(results, out_dir, y_limits)
    headline = Path(out_dir) / "headline.md"
    partial = headline.with_name(".headline.partial.md")
    partial.write_text(headline_markdown(results))
    os.replace(partial, headline)
    return [*paths, headline]
