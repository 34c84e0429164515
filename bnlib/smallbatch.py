"""Chapter 08, small batches and the normalizations that followed BN, read from the
``smallbatch`` grid's result files (and chapter 05's no-BN reference).

The grid (see :mod:`bnlib.config`) keeps the gradient batch at 128 and
computes BN's statistics over ghost groups of g examples, g from 128 down to
2; beside it LayerNorm, GroupNorm and Batch Renormalization. Each run with
batch statistics also records its test accuracy with test-batch statistics
(probe ``batch_stats_eval``), which separates the noise of small-batch
statistics in training from the train/inference mismatch of the moving
averages.
"""

from __future__ import annotations

import statistics

import numpy as np

from . import plots
from .config import GHOST_SIZES, RENORM_GHOST_SIZES, get_grid
from .probes import probe_rows

IOFFE_GROUP = 4  # Ioffe's small-batch test split each worker's 32 images into groups of 4
LAST_EPOCH = 10  # the grid's budget; chapter 05's 15-epoch reference is cut here
BATCH_STATS_PROBE = "batch_stats_eval"
REFERENCE = ("standardized", "std-none-d0")  # chapter 05: no BN, standardized inputs
FAMILIES = {"ghost": "BN (ghost groups of g)", "renorm": "Batch Renorm (groups of g)"}
FLAT = {"layernorm": "LayerNorm", "groupnorm": "GroupNorm (8) + LayerNorm dense"}


def short_label(name: str) -> str:
    """A run of the grid in a few words ("BN g=128", "Batch Renorm g=4",
    "LayerNorm"): every run shares standardized inputs, Adam, dropout 0 and
    the budget, which the table's caption says once."""
    config = get_grid("smallbatch").run(name)
    if config.norm_conv in FAMILIES:
        return f"{'BN' if config.norm_conv == 'ghost' else 'Batch Renorm'} g={config.ghost_size}"
    return FLAT[name]


def _bench_label(name: str) -> str:
    """A timed network in a few words: the grid's runs by :func:`short_label`,
    chapter 05's reference networks by their own label."""
    if name in {run.name for run in get_grid("smallbatch").runs}:
        return short_label(name)
    config = get_grid(REFERENCE[0]).run(name)
    if config.norm_conv == "batch":  # chapter 05's BN: Keras' own layer, not bnlib's
        return "Keras' own BatchNormalization layer"
    return config.label


def finished(results: list[dict], name: str) -> list[dict]:
    return [r for r in results if r["name"] == name and r["status"] == "complete"]


def accuracy_until(run: dict, last_epoch: float = LAST_EPOCH,
                   column: int = 4) -> float:
    """The mean of the last :data:`bnlib.plots.LAST_N_EVALS` test evaluations
    up to ``last_epoch`` (the book's last-N rule, on a run cut at that epoch)."""
    points = [p for p in run["curve"] if p[1] <= last_epoch + 1e-9]
    return statistics.fmean(p[column] for p in points[-plots.LAST_N_EVALS:])


def batch_stats_accuracy(run: dict) -> float:
    """The same last-N mean of the accuracy with test-batch statistics."""
    rows = probe_rows(run, BATCH_STATS_PROBE)
    return statistics.fmean(rows[-plots.LAST_N_EVALS:, 1])


def load_speed(path) -> dict | None:
    """The side-by-side timing of ``python -m bnlib bench --normalizations``
    (None if it was not run: the table then says so)."""
    import json
    from pathlib import Path

    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else None


def error_rows(results: list[dict], reference: list[dict],
               speed: dict | None = None) -> list[dict]:
    """One row per run of the grid (and the no-BN reference): g (None where it
    does not apply), test error with the moving averages and with test-batch
    statistics, mean [min, max] over seeds, and the training speed relative to
    no normalization from ``speed`` (the side-by-side bench; None without
    it). A run's own timing is not used: it depends on what else ran beside it."""
    speeds = {name: row["ratio_to_no_norm"] for name, row in (speed or {}).get(
        "runs", {}).items()}
    rows = []
    for config in get_grid("smallbatch").runs:
        runs = finished(results, config.name)
        if not runs:
            continue
        errors = [1 - accuracy_until(r) for r in runs]
        batch_errors = ([1 - batch_stats_accuracy(r) for r in runs]
                        if BATCH_STATS_PROBE in config.probes else [])
        family = config.norm_conv if config.norm_conv in FAMILIES else config.name
        rows.append({"name": config.name, "label": short_label(config.name),
                     "family": family,
                     "g": config.ghost_size, "seeds": len(runs), "error": errors,
                     "batch_stats_error": batch_errors,
                     "speed": speeds.get(config.name)})
    if reference:
        rows.append({"name": reference[0]["name"], "label": "no normalization "
                     "(chapter 05)", "family": "none", "g": None,
                     "seeds": len(reference),
                     "error": [1 - accuracy_until(r) for r in reference],
                     "batch_stats_error": [], "speed": speeds.get(reference[0]["name"])})
    return rows


