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


def fisher_combination(pvalues, axis: int = -1) -> np.ndarray:
    """Fisher's method: combined p of independent p-values, -2 sum log p ~ chi^2(2k)."""
    p = np.asarray(pvalues, np.float64)
    if np.any((p <= 0) | (p > 1)):
        raise ValueError("pvalues must lie in (0, 1]")
    statistic = -2.0 * np.sum(np.log(p), axis=axis)
    return stats.chi2.sf(statistic, 2 * p.shape[axis])


def stouffer_combination(pvalues, axis: int = -1) -> np.ndarray:
    """Stouffer's method: combined p of independent one-sided p-values, sum z / sqrt(k)."""
    p = np.asarray(pvalues, np.float64)
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("pvalues must lie in (0, 1) for Stouffer's method")
    z = special.ndtri(1.0 - p)
    return stats.norm.sf(np.sum(z, axis=axis) / math.sqrt(p.shape[axis]))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control), same shape as input."""
    p = np.asarray(pvalues, np.float64).ravel()
    if np.any((p < 0) | (p > 1)):
        raise ValueError("pvalues must lie in [0, 1]")
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
