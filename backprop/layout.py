"""Where every w^l_kj and b^l_k sits in the engine's one flat parameter array θ, and their names.

For layer sizes (n_0, …, n_L), all weights come first, then all biases:

    θ = [ W^1 | W^2 | … | W^L | b^1 | b^2 | … | b^L ]

Block W^l holds n_l·n_{l-1} values in column-major order — the engine keeps (W^l)ᵀ row-major,
the faster operand of the forward pass — so w^l_kj is element `weight_start(l) + k + j·n_l`, and
b^l_k is element `bias_start(l) + k`. This one layout is the network's memory, a snapshot's and
a checkpoint's bytes, the offset a trajectory reads, and what predict and the npz export load.

Names follow the seed with the indices braced, so that they read back unambiguously whatever
the layer widths: w^1_{11,0} is w^1_kj with k = 11, j = 0 (w^1_110 could also be k = 1,
j = 10), and b^2_{3} is b^2_k with k = 3.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import accumulate, pairwise

import numpy as np

_NAME = re.compile(r"w\^(\d+)_\{(\d+),(\d+)\}|b\^(\d+)_\{(\d+)\}")


class Layout:
    """The positions of W^1 … W^L and b^1 … b^L in θ for layer sizes (n_0, …, n_L)."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = tuple(int(n) for n in sizes)
        self.L = len(self.sizes) - 1
        blocks = [n_in * n_out for n_in, n_out in pairwise(self.sizes)]
        self.n_weights = sum(blocks)
        self.size = self.n_weights + sum(self.sizes[1:])  # every weight and bias
        self._weight_starts = list(accumulate(blocks, initial=0))[:-1]
        self._bias_starts = list(accumulate(self.sizes[1:-1], initial=self.n_weights))

    def weight_index(self, l: int, k: int, j: int) -> int:
        """Element of θ holding w^l_kj (l = 1..L, k < n_l, j < n_{l-1}; unchecked)."""
        return self._weight_starts[l - 1] + k + j * self.sizes[l]

    def bias_index(self, l: int, k: int) -> int:
        """Element of θ holding b^l_k (l = 1..L, k < n_l; unchecked)."""
        return self._bias_starts[l - 1] + k

    @property
    def block_starts(self) -> np.ndarray:
        """Where W^1 … W^L and then b^1 … b^L start: `np.add.reduceat`'s segments."""
        return np.array(self._weight_starts + self._bias_starts, dtype=np.intp)

    def transposed_views(self, theta: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Views of θ as the engine uses it: (W^l)ᵀ of shape (n_{l-1}, n_l), C-contiguous, and
        b^l of shape (n_l,), for l = 1..L."""
        weights = zip(self._weight_starts, pairwise(self.sizes), strict=True)
        Wt = [theta[at : at + n_in * n_out].reshape(n_in, n_out) for at, (n_in, n_out) in weights]
        biases = zip(self._bias_starts, self.sizes[1:], strict=True)
        b = [theta[at : at + n] for at, n in biases]
        return Wt, b

    def split(self, theta: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Views of θ in the seed's convention: W^l of shape (n_l, n_{l-1}) with
        W^l[k, j] = w^l_kj, and b^l of shape (n_l,), for l = 1..L."""
        if theta.shape != (self.size,):
            raise ValueError(f"expected {self.size} parameters, got an array of {theta.shape}")
        Wt, b = self.transposed_views(theta)
        return [W.T for W in Wt], b


def parameter_name(l: int, k: int, j: int | None = None) -> str:
    """w^l_{k,j} for a weight, b^l_{k} for a bias (j None)."""
    return f"b^{l}_{{{k}}}" if j is None else f"w^{l}_{{{k},{j}}}"


def parse_parameter_name(name: str) -> tuple[int, int, int | None]:
    """(l, k, j) of `w^l_{k,j}`, or (l, k, None) of `b^l_{k}`; ValueError for anything else."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(
            f"{name!r} is not a parameter name: write w^l_{{k,j}} for a weight (e.g. w^1_{{0,1}}) "
            "or b^l_{k} for a bias (e.g. b^2_{0})"
        )
    wl, wk, wj, bl, bk = match.groups()
    return (int(wl), int(wk), int(wj)) if wl is not None else (int(bl), int(bk), None)
