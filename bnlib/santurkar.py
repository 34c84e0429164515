"""Chapter 07, is it internal covariate shift? Santurkar et al. (2018) on the
book's CNN, read from the ``santurkar`` grid's result files.

The grid (see :mod:`bnlib.config`) trains four arms with SGD and momentum:
no BN, BN, noisy BN (random shifts and scales after every BN layer) and the
same noise without BN. The no-BN and BN arms carry the ``ics`` probes (how
much a layer's gradient changes when the layers before it take their step)
and the ``landscape`` probe (how the loss and its gradient change along the
gradient); see :mod:`bnlib.probes`. No BN and noisy BN are trained again at
a higher rate, where BN's partner is chapter 06's follow-up run
(:func:`with_followup`).
"""

from __future__ import annotations

import statistics

import numpy as np

from . import plots
from .config import SANTURKAR_EARLY_EPOCHS, SANTURKAR_HIGH_RATE, SANTURKAR_LEARNING_RATE
from .probes import probe_rows

# the arms at SANTURKAR_LEARNING_RATE
ARMS = {"sgd-none": "no BN", "sgd-bn": "BN", "sgd-noisy": "noisy BN",
        "sgd-noise": "noise without BN"}
# the arms at SANTURKAR_HIGH_RATE; BN's is chapter 06's follow-up run
NONE_HIGH = f"sgd-none-lr{SANTURKAR_HIGH_RATE:g}"
BN_HIGH = f"sgd-bn-both-lr{SANTURKAR_HIGH_RATE:g}"
NOISY_HIGH = f"sgd-noisy-lr{SANTURKAR_HIGH_RATE:g}"
HIGH_RATE_ARMS = {NONE_HIGH: "no BN", BN_HIGH: "BN", NOISY_HIGH: "noisy BN"}
RATES = {"base": SANTURKAR_LEARNING_RATE, "high": SANTURKAR_HIGH_RATE}
VERDICT_PREFIX = {"base": "", "high": "high_"}  # rate -> prefix of its keys in verdicts()
ICS_PROBES = ("ics:conv2", "ics:dense1")
LANDSCAPE_PROBE = "landscape"
LANDSCAPE_COLUMNS = {"loss_range": "loss range along the gradient",
                     "grad_change": "gradient change along the gradient",
                     "effective_smoothness": "effective β-smoothness"}
# the landscape probe's own context: where on the loss each network is, and how
# long its gradient (the step along it is a multiple of the learning rate times it)
LANDSCAPE_CONTEXT = {"loss": "loss", "grad_norm": "‖g‖"}
# the landscape is compared over the first epochs (measured ten times an
# epoch there) and over the rest of the run (at the evaluations)
EARLY_EPOCHS = SANTURKAR_EARLY_EPOCHS
LANDSCAPE_WINDOWS = {"early": (0, EARLY_EPOCHS), "later": (EARLY_EPOCHS, None)}
NORM_PLACES = ("conv1", "conv2", "dense1")  # where the normalizations sit
NORM_ARMS = ("sgd-bn", "sgd-noisy", "sgd-noise")  # the arms with a layer there


def with_followup(results: list[dict], followup_results: list[dict]) -> list[dict]:
    """The santurkar grid's results with chapter 06's follow-up runs of BN at
    :data:`SANTURKAR_HIGH_RATE` (``lrfollowup``: the configuration the grid
    would train, same seeds, so the same trajectory — a test checks that the
    two grids' shared configuration at the lower rate gives identical curves)."""
    return list(results) + [r for r in followup_results if r["name"] == BN_HIGH]


def runs_by_arm(results: list[dict], arms: dict[str, str] = ARMS,
                statuses: tuple[str, ...] = ("complete",)) -> dict[str, list[dict]]:
    """The complete seeds of each arm (an arm without any: an empty list);
    ``statuses=("complete", "diverged")`` adds the seeds that diverged."""
    return {name: [r for r in results if r["name"] == name and r["status"] in statuses]
            for name in arms}


# a seed that diverged learned nothing usable: it counts as guessing
CHANCE_ACCURACY = 1 / 10


