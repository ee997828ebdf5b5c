"""Mean-field (DMFT) and kernel theory of lazy and rich training, compared with lazyrich sweeps.

`ConvergenceWarning` is what a fixed-point solver warns when it stops at its iteration cap.
"""

from dmft import mean_field
from dmft.fixed_point import ConvergenceWarning

__all__ = ["ConvergenceWarning", "mean_field"]
