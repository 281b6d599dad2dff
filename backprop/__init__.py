"""deltaflow's training engine: backpropagation in plain numpy, as in the seed's equations.

Pure: numpy and pydantic only — no I/O, no logging, no database. Randomness comes from the
spec's seed through one explicit `numpy.random.Generator`.
"""

from backprop.network import Network
from backprop.results import Diverged, EpochResult
from backprop.spec import TrainSpec
from backprop.train import Trainer

__all__ = ["Diverged", "EpochResult", "Network", "TrainSpec", "Trainer"]
