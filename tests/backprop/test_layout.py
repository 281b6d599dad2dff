"""The flat parameter layout and the parameter names, on layers wider than 10."""

import itertools

import numpy as np
import pytest

from backprop.layout import Layout, parameter_name, parse_parameter_name
from backprop.network import Network

SIZES = (12, 11, 3)  # wide enough that w^1_110 would be ambiguous


def _every_parameter(sizes):
    for l in range(1, len(sizes)):
        for k, j in itertools.product(range(sizes[l]), range(sizes[l - 1])):
            yield l, k, j
        for k in range(sizes[l]):
            yield l, k, None


def test_indices_address_the_networks_own_views():
    net = Network(SIZES)
    net.theta[...] = np.random.default_rng(0).normal(size=net.theta.size)
    layout = net.layout
    for l, k, j in _every_parameter(SIZES):
        if j is None:
            assert net.theta[layout.bias_index(l, k)] == net.biases[l - 1][k]
        else:
            assert net.theta[layout.weight_index(l, k, j)] == net.weights[l - 1][k, j]


def test_every_element_of_theta_is_exactly_one_parameter():
    layout = Layout(SIZES)
    indices = [
        layout.bias_index(l, k) if j is None else layout.weight_index(l, k, j)
        for l, k, j in _every_parameter(SIZES)
    ]
    assert sorted(indices) == list(range(layout.size))
    assert layout.size == 12 * 11 + 11 * 3 + 11 + 3


def test_split_gives_the_seeds_shapes_as_views():
    layout = Layout(SIZES)
    theta = np.arange(layout.size, dtype=np.float64)
    Ws, bs = layout.split(theta)
    assert [W.shape for W in Ws] == [(11, 12), (3, 11)]
    assert [b.shape for b in bs] == [(11,), (3,)]
    assert Ws[0][10, 1] == layout.weight_index(1, 10, 1)
    assert np.shares_memory(Ws[1], theta)
    with pytest.raises(ValueError, match="expected 179 parameters"):
        layout.split(theta[:-1])


def test_names_are_unambiguous_and_read_back():
    assert parameter_name(1, 11, 0) == "w^1_{11,0}"
    assert parameter_name(1, 1, 10) == "w^1_{1,10}"
    assert parameter_name(2, 10) == "b^2_{10}"
    names = [parameter_name(l, k, j) for l, k, j in _every_parameter(SIZES)]
    assert len(set(names)) == len(names)
    for (l, k, j), name in zip(_every_parameter(SIZES), names, strict=True):
        assert parse_parameter_name(name) == (l, k, j)


@pytest.mark.parametrize("name", ["w^1_110", "w^1_{1}", "b^2_{1,0}", "w1_{0,1}", "w^1_{0,1} "])
def test_a_name_that_is_not_one_says_how_to_write_it(name):
    with pytest.raises(ValueError, match=r"write w\^l_\{k,j\} for a weight"):
        parse_parameter_name(name)
