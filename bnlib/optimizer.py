"""Chapter 06, BN and the optimizer: the paper's Figure 1 and the learning rates.

Three grids (see :mod:`bnlib.config`): ``figure1`` (the paper's sigmoid MLP
without and with BN, 50,000 steps of 60, 3 seeds, the input of one last-layer
sigmoid probed), ``lrmap`` (the book's CNN with SGD and momentum 0.9 at seven
learning rates, no BN vs BN conv+dense, 3 epochs) and ``lradam`` (the same
with Adam at 1e-4, 1e-3 and 1e-2). Everything here reads their result files.
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from . import plots
from .probes import on_probe_sample, probe_rows

FIGURE1_PROBE = "activation_input:dense3"
CHANCE = 1 / 10  # a guess among CIFAR-10's ten classes
CNN_PROBE = "activation_input:dense1"
TENTH = 0.1  # "the first and the last tenth of training"
ARMS = {"none": "no BN", "batch": "BN"}
ARM_COLORS = {"none": "#303030", "batch": "#08519c"}
PERCENTILE_STYLES = (("p15", "15th", "v"), ("p50", "50th (median)", "o"),
                     ("p85", "85th", "^"))


def _arm(result: dict) -> str:
    return "batch" if result["config"]["norm_dense"] != "none" else "none"


# --------------------------------------------------------------------------- Figure 1
def probe_series(result: dict, probe: str = FIGURE1_PROBE) -> dict[str, np.ndarray]:
    """A probe's columns as arrays: ``step``, ``unit_p15`` ... ``median_p85``."""
    rows = probe_rows(result, probe)
    return {name: rows[:, i] for i, name in enumerate(result["probe_columns"][probe])}


def drift(result: dict, probe: str = FIGURE1_PROBE, which: str = "unit") -> dict:
    """How far the probed distribution moved between the first and the last
    tenth of training (means over the evaluations in each tenth).

    ``median_shift``: |change of the median|; ``relative_shift``: that change
    in units of the first tenth's 15-85 spread (so a network whose values are
    larger is not penalized for their scale); ``spread_ratio``: the last
    tenth's 15-85 spread over the first's (1 = unchanged). ``which`` is
    ``"unit"`` (the one probed unit, as the paper's figure) or ``"all"`` (all
    units pooled).
    """
    series = probe_series(result, probe)
    steps = series["step"]
    total = steps[-1]  # each tenth holds at least one evaluation
    first = steps <= max(TENTH * total, steps[0])
    last = steps >= min((1 - TENTH) * total + 1, total)
    p15, p50, p85 = (series[f"{which}_p{p}"] for p in (15, 50, 85))
    spread = p85 - p15
    shift = abs(p50[last].mean() - p50[first].mean())
    return {"median_first": float(p50[first].mean()),
            "median_last": float(p50[last].mean()),
            "median_shift": float(shift),
            "relative_shift": float(shift / spread[first].mean()),
            "spread_first": float(spread[first].mean()),
            "spread_last": float(spread[last].mean()),
            "spread_ratio": float(spread[last].mean() / spread[first].mean())}


def drift_rows(results: list[dict], which: str = "unit") -> list[dict]:
    """Per arm (no BN, BN): each seed's drift numbers and its last-5 test
    accuracy, finished runs only."""
    rows = []
    for arm, label in ARMS.items():
        runs = [r for r in results if _arm(r) == arm and r["status"] == "complete"]
        if not runs:
            continue
        per_seed = [drift(r, which=which) for r in runs]
        rows.append({"arm": arm, "label": label, "seeds": len(runs),
                     "accuracy": plots.last_n_means(runs),
                     **{key: [d[key] for d in per_seed] for key in per_seed[0]}})
    return rows


def drift_table(rows: list[dict], caption: str | None = None):
    """Mean [min, max] over seeds of each drift number, per arm."""
    columns = ["", "n", "test accuracy, last 5", "median, first tenth",
               "median, last tenth", "shift / first spread", "15–85 spread, last/first"]
    cells = [[row["label"].replace(" ", "\u00a0"), str(row["seeds"]),
              plots.mean_range(row["accuracy"]), plots.mean_range(row["median_first"], 2),
              plots.mean_range(row["median_last"], 2),
              plots.mean_range(row["relative_shift"], 2),
              plots.mean_range(row["spread_ratio"], 2)]
             for row in rows]
    return plots.result_table(cells, columns, caption)


def drift_verdicts(results: list[dict], which: str = "unit") -> dict:
    """The book's rule on the drift numbers, lower being steadier: does BN's
    sigmoid input move less than the one without BN? (and the accuracy)."""
    rows = {row["arm"]: row for row in drift_rows(results, which)}
    if set(rows) != set(ARMS):
        return {}
    bn, none = rows["batch"], rows["none"]
    return {
        "accuracy": plots.compare_values(bn["accuracy"], none["accuracy"]),
        # steadier = smaller shift, and a spread ratio closer to 1
        "relative_shift": plots.compare_values(
            [-v for v in bn["relative_shift"]], [-v for v in none["relative_shift"]]),
        "spread_change": plots.compare_values(
            [-abs(math.log(v)) for v in bn["spread_ratio"]],
            [-abs(math.log(v)) for v in none["spread_ratio"]]),
    }