def seed_accuracies(runs: list[dict]) -> list[float]:
    """Per seed: the mean test accuracy of its last evaluations, or
    :data:`CHANCE_ACCURACY` for a seed that diverged."""
    return [plots.last_n_means([r])[0] if r["status"] == "complete" else CHANCE_ACCURACY
            for r in runs]


def compare_arms(results: list[dict], first: str, second: str) -> dict:
    """The book's rule on two arms' :func:`seed_accuracies` (``first`` ahead)."""
    arms = runs_by_arm(results, {**ARMS, **HIGH_RATE_ARMS}, ("complete", "diverged"))
    return plots.compare_values(seed_accuracies(arms[first]), seed_accuracies(arms[second]))


def still_training(results: list[dict], arms: dict[str, str] = ARMS) -> str:
    """"" when every arm has a finished seed (complete or diverged), else a
    PRELIMINARY line naming the arms that have none."""
    finished = runs_by_arm(results, arms, ("complete", "diverged"))
    missing = [label for name, label in arms.items() if not finished[name]]
    return (f"PRELIMINARY: no finished run yet of {plots.and_join(missing)} "
            f"(still training)" if missing else "")


def accuracy_figure(results: list[dict], column: int = 4, y_limits=None,
                    arms: dict[str, str] = ARMS):
    """Test (``column=4``) or training (3) accuracy of the arms (the four at
    the base rate, or :data:`HIGH_RATE_ARMS`)."""
    runs = runs_by_arm(results, arms)
    what = "test" if column == 4 else "training"
    rate = RATES["high" if arms is HIGH_RATE_ARMS else "base"]
    return plots.series_figure([(label, runs[name]) for name, label in arms.items()],
                               f"Learning rate {rate:g}: {what} accuracy"
                               + plots.data_tag(results),
                               y_limits, column=column, y_label=f"{what} accuracy")


