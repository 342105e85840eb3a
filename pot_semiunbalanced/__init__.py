"""pot-semiunbalanced: semi-unbalanced entropic optimal transport for POT.

The solver follows POT's conventions (``f`` returns the plan, ``f2`` the loss) and runs
on any POT backend (numpy, torch CPU/CUDA, ...).
"""
from .engine import IterationInfo
from .pointcloud import SamplesLoss, sinkhorn_semi_unbalanced2_samples
from .sinkhorn import sinkhorn_semi_unbalanced, sinkhorn_semi_unbalanced2

__version__ = "0.1.0"

__all__ = [
    "sinkhorn_semi_unbalanced",
    "sinkhorn_semi_unbalanced2",
    "sinkhorn_semi_unbalanced2_samples",
    "SamplesLoss",
    "IterationInfo",
]
