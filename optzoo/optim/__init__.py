"""``torch.optim.Optimizer`` drop-ins, thin adapters over the batched rules of
:mod:`optzoo.optimizers`.

``SGD``, ``Adagrad``, ``RMSprop``, ``Adam``, ``AdamW``, ``Adadelta`` and ``LBFGS`` take
torch.optim's constructor arguments and defaults, match it step for step, and exchange state dicts
with it. ``Momentum``, ``Nesterov``, ``Newton``, ``BFGS`` and ``DFP`` complete the zoo;
``AdaDelta`` is an alias of ``Adadelta``.
"""

from optzoo.optim.first_order import (
    SGD,
    AdaDelta,
    Adadelta,
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
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "LBFGS",
    "Momentum",
    "Nesterov",
    "Newton",
    "RMSprop",
]
