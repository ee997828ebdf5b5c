"""Synthetic palimpsest data for the query-setting test, and power curves from it.

A toy version of the generative story in Kuditipudi et al. (2025): Alice shuffles n examples
into batches of `batch_size` (examples of one batch share a training step, so `order` has ties)
and trains in that order; a model derived from hers assigns example i the log-likelihood

    loglik_i = difficulty * d_i + memorisation(t_i) + noise * e_i,
    memorisation(t) = strength * exp(-(1 - t) / decay)   (or strength * t if decay is None),

where t_i in [0, 1] is the fraction of training elapsed when example i was seen (the last
batch has t = 1), d_i ~ N(0, 1) is the per-example difficulty every model shares and e_i ~
N(0, 1) is model-specific noise. A reference model that never saw Alice's order scores
reference_i = difficulty * (rho d_i + sqrt(1 - rho^2) f_i), f_i ~ N(0, 1), so loglik - reference
removes the shared difficulty in proportion to `reference_correlation` rho. At strength 0 the
scores are independent of the order: the null of the test. Units: log-likelihoods in nats.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from provenance.kendall_tau import kendall
from provenance.query import STATISTICS
from provenance.stats import pearson, spearman


@dataclasses.dataclass(frozen=True)
class Palimpsest:
    """loglik (*draws, *models, n); order and reference (*draws, n)."""

    loglik: np.ndarray
    order: np.ndarray
    reference: np.ndarray


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def palimpsest(n: int, strength, *, n_draws: int | None = None, batch_size: int = 1,
               decay: float | None = 0.25, noise: float = 1.0, difficulty: float = 1.0,
               reference_correlation: float = 0.0, seed=0) -> Palimpsest:
    """Draw synthetic per-example log-likelihoods with palimpsestic memorisation.

    Args:
        n: number of training examples (>= 3).
        strength: memorisation of the last batch in nats; a scalar or a 1-D array of several
            suspect models that share one training run (their noise is independent).
        n_draws: if given, that many independent training runs are stacked in front.
        batch_size: examples per training step (ties in `order`).
        decay: memorisation falls by e over this fraction of training back from its end;
            None gives a linear trend strength * t.
        noise, difficulty: standard deviations (nats) of model noise and shared difficulty.
        reference_correlation: correlation rho of the reference model's difficulty estimate.
        seed: int or numpy Generator.
    Returns:
        Palimpsest with loglik (*draws, *models, n), order (*draws, n) (training step of each
        example, 0 = first) and reference (*draws, n).
    """
    strength = np.asarray(strength, np.float64)
    checks = [("n", n, isinstance(n, int | np.integer) and n >= 3, "an integer >= 3"),
              ("batch_size", batch_size,
               isinstance(batch_size, int | np.integer) and 1 <= batch_size <= n // 2,
               "an integer in [1, n // 2]"),
              ("strength", strength.tolist(), strength.ndim <= 1 and np.isfinite(strength).all(),
               "a finite scalar or 1-D array"),
              ("decay", decay, decay is None or decay > 0, "positive or None"),
              ("noise", noise, noise >= 0, ">= 0"), ("difficulty", difficulty, difficulty >= 0,
                                                     ">= 0"),
              ("reference_correlation", reference_correlation,
               -1 <= reference_correlation <= 1, "in [-1, 1]"),
              ("n_draws", n_draws, n_draws is None or (isinstance(n_draws, int | np.integer)
                                                       and n_draws >= 1), "None or >= 1")]
    for name, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{name}={value!r} is not allowed; {name} must be {allowed}")
    rng = _rng(seed)
    draws = () if n_draws is None else (int(n_draws),)
    steps = math.ceil(n / batch_size)
    order = (rng.permuted(np.broadcast_to(np.arange(n), (*draws, n)), axis=-1)
             // batch_size).astype(np.float64)
    elapsed = order / (steps - 1)
    memorisation = elapsed if decay is None else np.exp(-(1.0 - elapsed) / decay)
    shared = rng.standard_normal((*draws, n))
    rho = reference_correlation
    reference = difficulty * (rho * shared + math.sqrt(1 - rho * rho)
                              * rng.standard_normal((*draws, n)))
    models = strength.shape
    expand = (Ellipsis, *([None] * len(models)), slice(None))
    loglik = (difficulty * shared[expand] + strength[..., None] * memorisation[expand]
              + noise * rng.standard_normal((*draws, *models, n)))
    return Palimpsest(loglik, order, reference)


def power_curve(strengths, sizes, *, n_draws: int = 100, alpha: float = 0.05,
                statistic: str = "spearman", method: str = "asymptotic",
                use_reference: bool = False, seed=0, **palimpsest_options):
    """p-values of the query test on synthetic data, against memorisation strength and n.

    For each n in `sizes`, n_draws independent training runs are drawn; all strengths share
    each run (common random numbers, so curves are smooth in strength). Memory: n_draws x
    len(strengths) x n float64 per size.

    Returns:
        xarray.Dataset with log10_pvalue (n, strength, draw), power = P(p < alpha) and
        median_log10_pvalue (n, strength); attrs record the options.
    """
    import xarray as xr

    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r} is not allowed; statistic must be one of "
                         f"{STATISTICS}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must lie in (0, 1)")
    strengths = np.atleast_1d(np.asarray(strengths, np.float64))
    sizes = [int(size) for size in np.atleast_1d(sizes)]
    if not sizes or min(sizes) < 3:
        raise ValueError(f"sizes={sizes!r} is not allowed; sizes must be one or more integers "
                         ">= 3 (examples per training run)")
    rng = _rng(seed)
    test = {"spearman": spearman, "kendall": kendall, "pearson": pearson}[statistic]
    options = {} if statistic == "pearson" else {"method": method}
    log10_p = np.empty((len(sizes), len(strengths), n_draws))
    for index, size in enumerate(sizes):
        data = palimpsest(size, strengths, n_draws=n_draws, seed=rng, **palimpsest_options)
        score = data.loglik - data.reference[:, None, :] if use_reference else data.loglik
        log10_p[index] = test(data.order[:, None, :], score, **options).log10_pvalue.T
    ds = xr.Dataset({"log10_pvalue": (("n", "strength", "draw"), log10_p)},
                    coords={"n": sizes, "strength": strengths, "draw": np.arange(n_draws)},
                    attrs={"statistic": statistic, "method": method, "alpha": alpha,
                           "use_reference": int(use_reference),
                           **{k: ("None" if v is None else v)
                              for k, v in palimpsest_options.items()}})
    ds["power"] = (ds.log10_pvalue < math.log10(alpha)).mean("draw")
    ds["median_log10_pvalue"] = ds.log10_pvalue.median("draw")
    return ds
