"""Training: :class:`Trainer` (the fit/evaluate loop), its settings checks and its checkpoints.

``trainer``     the loop, evolution between epochs, the run directory, resume
``settings``    checks of the trainer's settings, optimizers, data conversion
``checkpoint``  pickle-free ``checkpoint.pt`` files and the RNG states they carry
``rbm``         :class:`RBMTrainer`, contrastive divergence for a SparseRBM into the same run directory
"""

from .rbm import RBMTrainer
from .trainer import Trainer

__all__ = ["Trainer", "RBMTrainer"]
