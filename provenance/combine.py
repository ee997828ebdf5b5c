"""Combining p-values: Fisher and Stouffer across independent tests, Holm across several models.

Kuditipudi et al. (2025) test one suspect model on disjoint subsets of the training data (the
subsets' p-values are independent under the null, so they combine) and many suspect models at
once (a family of tests, so the smallest p-value needs a multiplicity correction).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

COMBINATIONS = ("fisher", "stouffer")


def _pvalues(pvalues, low_open: bool, high_open: bool, method: str) -> np.ndarray:
    """pvalues as float64, refused (naming the first offending value) outside the allowed range."""
    try:
        p = np.asarray(pvalues, np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"pvalues must be numbers, got {pvalues!r:.80}") from None
    if p.size == 0:
        raise ValueError(f"pvalues is empty; {method} needs at least one p-value")
    bad = np.isnan(p) | ((p <= 0) if low_open else (p < 0)) | ((p >= 1) if high_open else (p > 1))
    if np.any(bad):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"pvalues must lie in {interval} for {method}; found "
                         f"{p[bad].ravel()[0]!r} ({int(bad.sum())} value(s) outside)")
    return p


def fisher_combination(pvalues, axis: int = -1) -> np.ndarray:
    """Fisher's method: combined p of independent p-values, -2 sum log p ~ chi^2(2k)."""
    p = _pvalues(pvalues, low_open=True, high_open=False, method="Fisher's method")
    statistic = -2.0 * np.sum(np.log(p), axis=axis)
    return stats.chi2.sf(statistic, 2 * p.shape[axis])


def stouffer_combination(pvalues, axis: int = -1) -> np.ndarray:
    """Stouffer's method: combined p of independent one-sided p-values, sum z / sqrt(k)."""
    p = _pvalues(pvalues, low_open=True, high_open=True, method="Stouffer's method")
    z = special.ndtri(1.0 - p)
    return stats.norm.sf(np.sum(z, axis=axis) / math.sqrt(p.shape[axis]))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), same shape as input."""
    p = _pvalues(pvalues, low_open=False, high_open=False, method="Holm's correction").ravel()
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out.reshape(np.shape(pvalues))


def combine_pvalues(pvalues, method: str = "fisher", axis: int = -1) -> np.ndarray:
    """Combined p-value of independent p-values along `axis` by `method` ("fisher" | "stouffer")."""
    if method not in COMBINATIONS:
        raise ValueError(f"method={method!r} is not allowed; method must be one of {COMBINATIONS}")
    combination = fisher_combination if method == "fisher" else stouffer_combination
    return combination(pvalues, axis=axis)