def error_table(rows: list[dict]):
    cells = [[row["label"], "–" if row["g"] is None else str(row["g"]), str(row["seeds"]),
              plots.mean_range(row["error"]), plots.mean_range(row["batch_stats_error"]),
              "–" if row["speed"] is None else f"{row['speed']:.2f}×"] for row in rows]
    return plots.result_table(
        cells, ["network", "g", "seeds", "test error, moving averages",
                "test error, test-batch statistics", "training speed (none = 1)"],
        caption=f"Every network: standardized inputs, Adam 10⁻³, dropout 0, "
                f"{LAST_EPOCH} epochs. Test error: mean of the last "
                f"{plots.LAST_N_EVALS} evaluations up to epoch {LAST_EPOCH}, mean "
                f"[lowest, highest] over the seeds.")


def speed_note(speed: dict | None, results: list[dict] = ()) -> str:
    """Where the speed column comes from, in a sentence; naming the CPUs the
    ``results`` trained on where the timing ran on another."""
    if speed is None:
        return ("No side-by-side timing yet: `python -m bnlib bench --normalizations` "
                "writes it.")
    spread = statistics.median((row["max"] - row["min"]) / row["median"]
                               for row in speed["runs"].values())
    timed = {name: row for name, row in speed["runs"].items() if name != REFERENCE[1]}
    in_table = {run.name for run in get_grid("smallbatch").runs}

    def named(name):  # a network the table does not list brings its ratio along
        return _bench_label(name) + ("" if name in in_table else
                                     f" ({timed[name]['ratio_to_no_norm']:.2f}×)")

    slower = [named(name) for name, row in timed.items()
              if 1 - row["ratio_to_no_norm"] > spread]
    level = [named(name) for name, row in timed.items()
             if 1 - row["ratio_to_no_norm"] <= spread]

    def are(names):
        return "is" if len(names) == 1 else "are"

    measured = " ".join(
        [f"By that measure {plots.and_join(slower)} {are(slower)} slower than the "
         f"network without normalization." if slower else
         "By that measure no network is slower than the network without "
         "normalization."]
        + ([f"{plots.and_join(level)} {are(level)} within the timing noise of it."]
           if slower and level else []))
    trained_on = sorted({r["environment"]["cpu"] for r in results} - {speed["cpu"]})
    elsewhere = (f" The timing ran on {speed['cpu']}, the runs trained on "
                 f"{plots.and_join(trained_on)}: ratios measured on one CPU need not "
                 f"hold on another."
                 if trained_on else "")
    load = speed.get("load_average_1min")
    busy = (f"; the machine's load average was {load['before']:.1f} before and "
            f"{load['after']:.1f} after on {speed['environment']['cpu_count']} cores, "
            f"so the absolute rates are below an idle machine's, while the "
            f"alternation keeps the ratios fair" if load else "")
    return (f"Training speed: each network's training step timed side by side in one "
            f"process ({speed['threads']} thread, {speed['repeats']} alternating "
            f"rounds of {speed['steps_per_repeat']} steps, medians; {speed['cpu']}, "
            f"{speed['date'][:10]}; `python -m bnlib bench --normalizations`), "
            f"relative to the network without normalization "
            f"({speed['runs'][REFERENCE[1]]['median']:,.0f} training images/s{busy}). "
            f"One network's fastest and slowest rounds lie {spread * 100:.0f} % of its "
            f"median apart (the median over the networks): smaller differences "
            f"between two networks are not measured. {measured}{elsewhere}")


