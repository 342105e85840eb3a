"""pot-semiunbalanced: semi-unbalanced entropic optimal transport for POT.

The solver follows POT's conventions (``f`` returns the plan, ``f2`` the loss) and runs
on any POT backend (numpy, torch CPU/CUDA, ...).
"""
import os as _os

# POT imports GeomLoss when installed, which imports pykeops, which prints a CUDA warning
# at import on machines without a GPU; keep imports quiet unless the user asked otherwise.
_os.environ.setdefault("KEOPS_VERBOSE", "0")

from .engine import IterationInfo  # noqa: E402
from .pointcloud import SamplesLoss, sinkhorn_semi_unbalanced2_samples  # noqa: E402
from .sinkhorn import sinkhorn_semi_unbalanced, sinkhorn_semi_unbalanced2  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "sinkhorn_semi_unbalanced",
    "sinkhorn_semi_unbalanced2",
    "sinkhorn_semi_unbalanced2_samples",
    "SamplesLoss",
    "IterationInfo",
]
