import re

import numpy as np
import pytest

from backprop import data
from backprop.spec import TrainSpec
from backprop.train import Trainer

REG = TrainSpec(network={"layers": [2, 3, 1]})
CE = TrainSpec.model_validate(
    {"network": {"layers": [2, 3, 3], "output_activation": "softmax"}, "loss": "cross_entropy"}
)
X = [[0.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize(
    ("spec", "x", "y", "says"),
    [
        (REG, [[0.0, 1.0, 2.0]], [1.0], "x must have shape (n_samples, 2)"),
        (REG, [1.0, 2.0], [1.0], "x must have shape (n_samples, 2)"),
        (REG, np.empty((0, 2)), np.empty(0), "x is empty"),
        (REG, [[0.0, float("nan")]], [1.0], "NaN or infinite value (first at index [0, 1])"),
        (REG, X, [1.0, float("inf")], "y holds a NaN or infinite value"),
        (REG, [[0.0, 1.0], [1.0]], [1.0, 2.0], "rectangular array of numbers"),
        (REG, X, [[1.0, 2.0], [3.0, 4.0]], "y must have shape (n_samples, 1)"),
        (REG, X, [1.0], "one row per sample of x (2)"),
        (REG, [["a", "b"]], [1.0], "rectangular array of numbers"),
        (CE, X, [0, 3], "labels must lie in 0..2"),
        (CE, X, [0, -1], "labels must lie in 0..2"),
        (CE, X, [0.5, 1], "whole numbers"),
        (CE, X, [[1, 0, 0], [0.5, 0, 0]], "rows must sum to 1"),
        (CE, X, [[1, 0], [0, 1]], "or integer class labels of shape (n_samples,)"),
    ],
)
def test_bad_data_names_the_problem(spec, x, y, says):
    with pytest.raises(ValueError, match=re.escape(says)):
        data.prepare(spec, x, y)


def test_labels_become_one_hot_rows():
    X2, Y = data.prepare(CE, X, [2, 0])
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0]])
    assert X2.flags.c_contiguous
    assert X2.dtype == np.float64


def test_vector_targets_fit_a_single_output_and_take_the_dtype():
    spec = REG.model_copy(update={"dtype": "float32"})
    _, Y = data.prepare(spec, X, [0, 1])
    assert Y.shape == (2, 1)
    assert Y.dtype == np.float32


def test_validation_split_leaves_rows_on_both_sides():
    with pytest.raises(ValueError, match="both need at least one"):
        Trainer(REG.model_copy(update={"validation_split": 0.2}), X, [0.0, 1.0])
    train, val = data.split(10, 0.3, np.random.default_rng(0))
    assert len(val) == 3
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(10))
