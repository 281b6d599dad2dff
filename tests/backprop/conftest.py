from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def uncentred():
    """Issue 16's fixture: 3,000 uncentred uniform [0, 1] inputs of 784 features, random labels
    of 10 classes."""
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (3000, 784)), rng.integers(0, 10, 3000)
