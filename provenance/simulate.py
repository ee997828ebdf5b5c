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
import numbers

import numpy as np

from lazyrich.core.checks import (
    check_finite,
    check_positive_integer,
    check_seed,
    require_memory,
)
from provenance.correlation import METHODS, check_choice
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
        raise TypeError(f"seed={seed!r} has type {type(seed).__name__}; seed must be an integer "
                        f"in [0, 2**32 - 1] or a numpy Generator")
    return np.random.default_rng(check_seed(seed))


def _check_real(name: str, value, allow_none: bool = False) -> None:
    """TypeError unless value is a real number (or None when allowed), naming the argument."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; {name} must be a "
                        f"real number" + (" or None" if allow_none else ""))


def _real_array(name: str, values) -> np.ndarray:
    """values as float64, or a TypeError naming the argument."""
    try:
        return np.asarray(values, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={values!r:.80} must be a real number or an array of "
                        f"them") from None


def palimpsest_bytes(n: int, models: int = 1, n_draws: int | None = None) -> int:
    """Peak bytes `palimpsest` allocates: the (draws, models, n) log-likelihoods with their noise
    and the (draws, n) order, memorisation, difficulty and reference (measured with tracemalloc).
    """
    return 8 * (n_draws or 1) * n * (2 * models + 7)


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
    for name, value in (("decay", decay), ("noise", noise), ("difficulty", difficulty),
                        ("reference_correlation", reference_correlation)):
        _check_real(name, value, allow_none=name == "decay")
    check_positive_integer("n", n, minimum=3)
    check_positive_integer("n_draws", n_draws, allow_none=True)
    strength = _real_array("strength", strength)
    check_positive_integer("batch_size", batch_size)
    checks = [("batch_size", batch_size, batch_size <= n // 2, "an integer in [1, n // 2]"),
              ("strength", strength.tolist(), strength.ndim <= 1 and np.isfinite(strength).all(),
               "a finite scalar or 1-D array"),
              ("decay", decay, decay is None or 0 < decay < math.inf, "positive or None"),
              ("noise", noise, 0 <= noise < math.inf, "finite and >= 0"),
              ("difficulty", difficulty, 0 <= difficulty < math.inf, "finite and >= 0"),
              ("reference_correlation", reference_correlation,
               -1 <= reference_correlation <= 1, "in [-1, 1]")]
    for name, value, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{name}={value!r} is not allowed; {name} must be {allowed}")
    rng = _rng(seed)
    require_memory(palimpsest_bytes(n, max(1, strength.size), n_draws),
                   f"synthetic log-likelihoods of n_draws={n_draws} x {strength.size} model(s) "
                   f"x n={n} examples", f"lower n_draws= (now {n_draws}) or n= (now {n})")
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

    check_choice("statistic", statistic, STATISTICS)
    check_choice("method", method, METHODS)
    check_positive_integer("n_draws", n_draws)
    _check_real("alpha", alpha)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} is not allowed; alpha must lie in (0, 1)")
    strengths = np.atleast_1d(check_finite("strengths", _real_array("strengths", strengths)))
    sizes = list(np.atleast_1d(np.asarray(sizes, dtype=object)))
    if not sizes or not all(isinstance(size, numbers.Integral) and not isinstance(size, bool)
                            and size >= 3 for size in sizes):
        raise ValueError(f"sizes={sizes!r} is not allowed; sizes must be one or more integers "
                         ">= 3 (examples per training run)")
    sizes = [int(size) for size in sizes]
    test_bytes = 96 if statistic == "kendall" else 16  # ranks / pair counts per value
    require_memory(palimpsest_bytes(max(sizes), len(strengths), n_draws)
                   + test_bytes * n_draws * len(strengths) * max(sizes),
                   f"a power curve of n_draws={n_draws} x {len(strengths)} strengths x "
                   f"n={max(sizes)} examples", f"lower n_draws= (now {n_draws}) or the largest "
                   f"of sizes= (now {max(sizes)})")
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