def wu_he_figure(rows: list[dict]):
    """Test error against g (log axis, g decreasing to the right as Wu & He's
    images per GPU): BN and Batch Renorm with the moving averages (filled
    markers) and with test-batch statistics (hollow markers); LayerNorm,
    GroupNorm and no normalization as horizontal lines. None while no run of
    the grid is finished (the reference alone draws nothing)."""
    import matplotlib.pyplot as plt

    if not any(row["name"] != REFERENCE[1] for row in rows):
        return None
    fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=plots.FIGURE_DPI, layout="constrained")
    position = 0
    for family, label in FAMILIES.items():
        mine = sorted((row for row in rows if row["family"] == family),
                      key=lambda row: -row["g"])
        if not mine:
            continue
        color, marker = plots.PALETTE[position + 1], plots.MARKERS[position]
        for key, face, suffix in (("error", color, "moving averages"),
                                  ("batch_stats_error", "white", "test-batch statistics")):
            have = [row for row in mine if row[key]]
            if not have:
                continue
            means = [statistics.fmean(row[key]) for row in have]
            ax.plot([row["g"] for row in have], means, "-", color=color, marker=marker,
                    markerfacecolor=face, lw=1.8, markersize=6, label=f"{label}: {suffix}")
            ax.fill_between([row["g"] for row in have], [min(row[key]) for row in have],
                            [max(row[key]) for row in have], color=color, alpha=0.12,
                            lw=0)
        position += 1
    for offset, (name, label) in enumerate({**FLAT, "std-none-d0": "no normalization "
                                            "(chapter 05)"}.items()):
        row = next((row for row in rows if row["name"] == name), None)
        if row is None:
            continue
        color = plots.PALETTE[3 + offset]
        ax.axhline(statistics.fmean(row["error"]), color=color, lw=1.3,
                   label=f"{label} (n={row['seeds']})")
        ax.axhspan(min(row["error"]), max(row["error"]), color=color, alpha=0.12, lw=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(GHOST_SIZES), [str(g) for g in GHOST_SIZES])
    ax.invert_xaxis()
    ax.set_xlabel("examples per statistics group g (the gradient batch stays 128)")
    ax.set_ylabel(f"test error, last evaluations to epoch {LAST_EPOCH}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=plots.LEGEND_FONTSIZE, loc="upper left")
    return fig


def curves_figure(results: list[dict], reference: list[dict], names, title: str,
                  y_limits=None):
    """Test accuracy over epochs of some of the grid's runs and the reference;
    None while none of those runs is finished (the reference alone says
    nothing about small batches)."""
    series = [(short_label(name), finished(results, name)) for name in names]
    if not any(runs for _, runs in series):
        return None
    if reference:
        series.append(("no normalization, chapter 05", [
            {**r, "curve": [p for p in r["curve"] if p[1] <= LAST_EPOCH + 1e-9]}
            for r in reference]))
    return plots.series_figure(series, title + plots.data_tag(results), y_limits)


def paired_verdict(first: list[float], second: list[float]) -> dict:
    """Two measurements of the same runs, seed by seed (``first[i]`` and
    ``second[i]`` from seed ``i``): ``clear`` when every seed's difference is
    positive, ``clear, other way`` when every one is negative, ``within
    spread`` when the signs differ (one seed: no verdict)."""
    if not first or len(first) != len(second):
        return {"verdict": plots.MISSING, "seeds": (len(first), len(second))}
    diffs = [a - b for a, b in zip(first, second)]
    if len(diffs) < 2:
        verdict = plots.ONE_SEED
    elif all(d > 0 for d in diffs):
        verdict = plots.CLEAR
    elif all(d < 0 for d in diffs):
        verdict = plots.CLEAR_OTHER_WAY
    else:
        verdict = plots.WITHIN_SPREAD
    return {"diff": statistics.fmean(diffs), "seeds": (len(first), len(second)),
            "verdict": verdict, "paired": True}


def verdicts(results: list[dict]) -> dict[str, dict]:
    """The book's rule (on last-N test accuracy up to epoch 10) for the
    chapter's questions; ``mismatch_small`` compares two evaluations of the
    same runs, seed by seed (:func:`paired_verdict`)."""
    def accuracies(name):
        return [accuracy_until(r) for r in finished(results, name)]

    def batch_stats(name):
        return [batch_stats_accuracy(r) for r in finished(results, name)]

    def losses(full, small):  # each seed's own accuracy lost from full to small
        small_runs = {r["seed"]: accuracy_until(r) for r in finished(results, small)}
        return [accuracy_until(r) - small_runs[r["seed"]]
                for r in finished(results, full) if r["seed"] in small_runs]

    smallest = min(GHOST_SIZES)
    return {
        "bn_breaks": plots.compare_values(accuracies("ghost-g128"),
                                          accuracies(f"ghost-g{smallest}")),
        "gn_vs_small_bn": plots.compare_values(accuracies("groupnorm"),
                                               accuracies(f"ghost-g{smallest}")),
        "bn_vs_gn": plots.compare_values(accuracies("ghost-g128"), accuracies("groupnorm")),
        "bn_vs_ln": plots.compare_values(accuracies("ghost-g128"), accuracies("layernorm")),
        "bn_breaks_at_4": plots.compare_values(accuracies("ghost-g128"),
                                               accuracies(f"ghost-g{IOFFE_GROUP}")),
        "renorm_vs_bn_full": plots.compare_values(accuracies("renorm-g128"),
                                                  accuracies("ghost-g128")),
        "renorm_vs_bn_at_4": plots.compare_values(
            accuracies(f"renorm-g{IOFFE_GROUP}"), accuracies(f"ghost-g{IOFFE_GROUP}")),
        "renorm_loses_less_at_4": plots.compare_values(
            losses("ghost-g128", f"ghost-g{IOFFE_GROUP}"),
            losses("renorm-g128", f"renorm-g{IOFFE_GROUP}")),
        "renorm_vs_bn_small": plots.compare_values(
            accuracies(f"renorm-g{min(RENORM_GHOST_SIZES)}"),
            accuracies(f"ghost-g{smallest}")),
        "mismatch_small": paired_verdict(batch_stats(f"ghost-g{smallest}"),
                                         accuracies(f"ghost-g{smallest}")),
    }


# question: (its words, the first side, the second side)
QUESTIONS = {
    "bn_breaks": ("Does BN break with tiny groups? BN with g = 128 against g = 2",
                  "g = 128", "g = 2"),
    "bn_breaks_at_4": ("BN with g = 128 against g = 4", "g = 128", "g = 4"),
    "gn_vs_small_bn": ("GroupNorm against BN with g = 2", "GroupNorm", "BN g = 2"),
    "bn_vs_gn": ("BN with g = 128 against GroupNorm", "BN g = 128", "GroupNorm"),
    "bn_vs_ln": ("BN with g = 128 against LayerNorm", "BN g = 128", "LayerNorm"),
    "renorm_vs_bn_full": ("Batch Renorm against BN, both with g = 128",
                          "Batch Renorm", "BN"),
    "renorm_vs_bn_at_4": ("Batch Renorm against BN, both with g = 4 (the group "
                          "size of Ioffe's own small-batch test; Renorm's clipping "
                          "fixed from the first step)", "Batch Renorm", "BN"),
    "renorm_loses_less_at_4": ("Accuracy lost from g = 128 to g = 4, each seed "
                               "against itself: BN's loss against Batch Renorm's",
                               "BN's loss", "Batch Renorm's loss"),
    "renorm_vs_bn_small": ("Batch Renorm against BN, both with g = 2 (Renorm's "
                           "clipping fixed from the first step, not ramped up as "
                           "Ioffe does: a possible handicap)", "Batch Renorm", "BN"),
    "mismatch_small": ("g = 2: test accuracy with test-batch statistics against "
                       "moving averages, the same runs", "test-batch statistics",
                       "moving averages"),
}


def findings_markdown(results: list[dict]) -> str:
    """Each question with its verdict, in words that name the side ahead."""
    if not results:
        return ("**PRELIMINARY:** the `smallbatch` grid has no finished run yet; the "
                "findings are written from its files once it has.")
    found = verdicts(results)
    lines = []
    for key, (question, first, second) in QUESTIONS.items():
        row = found[key]
        if row["verdict"] == plots.MISSING:
            lines.append(f"- {question}: not trained yet.")
            continue
        if row.get("paired"):
            sides = {plots.CLEAR: f"every seed higher with {first}",
                     plots.CLEAR_OTHER_WAY: f"every seed higher with {second}",
                     plots.WITHIN_SPREAD: "the seeds disagree",
                     plots.ONE_SEED: "one seed, no verdict"}[row["verdict"]]
        else:
            sides = plots.verdict_sentence(row["verdict"], first, second)
        unit = "" if key == "renorm_loses_less_at_4" else " in test accuracy"
        lines.append(f"- {question}: {row['diff']:+.3f}{unit} (seeds "
                     f"{row['seeds'][0]}/{row['seeds'][1]}), {sides}.")
    return "\n".join(lines)


def ghost_outputs_demo(rng_seed: int = 0, rows: int = 8, units: int = 4):
    """A dense layer's pre-activations for 8 examples, normalized over the
    whole batch and over ghost groups of 2 (NumPy, before gamma and beta)."""
    from .bn_math import ghost_batch_norm

    H = np.random.default_rng(rng_seed).normal(3.0, 2.0, size=(rows, units))
    return H, ghost_batch_norm(H, rows), ghost_batch_norm(H, 2)


def what_we_found(results: list[dict]) -> str:
    """The chapter's closing paragraph: Wu and He's and Ioffe's claims, each
    with the verdict from the files. Agreeing means: BN with g = 128 clearly
    ahead of g = 2; GroupNorm clearly ahead of BN with g = 2; BN with g = 128
    not clearly behind GroupNorm (Wu and He: GN slightly below BN at a large
    batch); BN with g = 128 clearly ahead of LayerNorm; Batch Renorm not
    clearly behind BN at g = 128 (Ioffe: it matches BN at a normal batch); and
    Batch Renorm clearly losing less accuracy than BN when the groups shrink
    from 128 to 4, Ioffe's own small-batch test (each seed's loss against
    itself). Where a claim fails, the words say which way: "does not
    clearly ..." when the seed ranges overlap, the other side ahead when they
    do not. The Batch Renorm claim cannot be tested where BN itself does not
    clearly lose accuracy at g = 4. Two results the papers make no claim on
    close the paragraph: Batch Renorm at g = 2, beyond Ioffe's tests, and the
    moving averages against test-batch statistics (the book's own question)."""
    if not results:
        return ("**PRELIMINARY:** the closing verdict is written from the "
                "`smallbatch` grid's files once it has finished runs.")
    found = verdicts(results)
    smallest = min(GHOST_SIZES)

    def point(key, agrees, claim, overlap, other_way, question):
        verdict = found[key]["verdict"]
        _, first, second = QUESTIONS[key]
        words = plots.verdict_sentence(verdict, first, second)
        differs = other_way if verdict == plots.CLEAR_OTHER_WAY else overlap
        return ((verdict,), agrees(verdict), f"{claim} ({words})",
                f"{differs} ({words})", question)

    def clear(verdict):
        return verdict == plots.CLEAR

    def not_behind(verdict):
        return verdict != plots.CLEAR_OTHER_WAY

    g = IOFFE_GROUP
    renorm = point("renorm_loses_less_at_4", clear, f"Batch Renorm loses less "
                   f"accuracy than BN when the groups shrink from 128 to {g}",
                   f"Batch Renorm loses about as much accuracy as BN when the groups "
                   f"shrink from 128 to {g}", f"Batch Renorm loses more accuracy than "
                   f"BN when the groups shrink from 128 to {g}",
                   f"whether Batch Renorm loses less than BN when the groups shrink "
                   f"to {g}")
    full, at_4 = found["renorm_vs_bn_full"], found["renorm_vs_bn_at_4"]
    if (renorm[0][0] == plots.WITHIN_SPREAD and full["verdict"] == plots.CLEAR
            and at_4["verdict"] == plots.CLEAR):
        used, agrees, yes, no, question = renorm
        renorm = (used, agrees, yes, no[:-1] + f"): it is ahead of BN at g = {g} "
                  f"({at_4['diff']:+.3f}) by about what it is ahead at g = 128 "
                  f"({full['diff']:+.3f})", question)
    breaks = found["bn_breaks_at_4"]["verdict"]
    if breaks in (plots.WITHIN_SPREAD, plots.CLEAR_OTHER_WAY):  # nothing to recover
        used, _, yes, _, question = renorm
        renorm = (used + (breaks,), None, yes,
                  f"whether Batch Renorm recovers what BN loses with groups of {g}: "
                  f"BN does not clearly lose anything there", question)
    points = [
        point("bn_breaks", clear, f"BN loses accuracy when its statistics come from "
              f"groups of {smallest}", f"BN does not clearly lose accuracy with groups "
              f"of {smallest}", f"BN gains accuracy with groups of {smallest}",
              "whether BN breaks with tiny groups"),
        point("gn_vs_small_bn", clear, f"GroupNorm, which needs no batch, beats BN "
              f"with groups of {smallest}", f"GroupNorm does not clearly beat BN with "
              f"groups of {smallest}", f"BN with groups of {smallest} beats GroupNorm",
              "whether GroupNorm beats BN with tiny groups"),
        point("bn_vs_gn", not_behind, "at the full batch BN is not behind GroupNorm",
              "", "at the full batch GroupNorm beats BN",
              "how BN and GroupNorm compare at the full batch"),
        point("bn_vs_ln", clear, "LayerNorm trails BN on a convolutional network",
              "LayerNorm does not clearly trail BN here", "LayerNorm is ahead of BN "
              "here, even at the full batch", "how LayerNorm compares with BN"),
        point("renorm_vs_bn_full", not_behind, "at the full batch Batch Renorm is "
              "not behind BN", "", "at the full batch Batch Renorm falls below BN",
              "how Batch Renorm and BN compare at the full batch"),
        renorm,
    ]
    paragraph, _ = plots.claims_paragraph(points, paper="the papers")
    parts = [paragraph]
    beyond = found["renorm_vs_bn_small"]
    if beyond["verdict"] in (plots.CLEAR, plots.CLEAR_OTHER_WAY, plots.WITHIN_SPREAD):
        _, first, second = QUESTIONS["renorm_vs_bn_small"]
        words = plots.verdict_sentence(beyond["verdict"], first, second)
        where = {plots.CLEAR: "ends above BN", plots.CLEAR_OTHER_WAY: "ends below BN",
                 plots.WITHIN_SPREAD: "ends level with BN"}[beyond["verdict"]]
        parts.append(f"Beyond Ioffe's tests, with groups of {smallest} Batch Renorm "
                     f"(its clipping fixed from the first step) {where} ({words}, "
                     f"{beyond['diff']:+.3f}).")
    mismatch = found["mismatch_small"]
    lower = [size for size in GHOST_SIZES if size < max(GHOST_SIZES)]
    behind_everywhere = all(
        statistics.fmean(map(batch_stats_accuracy, finished(results, f"ghost-g{size}")))
        < statistics.fmean(map(accuracy_until, finished(results, f"ghost-g{size}")))
        for size in lower if finished(results, f"ghost-g{size}"))
    if mismatch["verdict"] == plots.CLEAR:
        parts.append(f"With groups of {smallest} the same networks score "
                     f"{mismatch['diff']:+.3f} higher when the test batches bring "
                     f"their own statistics, in every seed: part of small-group BN's "
                     f"loss is the moving averages' mismatch at inference, not the "
                     f"noisy training alone.")
    elif mismatch["verdict"] == plots.CLEAR_OTHER_WAY:
        everywhere = (f"; it scores lower on average at every g below "
                      f"{max(GHOST_SIZES)} too (in Figure 8.1 the hollow markers lie "
                      f"above the filled ones)" if behind_everywhere else "")
        parts.append(f"With groups of {smallest}, evaluating as in training (test "
                     f"batches split into groups of {smallest}) scores "
                     f"{-mismatch['diff']:.3f} lower than with the moving averages, in "
                     f"every seed{everywhere}: the moving averages cost no accuracy "
                     f"here; what small groups lose, they lose in training.")
    return " ".join(parts)


def against_no_normalization(results: list[dict], reference: list[dict]
                             ) -> dict[int, dict]:
    """BN at each group size g against chapter 05's network without
    normalization (standardized inputs, its evaluations up to epoch 10), by
    the book's rule."""
    none = [accuracy_until(r) for r in reference]
    return {size: plots.compare_values(
        [accuracy_until(r) for r in finished(results, f"ghost-g{size}")], none)
        for size in GHOST_SIZES}


def against_no_normalization_markdown(results: list[dict], reference: list[dict]
                                      ) -> str:
    """:func:`against_no_normalization` in one sentence, group sizes gathered
    by verdict, largest first."""
    found = against_no_normalization(results, reference)
    if not reference or all(row["verdict"] == plots.MISSING for row in found.values()):
        return ("**PRELIMINARY:** BN against no normalization is judged once both "
                "sides have finished runs.")
    words = {plots.CLEAR: "clearly ahead of", plots.WITHIN_SPREAD: "level with",
             plots.CLEAR_OTHER_WAY: "clearly behind",
             plots.ONE_SEED: "not yet judged (one seed) against",
             plots.MISSING: "not yet trained against"}
    groups: dict[str, list[str]] = {}
    for size, row in found.items():
        detail = f"{size} ({row['diff']:+.3f})" if "diff" in row else str(size)
        groups.setdefault(row["verdict"], []).append(detail)
    clauses = [f"{words[verdict]} it at g = {plots.and_join(sizes)}"
               for verdict, sizes in groups.items()]
    return ("Against chapter 05's network without any normalization (standardized "
            "inputs, test accuracy up to epoch 10, the book's rule), BN is "
            + "; ".join(clauses) + ".")
