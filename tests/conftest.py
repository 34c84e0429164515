"""Shared test setup.

bnlib.tf1 runs the article's ``tf.compat.v1.layers`` code, which TensorFlow
routes to the tf-keras package only if ``TF_USE_LEGACY_KERAS=1`` is set before
TensorFlow is first imported. Every test shares one process, so set it here,
before any test module imports TensorFlow. ``import keras`` stays Keras 3.
"""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import sys

import pytest


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test drew, so no test depends on how many earlier
    tests left open (matplotlib warns past 20)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