def probe_values(result: dict, probe: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and one column of a probe's rows."""
    columns = result["probe_columns"][probe]
    rows = probe_rows(result, probe)
    return rows[:, 0], rows[:, columns.index(column)]


def seed_mean(runs: list[dict], probe: str, column: str,
              window: tuple[float, float | None] = (0, None)) -> list[float]:
    """Per seed, the mean of a probe column over its measurements with epoch
    in ``window`` = (first, last] (no last: to the end; NaNs skipped)."""
    first, last = window
    values = []
    for run in runs:
        steps, column_values = probe_values(run, probe, column)
        per_epoch = plots.steps_per_epoch([run])
        keep = np.isfinite(column_values) & (steps / per_epoch > first)
        if last is not None:
            keep &= steps / per_epoch <= last
        values.append(float(column_values[keep].mean()))
    return values


def relative_ics(run: dict, probe: str) -> tuple[np.ndarray, np.ndarray]:
    """``||G - G'|| / ||G||`` over steps: the shift in units of the gradient."""
    steps, l2 = probe_values(run, probe, "ics_l2")
    _, norm = probe_values(run, probe, "grad_norm")
    with np.errstate(divide="ignore", invalid="ignore"):
        return steps, l2 / norm


def probe_figure(results: list[dict], panels: list[tuple[str, str, str]], title: str,
                 log_scale: bool = False, mark_epoch: float | None = None):
    """One panel per ``(probe, column, y label)``, two a row: no BN and BN
    over steps (mean over seeds, range shaded); a dotted vertical line at
    ``mark_epoch`` if given. ``column="relative_ics"`` plots
    :func:`relative_ics`. None while either arm has no finished run."""
    import matplotlib.pyplot as plt

    arms = runs_by_arm(results)
    pair = {name: arms[name] for name in ("sgd-none", "sgd-bn")}
    if not all(pair.values()):
        return None
    # at most two panels a row: the page's column is about 7.5 inches wide
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.7 * columns, 3.3 * rows),
                             dpi=plots.FIGURE_DPI, layout="constrained", squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (probe, column, label) in zip(axes.flat, panels):
        for position, (name, runs) in enumerate(pair.items()):
            series = [relative_ics(r, probe) if column == "relative_ics"
                      else probe_values(r, probe, column) for r in runs]
            length = min(len(s[0]) for s in series)
            steps = series[0][0][:length]
            values = np.array([s[1][:length] for s in series])
            epochs = steps / plots.steps_per_epoch(runs)
            color = plots.PALETTE[position]
            ax.plot(epochs, values.mean(axis=0), "-", color=color,
                    marker=plots.MARKERS[position], markersize=4, lw=1.8,
                    label=f"{ARMS[name]} (n={len(runs)})")
            ax.fill_between(epochs, values.min(axis=0), values.max(axis=0), color=color,
                            alpha=0.15, lw=0)
        if mark_epoch is not None:
            ax.axvline(mark_epoch, color="0.4", ls=":", lw=1.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        if log_scale:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(title + plots.data_tag(results), fontsize=11)
    return fig


def norm_output_probe(place: str) -> str:
    return f"norm_output:{place}"


def wander(run: dict, place: str) -> float:
    """How far one channel of the normalization's output moves from one
    evaluation to the next: the mean absolute change of that channel's mean on
    the probe batch between consecutive evaluations (0 for a distribution held
    in place)."""
    _, means = probe_values(run, norm_output_probe(place), "unit_mean")
    return float(np.mean(np.abs(np.diff(means))))


def distribution_figure(results: list[dict], seed: int = 0):
    """Santurkar et al.'s Figure 2 in quantiles: for each arm with a
    normalization (rows) and each place (columns), one channel of the layer's
    training-mode output over training — median, 25-75 % and 5-95 % bands —
    from one seed. None while no such run of that seed is finished."""
    import matplotlib.pyplot as plt

    arms = runs_by_arm(results)
    rows = [(name, next((r for r in arms[name] if r["seed"] == seed), None))
            for name in NORM_ARMS]
    rows = [(name, run) for name, run in rows if run is not None
            and norm_output_probe(NORM_PLACES[0]) in run.get("probes", {})]
    if not rows:
        return None
    fig, axes = plt.subplots(len(rows), len(NORM_PLACES),
                             figsize=(7.4, 2.3 * len(rows)),
                             dpi=plots.FIGURE_DPI, layout="constrained", squeeze=False,
                             sharex=True)
    for row, (name, run) in enumerate(rows):
        per_epoch = plots.steps_per_epoch([run])
        color = plots.PALETTE[list(ARMS).index(name) % len(plots.PALETTE)]
        for column, place in enumerate(NORM_PLACES):
            ax = axes[row][column]
            probe = norm_output_probe(place)
            steps, median = probe_values(run, probe, "unit_p50")
            epochs = steps / per_epoch
            for low, high, alpha in (("unit_p5", "unit_p95", 0.15),
                                     ("unit_p25", "unit_p75", 0.35)):
                ax.fill_between(epochs, probe_values(run, probe, low)[1],
                                probe_values(run, probe, high)[1], color=color,
                                alpha=alpha, lw=0)
            ax.plot(epochs, median, "-", color=color, marker="o", markersize=2.5, lw=1.4)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            if row == 0:
                ax.set_title(f"after {place}, channel 0", fontsize=10)
            if column == 0:
                ax.set_ylabel(ARMS[name], fontsize=10)
            if row == len(rows) - 1:
                ax.set_xlabel("epoch")
    fig.suptitle(f"One channel of each normalization's output in training mode "
                 f"(seed {seed}): median, 25–75 % and 5–95 %" + plots.data_tag(results),
                 fontsize=11)
    return fig


def window_label(window: str) -> str:
    """"epochs 1–3" / "after epoch 3" for :data:`LANDSCAPE_WINDOWS`."""
    first, last = LANDSCAPE_WINDOWS[window]
    return f"epochs {first + 1:g}–{last:g}" if last is not None else f"after epoch {first:g}"


def verdicts(results: list[dict]) -> dict[str, dict]:
    """The book's rule on each of the paper's three claims.

    ``noisy_vs_bn``: noisy BN's test accuracy against BN's (the paper: about
    the same); ``noisy_vs_none``: noisy BN against no BN (the paper: noisy BN
    still far ahead); ``bn_vs_none``: BN against no BN (what there is to
    explain); the same three with the prefix ``high_`` at
    :data:`SANTURKAR_HIGH_RATE` (``results`` holding BN's runs there, see
    :func:`with_followup`; a seed that diverged counts as chance, see
    :func:`seed_accuracies`); ``ics_<layer>``: no BN's mean relative ICS against
    BN's (lower is less shift; the paper: BN does not reduce it);
    ``<landscape column>:<window>``: BN's mean in each of
    :data:`LANDSCAPE_WINDOWS` against no BN's (lower counts as ahead; the
    paper: BN's is lower, and the effective smoothness, the one per unit of
    step length, is what "smoother" means), and the same for the columns of
    :data:`LANDSCAPE_CONTEXT` (the loss on the probe batch and ``||g||``);
    ``moves_<place>``: noisy BN's
    :func:`wander` against BN's (higher moves more: the noise is there).
    """
    arms = runs_by_arm(results)
    found = {"noisy_vs_bn": compare_arms(results, "sgd-noisy", "sgd-bn"),
             "noisy_vs_none": compare_arms(results, "sgd-noisy", "sgd-none"),
             "bn_vs_none": compare_arms(results, "sgd-bn", "sgd-none"),
             "high_noisy_vs_bn": compare_arms(results, NOISY_HIGH, BN_HIGH),
             "high_noisy_vs_none": compare_arms(results, NOISY_HIGH, NONE_HIGH),
             "high_bn_vs_none": compare_arms(results, BN_HIGH, NONE_HIGH)}
    for probe in ICS_PROBES:
        layer = probe.split(":")[1]
        means = {}
        for name in ("sgd-none", "sgd-bn"):
            means[name] = [float(np.nanmean(relative_ics(r, probe)[1])) for r in arms[name]]
        # "ahead" = less shift: compare negated values, BN first
        found[f"ics_{layer}"] = {
            **plots.compare_values([-v for v in means["sgd-bn"]],
                                   [-v for v in means["sgd-none"]]),
            "bn": means["sgd-bn"], "none": means["sgd-none"]}
    for column in (*LANDSCAPE_COLUMNS, *LANDSCAPE_CONTEXT):
        for window, epochs in LANDSCAPE_WINDOWS.items():
            means = {name: seed_mean(arms[name], LANDSCAPE_PROBE, column, epochs)
                     for name in ("sgd-none", "sgd-bn")}
            found[f"{column}:{window}"] = {
                **plots.compare_values([-v for v in means["sgd-bn"]],
                                       [-v for v in means["sgd-none"]]),
                "bn": means["sgd-bn"], "none": means["sgd-none"]}
    for place in NORM_PLACES:
        moved = {name: [wander(r, place) for r in arms[name]
                        if norm_output_probe(place) in r.get("probes", {})]
                 for name in ("sgd-bn", "sgd-noisy")}
        found[f"moves_{place}"] = {
            **plots.compare_values(moved["sgd-noisy"], moved["sgd-bn"]),
            "bn": moved["sgd-bn"], "noisy": moved["sgd-noisy"]}
    return found


def _mean(values) -> str:
    """A mean to three significant digits, trailing zeros kept (0.120)."""
    if not values:
        return "–"
    mean = statistics.fmean(values)
    return f"{mean:,.0f}" if abs(mean) >= 1000 else f"{mean:#.3g}".rstrip(".")


def _accuracy(runs: list[dict]) -> str:
    """An arm's mean accuracy over its seeds, saying how many diverged."""
    if not runs:
        return "not trained yet"
    diverged = sum(r["status"] == "diverged" for r in runs)
    return (f"{statistics.fmean(seed_accuracies(runs)):.3f}"
            + (f" ({diverged} of {len(runs)} seeds diverged, counted as chance)"
               if diverged else ""))


def findings_markdown(results: list[dict]) -> str:
    """The verdicts in words (what is not trained yet says so)."""
    arms = runs_by_arm(results)
    missing = [ARMS[name] for name, runs in arms.items() if not runs]
    if missing:
        return (f"**PRELIMINARY:** the `santurkar` grid has no finished run of "
                f"{plots.and_join(missing)} yet; the findings are written from its files "
                f"once every arm has one.")
    found = verdicts(results)
    arms = runs_by_arm(results, ARMS, ("complete", "diverged"))
    high = runs_by_arm(results, HIGH_RATE_ARMS, ("complete", "diverged"))
    say = plots.verdict_sentence
    moves = [found[f"moves_{place}"] for place in NORM_PLACES]
    lines = [
        "- **Does the noise move the distributions?** Mean change of channel 0's "
        "mean from one evaluation to the next, after " + "; ".join(
            f"{place}: BN {_mean(row['bn'])}, noisy BN {_mean(row['noisy'])} "
            f"({say(row['verdict'], 'noisy BN', 'BN')})"
            for place, row in zip(NORM_PLACES, moves)) + ".",
        f"- **Noisy BN at learning rate {RATES['base']:g}.** Test accuracy (last "
        f"five evaluations): noisy BN {_accuracy(arms['sgd-noisy'])}, BN "
        f"{_accuracy(arms['sgd-bn'])}, no BN {_accuracy(arms['sgd-none'])}, the noise "
        f"without BN {_accuracy(arms['sgd-noise'])}. Noisy BN against BN: "
        f"{say(found['noisy_vs_bn']['verdict'], 'noisy BN', 'BN')}; noisy BN against "
        f"no BN: {say(found['noisy_vs_none']['verdict'], 'noisy BN', 'no BN')}; BN "
        f"against no BN: {say(found['bn_vs_none']['verdict'], 'BN', 'no BN')}.",
        f"- **Noisy BN at learning rate {RATES['high']:g}.** Test accuracy: noisy BN "
        f"{_accuracy(high[NOISY_HIGH])}, BN {_accuracy(high[BN_HIGH])} (chapter 06's "
        f"follow-up), no BN {_accuracy(high[NONE_HIGH])}. Noisy BN against BN: "
        f"{say(found['high_noisy_vs_bn']['verdict'], 'noisy BN', 'BN')}; noisy BN "
        f"against no BN: {say(found['high_noisy_vs_none']['verdict'], 'noisy BN', 'no BN')}"
        f"; BN against no BN: {say(found['high_bn_vs_none']['verdict'], 'BN', 'no BN')}."]
    for probe in ICS_PROBES:
        layer = probe.split(":")[1]
        row = found[f"ics_{layer}"]
        lines.append(
            f"- **ICS at {layer}.** ‖G − G′‖ / ‖G‖ averaged over training: no BN "
            f"{_mean(row['none'])}, BN {_mean(row['bn'])} "
            f"({say(row['verdict'], 'BN', 'no BN', 'below')}).")
    for window in LANDSCAPE_WINDOWS:
        parts = []
        for column, label in LANDSCAPE_COLUMNS.items():
            row = found[f"{column}:{window}"]
            parts.append(f"{label}: no BN {_mean(row['none'])}, BN {_mean(row['bn'])} "
                         f"({say(row['verdict'], 'BN', 'no BN', 'below')})")
        context = "; ".join(
            f"{label} no BN {_mean(found[f'{column}:{window}']['none'])}, BN "
            f"{_mean(found[f'{column}:{window}']['bn'])}"
            for column, label in LANDSCAPE_CONTEXT.items())
        lines.append(f"- **Landscape, {window_label(window)}.** " + "; ".join(parts)
                     + f". On the probe batch: {context}.")
        if (found[f"loss_range:{window}"]["verdict"] == plots.CLEAR_OTHER_WAY
                and found[f"grad_norm:{window}"]["verdict"] == plots.CLEAR_OTHER_WAY):
            lines[-1] += (" BN's larger loss range goes with its longer gradient: the "
                          "same multiple of the learning rate is a longer step for BN, "
                          "and a longer step down the slope lowers the loss more, so "
                          "here a larger range does not mean a rougher landscape.")
    lines[-1] += (" Only the effective smoothness is per unit of step length; the other "
                  "two grow with the gradient's size.")
    return "\n".join(lines)


def _noisy_point(found: dict) -> tuple:
    """The paper's first claim as a point of :func:`plots.claims_paragraph`:
    judged at the rates where BN is clearly ahead of no BN (only there has
    noisy BN a benefit of BN to keep); untestable where it is at neither."""
    say = plots.verdict_sentence
    prefix = VERDICT_PREFIX
    used = tuple(found[f"{prefix[r]}{key}"]["verdict"] for r in RATES
                 for key in ("bn_vs_none", "noisy_vs_bn", "noisy_vs_none"))
    helped = [r for r in RATES if found[f"{prefix[r]}bn_vs_none"]["verdict"] == plots.CLEAR]
    question = "whether noisy BN keeps BN's lead over no BN"

    def against(rate):
        return (f"at learning rate {RATES[rate]:g}, noisy BN against BN: "
                f"{say(found[prefix[rate] + 'noisy_vs_bn']['verdict'], 'noisy BN', 'BN')}"
                f"; against no BN: "
                f"{say(found[prefix[rate] + 'noisy_vs_none']['verdict'], 'noisy BN', 'no BN')}")

    if not helped:
        return (used, None, "", "whether noisy BN keeps BN's lead: BN is not clearly "
                "ahead of no BN at either rate, so there is no lead to keep", question)
    agrees = all(found[prefix[r] + "noisy_vs_bn"]["verdict"]
                 in (plots.WITHIN_SPREAD, plots.CLEAR)
                 and found[prefix[r] + "noisy_vs_none"]["verdict"] == plots.CLEAR
                 for r in helped)
    words = "; ".join(against(r) for r in helped)
    part = all(found[prefix[r] + "noisy_vs_bn"]["verdict"] == plots.CLEAR_OTHER_WAY
               and found[prefix[r] + "noisy_vs_none"]["verdict"] == plots.CLEAR
               for r in helped)
    kept = [found[prefix[r] + "noisy_vs_none"]["diff"] / found[prefix[r] + "bn_vs_none"][
        "diff"] for r in helped] if part else []
    share = ", ".join(f"{k:.0%}".replace("%", " %") for k in kept)
    differs = (f"noisy BN keeps {'most' if min(kept, default=0) >= 0.5 else 'part'} of "
               f"BN's lead over no BN ({share} of it), not all: it ends clearly below "
               f"BN, though clearly above no BN (" if part else
               "noisy BN does not keep BN's lead over no BN (")
    return (used, agrees,
            "noisy BN keeps BN's lead over no BN where BN has one (" + words + ")",
            differs + words + ")", question)


def _noise_cost(results: list[dict], found: dict) -> list[str]:
    """Sentences for the rates where BN has no clear lead over no BN but noisy
    BN ends clearly below BN: there the noise costs accuracy, though it cannot
    take away a benefit BN does not have."""
    prefix = VERDICT_PREFIX
    pairs = {"base": ("sgd-noisy", "sgd-bn"), "high": (NOISY_HIGH, BN_HIGH)}
    arms = runs_by_arm(results, {**ARMS, **HIGH_RATE_ARMS}, ("complete", "diverged"))
    sentences = []
    for rate in RATES:
        if (found[prefix[rate] + "bn_vs_none"]["verdict"] == plots.CLEAR
                or found[prefix[rate] + "noisy_vs_bn"]["verdict"] != plots.CLEAR_OTHER_WAY):
            continue
        noisy_vs_none = found[prefix[rate] + "noisy_vs_none"]["verdict"]
        noisy, bn = (_accuracy(arms[name]) for name in pairs[rate])
        sentences.append(
            f"At learning rate {RATES[rate]:g}, where BN has no clear lead, noisy BN "
            f"still ends clearly below BN ({noisy} against {bn}; against no BN: "
            f"{plots.verdict_sentence(noisy_vs_none, 'noisy BN', 'no BN')}): what the "
            f"noise costs, not a benefit of BN taken away.")
    return sentences


def what_is_left(results: list[dict]) -> str:
    """The chapter's closing paragraph, from the verdicts: on which of the
    paper's three points our network agrees, and on which it does not.

    Agreeing means: where BN is clearly ahead of no BN, noisy BN not clearly
    behind BN and clearly ahead of no BN (at neither rate: not testable);
    BN's relative ICS not clearly below no BN's at either layer; BN's
    effective smoothness clearly below no BN's in both windows. A side with
    one seed leaves a point open."""
    arms = runs_by_arm(results)
    if not all(arms.values()):
        return ("**PRELIMINARY:** the closing verdict is written from the "
                "`santurkar` grid's files once every arm has a finished run.")
    found = verdicts(results)
    say = plots.verdict_sentence
    ics = {probe.split(":")[1]: found[f"ics_{probe.split(':')[1]}"]["verdict"]
           for probe in ICS_PROBES}
    smooth = {window: found[f"effective_smoothness:{window}"]["verdict"]
              for window in LANDSCAPE_WINDOWS}
    smooth_words = "; ".join(
        f"{window_label(window)}: BN "
        f"{_mean(found[f'effective_smoothness:{window}']['bn'])} against no BN "
        f"{_mean(found[f'effective_smoothness:{window}']['none'])}, "
        f"{say(v, 'BN', 'no BN', 'below')}" for window, v in smooth.items())
    points = [  # (verdicts used, agrees?, agreeing words, disagreeing words, question)
        _noisy_point(found),
        (tuple(ics.values()), all(v in (plots.WITHIN_SPREAD, plots.CLEAR_OTHER_WAY)
                                  for v in ics.values()),
         "BN does not clearly reduce the measured internal covariate shift",
         "BN reduces the measured shift at " + ", ".join(
             layer for layer, v in ics.items() if v == plots.CLEAR),
         "whether BN reduces the measured internal covariate shift"),
        (tuple(smooth.values()), all(v == plots.CLEAR for v in smooth.values()),
         f"BN makes the loss landscape smoother (effective smoothness, {smooth_words})",
         f"BN's effective smoothness is not clearly lower throughout ({smooth_words})",
         "whether BN makes the loss landscape smoother"),
    ]
    paragraph, agreeing = plots.claims_paragraph(points)
    parts = [paragraph]
    later_loss = found["loss:later"]
    if later_loss["verdict"] == plots.CLEAR:
        early_loss = found["loss:early"]

        def ratio(row):
            return statistics.fmean(row["bn"]) / statistics.fmean(row["none"])

        early_words = f"{_mean(early_loss['bn'])} against {_mean(early_loss['none'])}"
        parts.append(
            f"A caveat on the smoothness: after epoch {EARLY_EPOCHS} BN is also further "
            f"along (its loss on the probe batch is clearly lower, "
            f"{_mean(later_loss['bn'])} against {_mean(later_loss['none'])}), so that "
            f"window compares the landscape at "
            f"two different stages of training, not one place with and without BN"
            + (f"; in epochs 1–{EARLY_EPOCHS} the two losses are closer ({early_words}), "
               f"and that comparison is the fairer one." if ratio(early_loss) > ratio(later_loss)
               else f", and so does the window of epochs 1–{EARLY_EPOCHS} ({early_words})."))
    parts.extend(_noise_cost(results, found))
    base, high = found["bn_vs_none"]["verdict"], found["high_bn_vs_none"]["verdict"]
    unjudged = (plots.ONE_SEED, plots.MISSING)
    if base in unjudged:
        parts.append("Too few seeds to judge whether BN itself is ahead of no BN.")
    elif base != plots.CLEAR and high == plots.CLEAR:
        parts.append(f"At learning rate {RATES['base']:g} BN itself is not clearly ahead "
                     f"of no BN ({say(base, 'BN', 'no BN')}); its benefit on this network "
                     f"is the larger rate it tolerates (at {RATES['high']:g}: "
                     f"{say(high, 'BN', 'no BN')}), the benefit a smoother landscape "
                     "would explain.")
    elif base != plots.CLEAR and high in unjudged:
        parts.append(f"At learning rate {RATES['base']:g} BN itself is not clearly ahead "
                     f"of no BN ({say(base, 'BN', 'no BN')}); the runs at "
                     f"{RATES['high']:g} are not all trained yet.")
    elif base != plots.CLEAR:
        parts.append("BN is not clearly ahead of no BN at either learning rate, so "
                     "there is little benefit here for any mechanism to explain.")
    elif agreeing == len(points):
        parts.append("What survives of the original explanation, then, is a name "
                     "for a real phenomenon — layers do move under each other — not "
                     "the mechanism by which BN helps.")
    return " ".join(parts)
