"""The article's own measured curves, as data: every "article" number comes from here.

The 2018 article's text quotes no accuracy table; its author's public code
repository (cfiken/batch-normalization-try, commit 9b568c4, ``results/*.json``)
holds the 12 measured learning curves of its runs. ``reference/article_results.json``
is those 12 files converted without changing a value (see ``reference/README.md``):
``runs["0"]`` ... ``runs["11"]`` use the book's run ids, ``points`` are
``[step, seconds since the first point, test accuracy]``, 1,000 logged points up
to step 155,960 (400 epochs of 390 steps, batch 128, Adam 1e-3, raw pixels, one
seed, TensorFlow 1.8 on a GPU).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

REFERENCE_FILE = Path(__file__).resolve().parents[1] / "reference" / "article_results.json"
SOURCE = ("the article author's code repository, cfiken/batch-normalization-try "
          "(commit 9b568c4, results/*.json)")
STEPS_PER_EPOCH = 390


@functools.lru_cache(maxsize=1)
def article_curves() -> dict[int, np.ndarray]:
    """``{run_id: array of [step, seconds, test_accuracy]}`` for the 12 runs."""
    try:
        payload = json.loads(REFERENCE_FILE.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise FileNotFoundError(
            f"{REFERENCE_FILE} is missing or damaged ({err}): it is part of the "
            f"repository; restore it with `git checkout -- reference/`.") from err
    return {int(run_id): np.array(run["points"], dtype=np.float64)
            for run_id, run in payload["runs"].items()}


def final_and_best(run_id: int) -> tuple[float, float]:
    """The article's test accuracy at its last logged step (400 epochs) and
    the highest it logged."""
    points = article_curves()[run_id]
    return float(points[-1, 2]), float(points[:, 2].max())


def accuracy_near(run_id: int, epoch: float) -> float:
    """The article's test accuracy at the logged step nearest to ``epoch``."""
    points = article_curves()[run_id]
    nearest = np.argmin(np.abs(points[:, 0] - epoch * STEPS_PER_EPOCH))
    return float(points[nearest, 2])


def mean_accuracy_between(run_id: int, first_epoch: float, last_epoch: float
                          ) -> tuple[float, int]:
    """Mean test accuracy of the article's points with step in
    (first_epoch, last_epoch] x 390, and how many points that is."""
    points = article_curves()[run_id]
    steps = points[:, 0]
    inside = (steps > first_epoch * STEPS_PER_EPOCH) & (
        steps <= last_epoch * STEPS_PER_EPOCH)
    if not inside.any():
        raise ValueError(f"the article logged no point of run {run_id} between "
                         f"epochs {first_epoch} and {last_epoch}")
    return float(points[inside, 2].mean()), int(inside.sum())
