"""Helpers several test files share (importable: pytest puts tests/ on the path)."""

from __future__ import annotations

import numpy as np

from bnlib import training as T


def model_values(model) -> list[np.ndarray]:
    """A copy of every model variable's value (weights, BN statistics, seed states)."""
    return [variable.numpy().copy() for variable in model.variables]


def assert_same_values(first, second) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def train_in_memory(config, protocol, data):
    """The runner's loop (probes called at every evaluation): the curve, the
    probe rows, the trainer and the final values of every model variable."""
    trainer, _ = T.prepare(config, 0, protocol, data)
    curve, rows = [], {}
    for epoch in range(protocol.epochs):
        curve += trainer.train_epoch(0, epoch, probe_rows=rows)[0]
    return curve, rows, trainer, model_values(trainer.model)
