"""lazyrich: batched JAX simulations of lazy versus rich training.

    import lazyrich
    ds = lazyrich.sweep("grokking", alpha=[0.5, 1, 2, 4, 8], seed=range(4),
                        steps=20_000, log_every=100, D=100, N=500, P=400)
    ds.test_loss.sel(alpha=4).mean("seed").plot()
"""

__version__ = "0.1.0"

import sys as _sys  # noqa: E402

from lazyrich.core.engine import sweep  # noqa: E402
from lazyrich.core.io import config, load, save  # noqa: E402
from lazyrich.core.labels import open_store as open  # noqa: E402, A004
from lazyrich.experiments import Experiment, Output, Parameter, register  # noqa: E402
from lazyrich.experiments.base import registered  # noqa: E402
from lazyrich.measures import metrics  # noqa: E402
from lazyrich.measures.rank_measures import effective_rank  # noqa: E402
from lazyrich.views import plot  # noqa: E402

# `from lazyrich.metrics import ...` and `from lazyrich.plot import ...` work as the attribute
# names suggest, although the modules live in their layers (measures/, views/).
_sys.modules.setdefault("lazyrich.metrics", metrics)
_sys.modules.setdefault("lazyrich.plot", plot)


def experiments() -> dict[str, dict[str, Parameter]]:
    """Every registered experiment -> its parameters (default, kind, static, doc).

    `lazyrich.get_experiment(name).describe()` prints the same as a table.
    """
    return {name: dict(exp.parameters) for name, exp in registered().items()}


def get_experiment(name: str) -> Experiment:
    """The registered experiment called `name` (ValueError listing the known ones if none)."""
    from lazyrich.experiments.base import get_experiment as lookup
    return lookup(name)


__all__ = ["Experiment", "Output", "Parameter", "config", "effective_rank", "experiments",
           "get_experiment", "load", "metrics", "open", "plot", "register", "save", "sweep"]
