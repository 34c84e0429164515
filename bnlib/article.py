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


def epochs() -> int:
    """How many epochs the article trained: its last logged step / 390."""
    last = max(points[-1, 0] for points in article_curves().values())
    return round(last / STEPS_PER_EPOCH)


def curve(run_id: int, last_step: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The article's (steps, test accuracies) of one run, up to ``last_step``."""
    points = article_curves()[run_id]
    if last_step is not None:
        points = points[points[:, 0] <= last_step]
    return points[:, 0], points[:, 2]


def curves_digest() -> str:
    """sha256 of the 12 curves as loaded (run id and every point), so a figure
    drawn with them can name what it was drawn from."""
    import hashlib

    payload = sorted([run_id, points.tolist()]
                     for run_id, points in article_curves().items())
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def window_label(first_epoch: float, last_epoch: float) -> str:
    """How the book names a stretch of training: ``epochs 8-10`` means the
    points with step in (8 x 390, 10 x 390]."""
    return f"epochs {first_epoch:g}–{last_epoch:g}"


def config(run_id: int) -> dict:
    """The run's configuration as the article's code recorded it (its YAML,
    ``key: value`` per line): e.g. ``dropout_rate``, ``is_use_bn_conv``."""
    payload = json.loads(REFERENCE_FILE.read_text())
    values = {}
    for line in payload["runs"][str(run_id)]["config_yaml"].splitlines():
        key, _, text = line.partition(":")
        text = text.strip()
        if text in ("True", "False"):
            values[key.strip()] = text == "True"
        else:
            try:
                values[key.strip()] = int(text)
            except ValueError:
                values[key.strip()] = float(text)
    return values


def dropout(run_id: int) -> float:
    """The dropout rate the run trained with: its ``dropout_rate`` when
    ``is_use_dropout`` is set, else 0 (the YAML keeps a rate either way)."""
    values = config(run_id)
    return float(values["dropout_rate"]) if values["is_use_dropout"] else 0.0