def figure1(results: list[dict], probe: str = FIGURE1_PROBE, which: str = "unit",
            title: str = "Figure 1", what: str = "the sigmoid's input"):
    """The paper's Figure 1 from our runs: (a) test accuracy over steps, mean
    and seed range per network; (b, c) the 15th, 50th and 85th percentiles of
    the probed sigmoid input over steps, without and with BN, for the lowest
    seed's network (the probed unit is another unit in every seed, so seeds
    are not averaged). None while a network has no finished run."""
    import matplotlib.pyplot as plt

    finished = [r for r in results if r["status"] == "complete" and "probes" in r]
    arms = {arm: [r for r in finished if _arm(r) == arm] for arm in ARMS}
    if not all(arms.values()):
        return None
    # (a) across the top, (b) and (c) below it: the page's column is narrow
    fig, panels = plt.subplot_mosaic([["a", "a"], ["b", "c"]], figsize=(7.4, 6.8),
                                     dpi=plots.FIGURE_DPI, layout="constrained")
    axes = [panels[key] for key in "abc"]
    per_epoch = plots.steps_per_epoch(finished)
    entries = []
    for position, (arm, runs) in enumerate(arms.items()):
        steps, mean, low, high = plots.seed_band(runs)
        color = ARM_COLORS[arm]
        (line,) = axes[0].plot(steps / per_epoch, mean, "-", color=color, lw=1.8,
                               marker=plots.MARKERS[position], markersize=3.5,
                               markevery=max(1, len(steps) // 20))
        axes[0].fill_between(steps / per_epoch, low, high, color=color, alpha=0.15, lw=0)
        entries.append((line, f"{ARMS[arm]} (n={len(runs)})"))
    plots.finish_accuracy_axes(axes[0], per_epoch, steps[-1], y_limits=None)
    batch = finished[0]["protocol"]["batch_size"]
    epoch_label = (plots.EPOCH_LABEL if per_epoch == plots.BOOK_STEPS_PER_EPOCH else
                   f"thousand steps ({batch} images each)" if per_epoch == 1000 else
                   f"runner's epoch ({per_epoch:,.0f} steps of {batch} images)")
    axes[0].set_xlabel(epoch_label)
    axes[0].set_title("(a) test accuracy", fontsize=10)
    axes[0].legend(*zip(*entries), fontsize=8, loc="lower right")
    limits = []
    for ax, (arm, runs), letter in zip(axes[1:], arms.items(), "bc"):
        # one network, as the paper's figure: "unit 0" is another unit in
        # every seed (another initialization), so seeds are not averaged
        first = min(runs, key=lambda r: r["seed"])
        series = probe_series(first, probe)
        for key, label, marker in PERCENTILE_STYLES:
            ax.plot(series["step"] / per_epoch, series[f"{which}_{key}"], "-", lw=1.6,
                    color=ARM_COLORS[arm], marker=marker, markersize=3.5,
                    markevery=max(1, len(series["step"]) // 20), label=label)
        ax.set_title(f"({letter}) {ARMS[arm]}, seed {first['seed']}", fontsize=10)
        ax.set_ylabel(what)
        ax.set_xlabel(epoch_label)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
        limits.append(ax.get_ylim())
    for ax in axes[1:]:  # one scale for both, so the drifts compare by eye
        ax.set_ylim(min(l[0] for l in limits), max(l[1] for l in limits))
    # the percentiles' markers once, under (b) and (c), off their lines
    from matplotlib.lines import Line2D

    fig.legend([Line2D([], [], color="0.35", marker=marker, lw=1.6)
                for _, _, marker in PERCENTILE_STYLES],
               [label for _, label, _ in PERCENTILE_STYLES], title="percentile",
               loc="outside lower center", ncol=len(PERCENTILE_STYLES), fontsize=8,
               title_fontsize=8, frameon=False)
    tag = plots.data_tag(finished)
    fig.suptitle(title + tag, fontsize=11)
    return fig


# --------------------------------------------------------------------------- learning rates
def map_accuracy(result: dict) -> float | None:
    """A map run's accuracy: the mean test accuracy of its last epoch's
    evaluations; None for a diverged run."""
    if result["status"] != "complete":
        return None
    curve = result["curve"]
    last_epoch = math.ceil(curve[-1][1]) - 1
    return statistics.fmean(p[4] for p in curve if p[1] > last_epoch)


def rate_rows(results: list[dict]) -> list[dict]:
    """One row per (arm, learning rate): accuracy or the step it diverged at."""
    rows = []
    for result in results:
        rows.append({"arm": _arm(result), "learning_rate": result["config"]["learning_rate"],
                     "optimizer": result["config"]["optimizer"],
                     "accuracy": map_accuracy(result), "status": result["status"],
                     "diverged_at_step": result.get("diverged_at_step"),
                     "name": result["name"]})
    return sorted(rows, key=lambda row: (row["arm"] != "none", row["learning_rate"]))


def best_rates(rows: list[dict]) -> dict[str, dict]:
    """Per arm, the row with the highest accuracy (diverged runs excluded)."""
    best = {}
    for row in rows:
        if row["accuracy"] is not None and (
                row["arm"] not in best or row["accuracy"] > best[row["arm"]]["accuracy"]):
            best[row["arm"]] = row
    return best


def usable_range(rows: list[dict], arm: str, fraction: float = 0.9) -> tuple | None:
    """The lowest and highest rate at which ``arm`` reaches ``fraction`` of
    its best accuracy (how wide a rate BN tolerates)."""
    best = best_rates(rows).get(arm)
    if best is None:
        return None
    good = [row["learning_rate"] for row in rows if row["arm"] == arm
            and row["accuracy"] is not None and row["accuracy"] >= fraction * best["accuracy"]]
    return min(good), max(good)


def pair_at_rate(results: list[dict], rate: float) -> list[dict]:
    """The map's runs (no BN and BN) at one learning rate."""
    return [r for r in results if r["config"]["learning_rate"] == rate]


def rate_table(rows: list[dict]):
    """Learning rates down, no BN and BN across: accuracy, or 'diverged at step N'."""
    rates = sorted({row["learning_rate"] for row in rows})
    cell = {(row["arm"], row["learning_rate"]): row for row in rows}

    def text(row):
        if row is None:
            return "–"
        if row["accuracy"] is None:
            return f"diverged (step {row['diverged_at_step']})"
        return f"{row['accuracy']:.3f}"

    cells = [[f"{rate:g}"] + [text(cell.get((arm, rate))) for arm in ARMS]
             for rate in rates]
    return plots.result_table(cells, ["learning rate", "no\u00a0BN", "BN conv+dense"])


def rate_figure(results: list[dict], title: str):
    """Accuracy after the short budget against the learning rate (log axis),
    no BN and BN; a diverged run is a cross at the chance line (0.1), no BN's
    just above it and BN's just below, so two diverged runs at one rate both
    show."""
    import matplotlib.pyplot as plt

    rows = rate_rows(results)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=plots.FIGURE_DPI, layout="constrained")
    for position, arm in enumerate(ARMS):
        mine = [row for row in rows if row["arm"] == arm]
        good = [row for row in mine if row["accuracy"] is not None]
        bad = [row for row in mine if row["accuracy"] is None]
        color = ARM_COLORS[arm]
        ax.plot([row["learning_rate"] for row in good], [row["accuracy"] for row in good],
                "-", color=color, lw=1.8, marker=plots.MARKERS[position], markersize=6,
                label=f"{ARMS[arm]}")
        if bad:  # no BN's crosses just above the line, BN's just below: both show
            ax.plot([row["learning_rate"] for row in bad],
                    [CHANCE + (0.025 if arm == "none" else -0.025)] * len(bad), "x",
                    color=color, markersize=9, mew=2.2, label=f"{ARMS[arm]}: diverged")
    ax.axhline(CHANCE, color="#999999", lw=0.8, ls="-", zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test accuracy, last epoch")
    ax.set_ylim(0.0, 0.8)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    ax.set_title(title + plots.data_tag(results), fontsize=11)
    return fig


# --------------------------------------------------------------------------- one step
def step_loss_ratios(model, images, labels, eval_images, eval_labels,
                     step_sizes) -> dict:
    """How far one plain gradient step can go: ``L(w - eta * g) / L(w)`` for
    each ``eta`` of ``step_sizes``, ``g`` the gradient of the loss on one batch
    (``images``, ``labels``) at ``w``.

    ``L`` is the loss on *other* training images (``eval_images``,
    ``eval_labels``): on its own batch a large step mostly memorizes those
    128 images, which is not progress. Losses are taken as in training (BN on
    the statistics of the images at hand). Every variable, BN's moving averages
    included, is restored afterwards. Returns the loss at ``w`` (on the other
    images), the batch gradient's norm, its cosine with the gradient on the
    other images (negative: to first order, any small step along it raises
    their loss) and the ratios (above 1: the step made the loss worse; ``inf``
    where the loss overflowed).
    """
    import tensorflow as tf

    from .probes import (assign_variables, loss_and_gradients, save_variables,
                         training_loss)

    labels = tf.constant(np.asarray(labels).reshape(-1).astype(np.int32))
    eval_labels = tf.constant(np.asarray(eval_labels).reshape(-1).astype(np.int32))
    saved = save_variables(model.variables)
    trainable = model.trainable_variables
    start = save_variables(trainable)
    try:
        _, grads = loss_and_gradients(model, images, labels, trainable)
        assign_variables(model.variables, saved)  # undo the moving-average update
        base, eval_grads = loss_and_gradients(model, eval_images, eval_labels, trainable)
        assign_variables(model.variables, saved)
        base = float(base)
        ratios = []
        for eta in step_sizes:
            assign_variables(trainable, [w - eta * g for w, g in zip(start, grads)])
            value = float(training_loss(model, eval_images, eval_labels))
            ratios.append(value / base if math.isfinite(value) else math.inf)
    finally:
        assign_variables(model.variables, saved)
    def dot(first, second):
        return sum(float(tf.reduce_sum(tf.cast(a, tf.float64) * tf.cast(b, tf.float64)))
                   for a, b in zip(first, second))

    norm = math.sqrt(dot(grads, grads))
    cosine = dot(grads, eval_grads) / (norm * math.sqrt(dot(eval_grads, eval_grads)))
    return {"loss": base, "gradient_norm": norm, "gradient_cosine": cosine,
            "step_sizes": [float(eta) for eta in step_sizes], "ratios": ratios}


def one_step_summary(measurements: list[dict]) -> dict:
    """Means over seeds of :func:`step_loss_ratios`' results: the loss,
    gradient norm and gradient cosine at ``w``, the best ratio and its step, the largest step whose
    mean ratio is below 1 (None if none is), the ratio at the largest step."""
    ratios = np.array([m["ratios"] for m in measurements]).mean(axis=0)
    steps = measurements[0]["step_sizes"]
    helpful = [eta for eta, ratio in zip(steps, ratios) if ratio < 1]
    return {"loss": float(np.mean([m["loss"] for m in measurements])),
            "gradient_norm": float(np.mean([m["gradient_norm"] for m in measurements])),
            "gradient_cosine": float(np.mean([m["gradient_cosine"] for m in measurements])),
            "cosine_range": (float(min(m["gradient_cosine"] for m in measurements)),
                             float(max(m["gradient_cosine"] for m in measurements))),
            "seeds": len(measurements),
            "best_ratio": float(ratios.min()), "best_step": steps[int(ratios.argmin())],
            "largest_helpful_step": max(helpful) if helpful else None,
            "ratio_at_largest": float(ratios[-1]),
            "ratios": [float(r) for r in ratios], "step_sizes": list(steps)}


def ten_times_step(summary: dict) -> float | None:
    """The measured step size closest (on a log scale) to ten times the
    best step of :func:`one_step_summary`; None when that is the largest
    measured step or beyond it."""
    steps = summary["step_sizes"]
    target = np.log(10 * summary["best_step"])
    nearest = min(steps, key=lambda eta: abs(np.log(eta) - target))
    return None if nearest == steps[-1] or nearest <= summary["best_step"] else nearest


def one_step_figure(one_step: dict[str, list[dict]], zoom=(0.85, 1.1)):
    """Figure 6.2: L(w − ηg)/L(w) against η per arm (mean over seeds, range
    shaded), (a) on log-log axes, (b) zoomed on ratios near 1, where a step
    starts to help or to hurt."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.6), dpi=plots.FIGURE_DPI,
                             layout="constrained")
    for ax, letter in zip(axes, "ab"):
        for position, (arm, label) in enumerate(ARMS.items()):
            measured = one_step[arm]
            steps = measured[0]["step_sizes"]
            ratios = np.array([m["ratios"] for m in measured])
            ax.plot(steps, ratios.mean(axis=0), "-", color=ARM_COLORS[arm],
                    marker=plots.MARKERS[position], lw=1.8,
                    label=f"{label} ({len(measured)} seeds)")
            ax.fill_between(steps, ratios.min(axis=0), ratios.max(axis=0),
                            color=ARM_COLORS[arm], alpha=0.15, lw=0)
        ax.axhline(1.0, color="#999999", lw=0.8)
        ax.set(xscale="log", xlabel="step size η")
        ax.grid(alpha=0.3, which="both")
    axes[0].set(yscale="log", ylabel="L(w − ηg) / L(w), on other images")
    axes[0].set_title("(a) every step size", fontsize=10)
    axes[1].set_ylim(*zoom)
    axes[1].set_title(f"(b) zoomed on ratios {zoom[0]:g}–{zoom[1]:g}", fontsize=10)
    axes[0].legend(fontsize=9)
    return fig


def _times(ratio: float) -> str:
    """A ratio to three significant digits, in plain digits (19,500,000, not
    1.95e+07)."""
    rounded = float(f"{ratio:.3g}")
    return f"{rounded:,.0f}" if rounded >= 1000 else f"{rounded:g}"


def _percent(share: float) -> str:
    """A share in the book's style: '57 %'."""
    return f"{share * 100:.0f} %"


def one_step_findings(one_step: dict[str, list[dict]]) -> str:
    """Figure 6.2 in words, per arm, from the measurements."""
    lines = []
    for arm, label in ARMS.items():
        summary = one_step_summary(one_step[arm])
        low, high = summary["cosine_range"]
        helpful = summary["largest_helpful_step"]
        same_sign = "every seed" if low * high > 0 else "not every seed"
        lines.append(
            f"- **{label}.** The batch gradient's cosine with the other images' "
            f"gradient is {summary['gradient_cosine']:+.2f} (seeds {low:+.2f} to "
            f"{high:+.2f}: {same_sign} the same sign). "
            + ("No step size lowers the loss on the other images"
               if helpful is None else
               f"Steps up to η = {helpful:.3g} lower the loss on the other images "
               f"(to {summary['best_ratio']:.3f} of its value at best, at "
               f"η = {summary['best_step']:.3g})")
            + ten_times_words(summary)
            + f"; at η = {one_step[arm][0]['step_sizes'][-1]:g} the loss is "
              f"{_times(summary['ratio_at_largest'])} times what it was.")
    summaries = {arm: one_step_summary(one_step[arm]) for arm in ARMS}
    shared = {ten_times_step(summary) for summary in summaries.values()}
    helped = all(summary["largest_helpful_step"] is not None
                 for summary in summaries.values())
    if helped and len(shared) == 1 and None not in shared:
        eta = shared.pop()
        at = {arm: summary["ratios"][summary["step_sizes"].index(eta)]
              for arm, summary in summaries.items()}
        last = {arm: summary["ratio_at_largest"] for arm, summary in summaries.items()}

        def less(ratios):  # the arm whose loss grows less first, with its number
            order = sorted(ratios, key=ratios.get)
            words = {"batch": ("BN's", "with BN"), "none": ("no BN's", "without BN")}
            return (words[order[0]][0], f"{_times(ratios[order[0]])} {words[order[0]][1]} "
                    f"against {_times(ratios[order[1]])} {words[order[1]][1]}")

        lines.append(f"- **Both.** At η = {eta:.3g}, ten times the best step of both, "
                     f"the loss grows less for {less(at)[0]} network ({less(at)[1]}); at "
                     f"η = {one_step['batch'][0]['step_sizes'][-1]:g}, for {less(last)[0]} "
                     f"({less(last)[1]}).")
    return "\n".join(lines)


def ten_times_words(summary: dict) -> str:
    """The loss ratio at ten times the best step, as a clause (empty when
    no measured step is near it)."""
    eta = ten_times_step(summary)
    if summary["largest_helpful_step"] is None or eta is None:
        return ""
    ratio = summary["ratios"][summary["step_sizes"].index(eta)]
    return f"; ten times that step (η = {eta:.3g}) takes it to {_times(ratio)} times"


# --------------------------------------------------------------------------- in words
def steps_to_reach(runs: list[dict], accuracy: float) -> float | None:
    """The first evaluation step at which the seeds' mean test accuracy
    reaches ``accuracy`` (None if it never does)."""
    steps, mean, _, _ = plots.seed_band(runs)
    reached = np.flatnonzero(mean >= accuracy)
    return float(steps[reached[0]]) if len(reached) else None


def pilot_rows(results: list[dict]) -> list[dict]:
    """Part A's pilot (grid ``figure1pilot``): per rate, the network without
    BN's test accuracy (mean of the last five evaluations; None where it
    diverged), sorted by rate."""
    return sorted(({"learning_rate": r["config"]["learning_rate"],
                    "accuracy": plots.last_n_means([r])[0] if r["status"] == "complete"
                    else None} for r in results), key=lambda row: row["learning_rate"])


def pilot_best_rate(results: list[dict]) -> float | None:
    """The pilot's rate with the highest accuracy (None without a finished run)."""
    rows = [row for row in pilot_rows(results) if row["accuracy"] is not None]
    return max(rows, key=lambda row: row["accuracy"])["learning_rate"] if rows else None


def pilot_findings(results: list[dict], planned: int) -> str:
    """The pilot in one sentence: each rate's accuracy and the best one."""
    rows = pilot_rows(results)
    if len(rows) < planned:
        return (f"**PRELIMINARY:** {len(rows)} of the pilot's {planned} runs are "
                f"finished; the rate is named from its files once all are.")
    def reached(row):
        return "diverged" if row["accuracy"] is None else f"{row['accuracy']:.3f}"

    steps = round(max(r["curve"][-1][0] for r in results if r["curve"]))
    return (f"In the pilot ({steps:,} steps, one seed) the network without BN reaches "
            + ", ".join(f"{reached(row)} at {row['learning_rate']:g}" for row in rows)
            + f" (test accuracy, last five evaluations): the best rate is "
              f"{pilot_best_rate(results):g}.")


def figure1_findings(results: list[dict]) -> str:
    """Figure 6.1's verdicts in words, from the result files."""
    rows = {row["arm"]: row for row in drift_rows(results)}
    if set(rows) != set(ARMS):
        return ("**PRELIMINARY:** the `figure1` grid has no finished run of both "
                "networks yet; the findings are written from its files once it has.")
    finished = [r for r in results if r["status"] == "complete"]
    runs = {arm: [r for r in finished if _arm(r) == arm] for arm in ARMS}
    mean = statistics.fmean
    total = runs["none"][0]["curve"][-1][0]
    bn, none = rows["batch"], rows["none"]
    verdicts = drift_verdicts(results)
    say = plots.verdict_sentence
    reach = steps_to_reach(runs["batch"], mean(none["accuracy"]))
    lines = [
        f"- **Accuracy.** After {total:,.0f} steps the network with BN reaches "
        f"{mean(bn['accuracy']):.3f} (last five evaluations, mean of {bn['seeds']} "
        f"seeds) against {mean(none['accuracy']):.3f} without BN: "
        f"{say(verdicts['accuracy']['verdict'], 'BN', 'no BN')}."
        + (f" With BN the mean curve passes the final accuracy of the network "
           f"without BN after {reach:,.0f} steps, {_percent(reach / total)} of the run."
           if reach is not None else "")]
    for which, what in (("unit", "the probed unit"), ("all", "all 100 units pooled")):
        rows = {row["arm"]: row for row in drift_rows(results, which)}
        bn, none = rows["batch"], rows["none"]
        verdicts = drift_verdicts(results, which)
        lines.append(
            f"- **The drift, {what}.** Between the first and the last tenth of "
            f"training the median moved by {mean(none['relative_shift']):.2f} of its "
            f"initial 15–85 spread without BN and by {mean(bn['relative_shift']):.2f} "
            f"with BN (does BN's move less? "
            f"{_yes_no(verdicts['relative_shift']['verdict'])}"
            f"{say(verdicts['relative_shift']['verdict'], 'BN', 'no BN', 'below')}); "
            f"the 15–85 spread ended at {mean(none['spread_ratio']):.2f} times its "
            f"initial width without BN and {mean(bn['spread_ratio']):.2f} times with "
            f"BN (does BN's change less? "
            f"{_yes_no(verdicts['spread_change']['verdict'])}"
            f"{say(verdicts['spread_change']['verdict'], 'BN', 'no BN', 'closer to 1 than')}).")
    return "\n".join(lines)


def _yes_no(verdict: str) -> str:
    """The answer to a yes-or-no question whose "yes" is the first side
    clearly ahead: "yes: ", "no: " or nothing (no verdict either way)."""
    return {plots.CLEAR: "yes: ", plots.CLEAR_OTHER_WAY: "no: "}.get(verdict, "")


MIN_RATES = 3  # rates per network before a best rate or a range means anything
CHANCE_LEVEL = 0.12  # a map run below this test accuracy learned nothing (chance: 0.1)


def _rates_so_far(trained: dict[str, list[dict]]) -> list[str]:
    lines = [f"- **{ARMS[arm]}, SGD, rates trained so far.** " + "; ".join(
        f"{row['learning_rate']:g}: " + ("diverged" if row["accuracy"] is None
                                         else f"{row['accuracy']:.3f}")
        for row in mine) + "." for arm, mine in trained.items()]
    return lines + [f"- Best rates and usable ranges are stated once each network "
                    f"has at least {MIN_RATES} rates trained."]


def _map_in_words(rows: list[dict], best: dict, partial: bool) -> list[str]:
    lines = []
    for arm, label in ARMS.items():
        mine = [row for row in rows if row["arm"] == arm]
        diverged = sorted(row["learning_rate"] for row in mine
                          if row["accuracy"] is None)
        chance = sorted(row["learning_rate"] for row in mine if row["accuracy"]
                        is not None and row["accuracy"] < CHANCE_LEVEL)
        low, high = usable_range(rows, arm)
        lines.append(
            f"- **{label}, SGD.** Best rate {best[arm]['learning_rate']:g} "
            f"(test accuracy {best[arm]['accuracy']:.3f} after 3 epochs); within 90 % "
            f"of that from {low:g} to {high:g}"
            + (f"; stuck at chance (accuracy below {CHANCE_LEVEL:g}) at "
               f"{', '.join(f'{rate:g}' for rate in chance)}" if chance else "")
            + (f"; diverged at {', '.join(f'{rate:g}' for rate in diverged)}"
               if diverged else
               f"; no rate {'trained so far' if partial else 'of the map'} "
               f"diverged") + ".")
    ratio = best["batch"]["learning_rate"] / best["none"]["learning_rate"]
    at_same = next((row for row in rows if row["arm"] == "batch" and
                    row["learning_rate"] == best["none"]["learning_rate"]), None)
    lines.append(
        (f"- **The two best rates.** They coincide "
         f"({best['none']['learning_rate']:g})" if ratio == 1 else
         f"- **The two best rates.** BN's best rate is {ratio:g} times the best rate "
         f"without BN")
        + (f"; at the rate best for no BN, BN reaches {at_same['accuracy']:.3f} "
           f"against {best['none']['accuracy']:.3f}"
           if at_same and at_same["accuracy"] is not None else "")
        + ". One seed per rate: the map locates the rates, it does not judge "
          "differences of a few points.")
    return lines


def map_findings(lrmap_results: list[dict]) -> str:
    """The learning-rate map in words, from the files."""
    from .config import get_grid

    lines = []
    planned = len(get_grid("lrmap").runs)
    partial = len(lrmap_results) < planned
    if partial:
        lines.append(f"- **PRELIMINARY:** {len(lrmap_results)} of the map's {planned} "
                     f"runs are finished; what follows reads those.")
    rows = rate_rows(lrmap_results)
    best = best_rates(rows)
    if set(best) != set(ARMS):
        return ("**PRELIMINARY:** the learning-rate map has no finished run of both "
                "networks yet; the findings are written from its files once it has.")
    trained = {arm: [row for row in rows if row["arm"] == arm] for arm in ARMS}
    if partial and min(len(mine) for mine in trained.values()) < MIN_RATES:
        lines.extend(_rates_so_far(trained))
    else:
        lines.extend(_map_in_words(rows, best, partial))
    return "\n".join(lines)


def adam_findings(lradam_results: list[dict]) -> str:
    """The Adam runs in words, from the files: each rate's accuracies, then
    whether BN widens the usable range (:func:`_adam_in_words`)."""
    adam = rate_rows(lradam_results)
    if not adam:
        return "**PRELIMINARY:** no Adam run is finished yet."
    parts = []
    for rate in sorted({row["learning_rate"] for row in adam}):
        cell = {row["arm"]: row for row in adam if row["learning_rate"] == rate}
        text = {arm: ("diverged" if cell[arm]["accuracy"] is None
                      else f"{cell[arm]['accuracy']:.3f}")
                for arm in ARMS if arm in cell}
        parts.append(f"{rate:g}: " + ", ".join(f"{ARMS[a]} {t}" for a, t in text.items()))
    return " ".join(["- **Adam.** " + "; ".join(parts) + ".",
                     *_adam_in_words(lradam_results)])


# --------------------------------------------------------------------------- the follow-up
FOLLOWUP_TARGET = 0.60  # "steps to reach a fixed test accuracy"
FOLLOWUP_ROLES = {"none-best": "no BN at its best rate",
                  "bn-best": "BN at its best rate",
                  "bn-at-none-best": "BN at the no-BN best rate",
                  "bn-highest": "BN at its highest usable rate"}


def first_step_at(result: dict, target: float) -> float | None:
    """The first evaluation step at which one run's test accuracy reaches
    ``target``; None if it never does within its budget."""
    return next((float(p[0]) for p in result["curve"] if p[4] >= target), None)


def followup_roles(results: list[dict], rates: dict | None = None
                   ) -> dict[str, list[dict]]:
    """The follow-up grid's finished seeds (diverged ones included) by role:
    no BN at its best map rate, BN at its best map rate, BN at the no-BN best
    rate, BN at its highest usable map rate. ``rates`` holds the map's rates:
    ``none`` and ``batch`` (each arm's best) and ``batch_highest`` (default
    :data:`bnlib.config.MAP_BEST_RATES` and ``MAP_BN_HIGHEST_RATE``); where
    rates coincide, one set of BN runs fills several roles. A role with no
    finished seed is left out."""
    if rates is None:
        from .config import MAP_BEST_RATES, MAP_BN_HIGHEST_RATE
        rates = {**MAP_BEST_RATES, "batch_highest": MAP_BN_HIGHEST_RATE}
    wanted = {"none-best": ("none", rates["none"]), "bn-best": ("batch", rates["batch"]),
              "bn-at-none-best": ("batch", rates["none"]),
              "bn-highest": ("batch", rates.get("batch_highest"))}
    roles = {}
    for role, (arm, rate) in wanted.items():
        runs = [r for r in results if _arm(r) == arm
                and r["config"]["learning_rate"] == rate]
        if runs:
            roles[role] = sorted(runs, key=lambda r: r["seed"])
    return roles


def followup_rows(results: list[dict], target: float = FOLLOWUP_TARGET,
                  rates: dict | None = None) -> list[dict]:
    """Per role: the learning rate, the seeds (finished and diverged), each
    finished seed's last-5 test accuracy and the step at which it first
    reached ``target`` (None: not within the budget)."""
    rows = []
    for role, runs in followup_roles(results, rates).items():
        finished = sorted((r for r in runs if r["status"] == "complete"),
                          key=lambda r: r["seed"])
        rows.append({
            "role": role, "label": FOLLOWUP_ROLES[role], "arm": _arm(runs[0]),
            "name": runs[0]["name"], "learning_rate": runs[0]["config"]["learning_rate"],
            "seeds": len(finished),
            "diverged": sorted(r["seed"] for r in runs if r["status"] == "diverged"),
            "accuracy": plots.last_n_means(finished),
            "steps_to_target": [first_step_at(r, target) for r in finished],
            "total_steps": finished[0]["curve"][-1][0] if finished else None,
            "steps_per_epoch": plots.steps_per_epoch(finished) if finished else None})
    return rows


def _steps_text(row: dict) -> str:
    steps = row["steps_to_target"]
    reached = [s for s in steps if s is not None]
    if not steps:
        return "–"
    text = plots.mean_range(reached, 0) if reached else ""
    missed = len(steps) - len(reached)
    if missed:
        text += (("; " if text else "") +
                 f"{missed} of {len(steps)} seeds not within {row['total_steps']:,.0f} steps")
    return text


def roles_label(labels: list[str]) -> str:
    """One run that fills several follow-up roles, named once: the first
    role's label, then ", also ..." for the others (figure and table alike)."""
    first, *others = labels
    return first + "".join(f", also {other.removeprefix('BN ')}" for other in others)


def followup_table(rows: list[dict], target: float = FOLLOWUP_TARGET):
    """The follow-up in a table: rate, seeds, last-5 test accuracy and steps to
    ``target``, mean [min, max] over seeds; one row per run (a run that fills
    two roles names both)."""
    columns = ["run", "SGD learning rate", "seeds", "test accuracy, last 5",
               f"steps to {target:.2f}"]
    labels = {}  # run name -> its roles' labels: one row per run, as in the figure
    for row in rows:
        labels.setdefault(row["name"], []).append(row["label"])
    cells, shown = [], set()
    for row in rows:
        if row["name"] in shown:
            continue
        shown.add(row["name"])
        cells.append([roles_label(labels[row["name"]]), f"{row['learning_rate']:g}",
                      str(row["seeds"]) + (f" (+{len(row['diverged'])} diverged)"
                                           if row["diverged"] else ""),
                      plots.mean_range(row["accuracy"]) if row["accuracy"] else "–",
                      _steps_text(row)])
    return plots.result_table(cells, columns)


BN_ROLES = ("bn-best", "bn-at-none-best", "bn-highest")


def _fewer_steps(a: list, b: list, budget: float) -> dict:
    """The book's rule on steps to the target, fewer being better; a seed that
    never reached it counts as one step past the budget (so it loses to any
    seed that did, and ties with another that did not)."""
    def censored(steps):
        return [-(s if s is not None else budget + 1) for s in steps]
    return plots.compare_values(censored(a), censored(b))


def followup_verdicts(results: list[dict], target: float = FOLLOWUP_TARGET,
                      rates: dict | None = None) -> dict:
    """BN at its best rate, and BN at the no-BN best rate, each against no BN at
    its best rate: final accuracy (higher better) and steps to ``target``
    (fewer better)."""
    rows = {row["role"]: row for row in followup_rows(results, target, rates)}
    none = rows.get("none-best")
    verdicts = {}
    for role in BN_ROLES:
        bn = rows.get(role)
        if none is None or bn is None or not none["seeds"] or not bn["seeds"]:
            continue
        budget = max(none["total_steps"], bn["total_steps"])
        verdicts[role] = {
            "accuracy": plots.compare_values(bn["accuracy"], none["accuracy"]),
            "steps": _fewer_steps(bn["steps_to_target"], none["steps_to_target"], budget)}
    return verdicts


def followup_figure(results: list[dict], target: float = FOLLOWUP_TARGET,
                    rates: dict | None = None):
    """Test accuracy of the follow-up's runs (mean, seed range), the target as
    a thin line; None while no run is finished."""
    drawn: dict[str, tuple[list[str], list[dict]]] = {}  # coinciding runs drawn once
    for role, runs in followup_roles(results, rates).items():
        finished = [r for r in runs if r["status"] == "complete"]
        if finished:
            drawn.setdefault(runs[0]["name"], ([], finished))[0].append(role)
    series = []
    for roles, finished in drawn.values():
        rate = finished[0]["config"]["learning_rate"]
        labels = [FOLLOWUP_ROLES[role] for role in roles]
        labels[0] += f" ({rate:g})"
        series.append((roles_label(labels), finished))
    fig = plots.series_figure(series, "SGD with momentum 0.9" + plots.data_tag(results),
                              y_limits=None)
    if fig is not None:
        fig.axes[0].axhline(target, color="#999999", lw=0.9, zorder=0)
    return fig


def followup_findings(results: list[dict], planned: int,
                      target: float = FOLLOWUP_TARGET, rates: dict | None = None) -> str:
    """The follow-up in words, from the files (``planned``: how many result
    files the grid makes, so a partial grid says so)."""
    rows = {row["role"]: row for row in followup_rows(results, target, rates)}
    lines = []
    if len(results) < planned:
        lines.append(f"- **PRELIMINARY:** {len(results)} of the follow-up's {planned} "
                     f"runs are finished; what follows reads those.")
    none = rows.get("none-best")
    if none is None or not none["seeds"] or not any(
            rows.get(role, {}).get("seeds") for role in BN_ROLES):
        return "\n".join(lines + ["- **PRELIMINARY:** no finished pair of no BN and BN yet."])
    mean = statistics.fmean
    verdicts = followup_verdicts(results, target, rates)
    say = plots.verdict_sentence
    per_epoch = none["steps_per_epoch"]
    described = {}  # run name -> the role that described it first
    for role in BN_ROLES:
        bn = rows.get(role)
        if role not in verdicts:
            continue
        if bn["name"] in described:
            lines.append(f"- The map's rates coincide: {bn['label']} is the same runs "
                         f"as {FOLLOWUP_ROLES[described[bn['name']]]}.")
            continue
        described[bn["name"]] = role
        verdict = verdicts[role]
        finished = [r for r in followup_roles(results, rates)[role]
                    if r["status"] == "complete"]
        reach = steps_to_reach(finished, mean(none["accuracy"]))
        lines.append(
            f"- **{bn['label']} ({bn['learning_rate']:g}) against no BN "
            f"at its best rate ({none['learning_rate']:g}).** Test accuracy "
            f"{mean(bn['accuracy']):.3f} against {mean(none['accuracy']):.3f} (last five "
            f"evaluations, {bn['seeds']} and {none['seeds']} seeds): "
            f"{say(verdict['accuracy']['verdict'], 'BN', 'no BN')}. Steps to "
            f"{target:.2f}: {_steps_text(bn)} against {_steps_text(none)} (fewer "
            f"with BN? "
            f"{say(verdict['steps']['verdict'], 'BN', 'no BN', 'below')})."
            + (f" BN's mean curve passes no BN's final accuracy after {reach:,.0f} "
               f"steps ({reach / per_epoch:.1f} epochs)." if reach is not None else
               " BN's mean curve does not reach no BN's final accuracy."))
    return "\n".join(lines)



def cnn_probe_pair(lrmap_results: list[dict], followup_results: list[dict],
                   rates: dict | None = None) -> tuple[list[dict], float | None, str]:
    """The runs behind Figure 6.5: no BN and BN conv+dense at the no-BN best
    rate, from the follow-up (15 epochs, every finished seed) once both have
    a finished seed there, else the map's 3-epoch pair at its best no-BN rate;
    only runs whose probe measured today's sample (:func:`on_probe_sample`).
    Returns ``(runs, rate, where they come from)``; no runs while neither
    has a finished pair."""
    roles = followup_roles(followup_results, rates)
    pair = [r for role in ("none-best", "bn-at-none-best") for r in roles.get(role, [])
            if r["status"] == "complete" and on_probe_sample(r)]
    if {_arm(r) for r in pair} == set(ARMS):
        return pair, pair[0]["config"]["learning_rate"], "the follow-up (15 epochs)"
    best = best_rates(rate_rows(lrmap_results)).get("none")
    if best is None:
        return [], None, "nothing yet"
    pair = [r for r in pair_at_rate(lrmap_results, best["learning_rate"])
            if r["status"] == "complete" and on_probe_sample(r)]
    if {_arm(r) for r in pair} != set(ARMS):
        return [], None, "nothing yet"
    return pair, best["learning_rate"], "the map (3 epochs, one seed)"


# --------------------------------------------------------------------------- the chapter's answer
def what_we_found(figure1_results: list[dict], lrmap_results: list[dict],
                  followup_results: list[dict], lradam_results: list[dict],
                  target: float = FOLLOWUP_TARGET, rates: dict | None = None) -> str:
    """The chapter's closing paragraph, from the four grids: on which of the
    paper's four claims our networks agree with it, on which they do not, and
    which the files cannot judge yet.

    The claims and what agreeing means: (1) BN reaches a higher accuracy —
    Figure 1's accuracy verdict is clear; (2) BN keeps the sigmoid's input
    steady — the probed unit's median moves clearly less with BN; (3) BN
    tolerates much higher learning rates — on the complete map BN's highest
    usable rate (within 90 % of its best) lies above no BN's; (4) BN reaches
    the target accuracy in fewer steps, at the same rate (the paper's
    BN-Baseline) and at a higher one (BN-x5) — the follow-up's steps verdict
    for BN at the no-BN best rate, and for BN at its highest usable rate,
    against no BN at its best rate is clear. A claim whose files are missing
    or have one seed on a side stays open."""
    from .config import get_grid

    say = plots.verdict_sentence
    points = []  # (verdicts used, agrees?, agreeing words, differing words, question)

    def judge(verdict, agrees, yes, no, question):
        points.append(((verdict,), agrees, yes, no, question))

    drift = drift_verdicts(figure1_results)
    accuracy = drift.get("accuracy", {}).get("verdict")
    judge(accuracy, accuracy == plots.CLEAR,
          "the sigmoid network with BN ends with a higher accuracy (" +
          say(accuracy or plots.MISSING, "BN", "no BN") + ")",
          "the sigmoid network with BN does not end clearly ahead (" +
          say(accuracy or plots.MISSING, "BN", "no BN") + ")",
          "whether BN ends ahead in the paper's Figure 1")
    shift = drift.get("relative_shift", {}).get("verdict")
    judge(shift, shift == plots.CLEAR,
          "BN keeps the sigmoid's input steadier (its median moves less: " +
          say(shift or plots.MISSING, "BN", "no BN", "below") + ")",
          "BN does not keep the sigmoid's input steadier (the median's move: " +
          say(shift or plots.MISSING, "BN", "no BN", "below") + ")",
          "whether BN keeps the sigmoid's input steadier")

    rows = rate_rows(lrmap_results)
    complete_map = (len(lrmap_results) == len(get_grid("lrmap").runs)
                    and set(best_rates(rows)) == set(ARMS))
    if complete_map:
        ranges = {arm: usable_range(rows, arm) for arm in ARMS}
        words = (f"BN stays within 90 % of its best up to a rate of "
                 f"{ranges['batch'][1]:g}, no BN up to {ranges['none'][1]:g}, on the "
                 f"one-seed map")
        # one seed per rate: no rule to apply, so the claim is read off the map
        # (any verdict but one-seed / missing / None counts as judged)
        judge("read off the map", ranges["batch"][1] > ranges["none"][1],
              f"BN tolerates higher learning rates ({words})",
              f"BN does not tolerate a higher learning rate ({words})", "")
    else:
        judge(None, False, "", "", "whether BN tolerates higher learning rates (the "
              "map is not complete)")

    followup = followup_verdicts(followup_results, target, rates)
    rows_by_role = {row["role"]: row for row in followup_rows(followup_results, target,
                                                              rates)}
    evaluated = [r["curve"] for r in followup_results
                 if r["status"] == "complete" and len(r["curve"]) > 1]
    # the steps to the target are read at the evaluations: say how far apart
    grain = (f"; counted at evaluations {round(evaluated[0][1][0] - evaluated[0][0][0])}"
             f" steps apart" if evaluated else "")
    for role, yes, no, where in (
            ("bn-at-none-best", "at the same rate BN alone reaches",
             "at the same rate BN alone does not reach",
             "BN against no BN, both at the no-BN best rate"),
            ("bn-highest", "a higher rate lets BN reach",
             "a higher rate does not let BN reach",
             "BN at its highest usable rate against no BN at its best")):
        steps = followup[role]["steps"]["verdict"] if role in followup else None
        words = say(steps or plots.MISSING, "BN", "no BN", "below") + grain
        if role == "bn-highest" and role in followup:
            # what the higher rate costs or buys at the end of the budget
            bn, none = rows_by_role[role], rows_by_role["none-best"]
            words += (f"; it ends at {statistics.fmean(bn['accuracy']):.3f} against "
                      f"{statistics.fmean(none['accuracy']):.3f}: "
                      + say(followup[role]["accuracy"]["verdict"], "BN", "no BN"))
        judge(steps, steps == plots.CLEAR,
              f"{yes} {target:.2f} in fewer steps ({where}: {words})",
              f"{no} {target:.2f} in clearly fewer steps ({where}: {words})",
              f"whether {yes} {target:.2f} in fewer steps ({where}: two seeds "
              f"of both needed)")

    paragraph, _ = plots.claims_paragraph(points, plural=True)
    parts = [paragraph]
    if "bn-at-none-best" in followup:  # the accuracy claim on the book's CNN too
        bn, none = rows_by_role["bn-at-none-best"], rows_by_role["none-best"]
        curve = followup_roles(followup_results, rates)["none-best"][0]["curve"]
        every = round(curve[1][0] - curve[0][0])  # steps between two evaluations
        parts.append(
            f"On the book's CNN, both at the no-BN best rate for {round(curve[-1][1])} "
            f"epochs, BN ends at "
            f"{statistics.fmean(bn['accuracy']):.3f} against "
            f"{statistics.fmean(none['accuracy']):.3f} ("
            + say(followup["bn-at-none-best"]["accuracy"]["verdict"], "BN", "no BN")
            + f"); its steps to {target:.2f} are counted at evaluations {every} steps "
              f"apart, so that claim rests on the first evaluations only.")
    if complete_map:
        best = best_rates(rows)
        if best["batch"]["learning_rate"] == best["none"]["learning_rate"]:
            parts.append(f"BN does not move the best rate here: both networks train "
                         f"best at {best['none']['learning_rate']:g}, so what BN buys "
                         f"on this network is the range of rates it forgives.")
    parts.extend(_paper_measure(followup_results, rates))
    parts.extend(_adam_in_words(lradam_results))
    return " ".join(parts)


# Ioffe and Szegedy (2015), Section 4.2.2 and the table of its Figure 3: training
# steps until each network reached the original Inception's accuracy of 72.2 %
# (Inception: "after 31 · 10^6 training steps"; BN-Baseline "in less than half";
# BN-x5 "14 times fewer steps than Inception")
PAPER_STEPS_TO_INCEPTION = {"Inception": 31.0e6, "BN-Baseline": 13.3e6, "BN-x5": 2.1e6}


def _paper_measure(followup_results: list[dict], rates: dict | None) -> list[str]:
    """The paper's own measure on the follow-up: the step at which BN's mean
    curve passes no BN's final accuracy, as a share of the run, beside the
    paper's shares (BN-Baseline and BN-x5 against Inception)."""
    roles = followup_roles(followup_results, rates)
    finished = {role: [r for r in runs if r["status"] == "complete"]
                for role, runs in roles.items()}
    none = finished.get("none-best")
    if not none:
        return []
    final = statistics.fmean(plots.last_n_means(none))
    total = none[0]["curve"][-1][0]
    paper = {name: steps / PAPER_STEPS_TO_INCEPTION["Inception"]
             for name, steps in PAPER_STEPS_TO_INCEPTION.items()}
    clauses, described = [], set()
    for role, twin in (("bn-at-none-best", "BN-Baseline"), ("bn-highest", "BN-x5")):
        runs = finished.get(role)
        if not runs or runs[0]["name"] in described:  # coinciding rates: once
            continue
        described.add(runs[0]["name"])
        reach = steps_to_reach(runs, final)
        rate = runs[0]["config"]["learning_rate"]
        clauses.append(
            (f"BN at {rate:g} passes it after {reach:,.0f} steps, {_percent(reach / total)} "
             f"of the run" if reach is not None else f"BN at {rate:g} never does")
            + f" (the paper's {twin}: {_percent(paper[twin])} of Inception's steps)")
    if not clauses:
        return []
    return [f"By the paper's own measure — the step at which BN's mean curve passes "
            f"the final accuracy of the network without BN ({final:.3f} after "
            f"{total:,.0f} steps) — " + "; ".join(clauses) + "."]


def _adam_in_words(lradam_results: list[dict]) -> list[str]:
    """The Adam runs in one or two sentences: the article's rate, and the
    rates at which only BN learns anything (one seed per rate)."""
    from .config import RunConfig

    cells = {}
    for row in rate_rows(lradam_results):
        cells.setdefault(row["learning_rate"], {})[row["arm"]] = row["accuracy"]
    article_rate = RunConfig.learning_rate
    parts = []
    article = cells.get(article_rate, {})
    if set(article) == set(ARMS) and None not in article.values():
        epochs = max(round(r["curve"][-1][1]) for r in lradam_results
                     if r["status"] == "complete")
        parts.append(f"With Adam at the article's rate ({article_rate:g}) BN reaches "
                     f"{article['batch']:.3f} against {article['none']:.3f} without "
                     f"it after {epochs} epochs (one seed).")
    only_bn = [rate for rate, cell in sorted(cells.items()) if set(cell) == set(ARMS)
               and (cell["none"] is None or cell["none"] < CHANCE_LEVEL)
               and cell["batch"] is not None and cell["batch"] >= CHANCE_LEVEL]
    if only_bn:
        parts.append("At Adam's " + ", ".join(f"{rate:g}" for rate in only_bn) +
                     " only the network with BN learns (" + "; ".join(
                         f"BN {cells[rate]['batch']:.3f}, no BN " +
                         ("diverged" if cells[rate]["none"] is None
                          else f"{cells[rate]['none']:.3f}, chance")
                         for rate in only_bn) +
                     ")" + (": the article's rate is one at which both networks "
                            "train, so its experiment never reaches the rates where BN "
                            "decides whether a network learns at all — the gain it "
                            "measured is a gain in accuracy at a rate both tolerate"
                            if article.get("none") is not None
                            and article["none"] >= CHANCE_LEVEL else "") + ".")
    return parts
