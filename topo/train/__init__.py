"""Training: :class:`Trainer` (the fit/evaluate loop), its strategies, settings checks and checkpoints.

``trainer``     the loop, evolution between epochs
``run_files``   the trainer's run directory: checkpoints, resume, ``config.json``
``strategy``    how the steps run: in one process or data parallel over a process group
``settings``    checks of the trainer's settings, optimizers, data conversion
``checkpoint``  pickle-free ``checkpoint.pt`` files and the RNG states they carry
``rbm``         :class:`RBMTrainer`, contrastive divergence for a SparseRBM into the same run directory
``sgdw``        :class:`SGDW`, SGD with SET's decoupled weight decay
"""

from .rbm import RBMTrainer
from .settings import NonFiniteLossError
from .sgdw import SGDW
from .strategy import DataParallelStrategy, LocalStrategy, strategy_for
from .trainer import Trainer

__all__ = ["Trainer", "RBMTrainer", "NonFiniteLossError", "SGDW", "LocalStrategy", "DataParallelStrategy",
           "strategy_for"]
