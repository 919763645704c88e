"""``torch.optim.Optimizer`` drop-ins, thin adapters over the batched rules of
:mod:`optzoo.optimizers`.

``SGD``, ``Adagrad``, ``RMSprop``, ``Adam``, ``AdamW`` and ``LBFGS`` take torch.optim's
constructor arguments and defaults and match it step for step. ``Momentum``, ``Nesterov``,
``AdaDelta``, ``Newton``, ``BFGS`` and ``DFP`` complete the zoo.
"""

from optzoo.optim.first_order import (
    SGD,
    AdaDelta,
    Adagrad,
    Adam,
    AdamW,
    Momentum,
    Nesterov,
    RMSprop,
)
from optzoo.optim.quasi_newton import BFGS, DFP
from optzoo.optim.second_order import LBFGS, Newton

__all__ = [
    "BFGS",
    "DFP",
    "SGD",
    "AdaDelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "LBFGS",
    "Momentum",
    "Nesterov",
    "Newton",
    "RMSprop",
]
