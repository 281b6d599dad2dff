import numpy as np
import pytest

from backprop import datasets


@pytest.mark.parametrize("name", datasets.NAMES)
def test_deterministic_by_seed(name):
    a, b = datasets.load(name, seed=3), datasets.load(name, seed=3)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    assert a.x.ndim == 2
    assert len(a.x) == len(a.y) > 0
    assert np.isfinite(a.x).all()


@pytest.mark.parametrize("name", ["moons", "circles", "spirals", "blobs", "sine"])
def test_seed_changes_random_sets(name):
    assert not np.array_equal(datasets.load(name, seed=1).x, datasets.load(name, seed=2).x)


def test_truth_tables():
    xor = datasets.load("xor")
    np.testing.assert_array_equal(xor.x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(xor.y, [0, 1, 1, 0])
    np.testing.assert_array_equal(datasets.load("and").y, [0, 0, 0, 1])
    np.testing.assert_array_equal(datasets.load("or").y, [0, 1, 1, 1])
    assert xor.n_outputs == 1


def test_iris_is_fishers_table():
    iris = datasets.load("iris")
    assert iris.x.shape == (150, 4)
    assert iris.n_outputs == 3
    assert np.bincount(iris.y).tolist() == [50, 50, 50]
    np.testing.assert_allclose(iris.x.mean(axis=0), [5.8433, 3.0573, 3.758, 1.1993], atol=1e-3)


def test_sizes_and_classes():
    assert datasets.load("moons", n=50).x.shape == (50, 2)
    spirals = datasets.load("spirals", classes=4, n=40)
    assert spirals.n_classes == 4
    assert spirals.n_outputs == 4
    sine = datasets.load("sine")
    np.testing.assert_allclose(sine.y, np.sin(sine.x))
    assert sine.n_classes is None
    assert sine.n_outputs == 1


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        datasets.load("mnist")
