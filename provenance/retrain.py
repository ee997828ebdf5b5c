"""Reshuffled-retraining provenance tests (observational setting, Kuditipudi et al. 2025).

Reshuffled retraining. Alice reruns the last phase of training on K reshuffles (models 1..K;
her real model is 0); T_k = total log-likelihood of Bob's text under model k. Two p-values:
  * rank: p = (1 + #{k >= 1: T_k >= T_0}) / (K + 1). Assumption: under H0 (Bob's text independent
    of Alice's real shuffle) T_0..T_K are exchangeable. Exact, but never below 1/(K + 1).
  * z-score (the paper's finer-grained statistic): z = (T_0 - mean_k T_k) / sd_k T_k. Assumption:
    T_0..T_K are i.i.d. normal under H0. Then z / sqrt(1 + 1/K) follows Student t with K - 1
    degrees of freedom exactly (`distribution="t"`, default); the paper refers z to N(0, 1)
    (`distribution="normal"`), which is anti-conservative for small K.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import special, stats

from provenance.correlation import ALTERNATIVES, check_choice


@dataclasses.dataclass(frozen=True)
class RetrainResult:
    """A reshuffled-retraining test: statistic, p-value, the copies used and the assumption."""
    statistic: float
    pvalue: float
    log10_pvalue: float
    n_copies: int
    method: str
    alternative: str
    assumption: str

    def __str__(self) -> str:
        return (f"reshuffled retraining ({self.method}): statistic = {self.statistic:.6g}, p = "
                f"{self.pvalue:.3g} (log10 p = {self.log10_pvalue:.2f}), K = {self.n_copies}, "
                f"alternative = {self.alternative}; assumes {self.assumption}")


def _totals(alice_loglik, copies_loglik, minimum_copies: int) -> tuple[float, np.ndarray]:
    """T_0 and T_1..T_K: total log-likelihood of Bob's text under each model."""
    alice, copies = np.asarray(alice_loglik, np.float64), np.asarray(copies_loglik, np.float64)
    if copies.ndim < 1 or copies.shape[1:] != alice.shape or len(copies) < minimum_copies:
        raise ValueError(f"copies_loglik must have shape (K, *alice_loglik.shape) with K >= "
                         f"{minimum_copies}; got {copies.shape} against alice_loglik {alice.shape}")
    if not (np.all(np.isfinite(alice)) and np.all(np.isfinite(copies))):
        raise ValueError("alice_loglik and copies_loglik must be finite (found NaN or inf)")
    return float(alice.sum()), copies.reshape(len(copies), -1).sum(axis=1)


def _log_t_sf(x: float, dof: int) -> float:
    """log P(T > x) for Student t; past scipy's underflow, the tail c x^-dof (error O(1/x^2))."""
    if math.isfinite(direct := float(stats.t.logsf(x, dof))):
        return direct
    return (special.gammaln((dof + 1) / 2) - special.gammaln(dof / 2) - 0.5 * math.log(math.pi)
            + (dof / 2 - 1) * math.log(dof) - dof * math.log(x))


def reshuffled_rank_test(alice_loglik, copies_loglik, *,
                         alternative: str = "greater") -> RetrainResult:
    """Exact rank p-value of Alice's real model among it and K reshuffled-retrain copies.

    Args:
        alice_loglik: log-likelihoods (nats) of Bob's text under Alice's real model, any shape
            (scalar, (n_texts,), (n_texts, n_tokens)); they are summed.
        copies_loglik: (K, *alice_loglik.shape), the same under the K reshuffled copies.
    statistic = 1 + #{k: T_k >= T_0} (Alice's rank from the top, ties against her), p =
    statistic / (K + 1) for "greater"; "less" mirrors it; "two-sided" doubles the smaller.
    """
    check_choice("alternative", alternative, ALTERNATIVES)
    alice, copies = _totals(alice_loglik, copies_loglik, 1)
    k = len(copies)
    rank_greater = 1 + int(np.sum(copies >= alice))
    rank_less = 1 + int(np.sum(copies <= alice))
    rank = {"greater": rank_greater, "less": rank_less,
            "two-sided": min(rank_greater, rank_less)}[alternative]
    p = min(1.0, rank / (k + 1) * (2 if alternative == "two-sided" else 1))
    return RetrainResult(float(rank), p, math.log10(p), k, "rank", alternative,
                         "T_0..T_K exchangeable under H0 (exact; p >= 1/(K+1))")


def reshuffled_z_test(alice_loglik, copies_loglik, *, distribution: str = "t",
                      alternative: str = "greater") -> RetrainResult:
    """The paper's z-score of Alice's real model against K >= 2 reshuffled-retrain copies.

    z = (T_0 - mean(T_1..T_K)) / sd(T_1..T_K) (sd with K - 1 in the denominator). With
    distribution="t", z / sqrt(1 + 1/K) is referred to Student t(K - 1), exact if T_0..T_K are
    i.i.d. normal; "normal" refers z to N(0, 1) as the paper does (valid as K grows).
    """
    check_choice("alternative", alternative, ALTERNATIVES)
    check_choice("distribution", distribution, ("t", "normal"))
    alice, copies = _totals(alice_loglik, copies_loglik, 2)
    k = len(copies)
    spread = float(np.std(copies, ddof=1))
    if spread == 0.0:
        raise ValueError("the K copies give identical total log-likelihoods; the z-score is "
                         "undefined (use reshuffled_rank_test)")
    z = (alice - float(np.mean(copies))) / spread
    if distribution == "t":
        pivot, log_sf = z / math.sqrt(1.0 + 1.0 / k), lambda x: _log_t_sf(x, k - 1)  # noqa: E731
        assumption = "T_0..T_K i.i.d. normal under H0 (Student t, K - 1 dof)"
    else:
        pivot, log_sf = z, lambda x: float(stats.norm.logsf(x))  # noqa: E731
        assumption = "z ~ N(0, 1) under H0 (normal T_k, K large)"
    log_p = {"greater": log_sf(pivot), "less": log_sf(-pivot),
             "two-sided": min(0.0, math.log(2.0) + log_sf(abs(pivot)))}[alternative]
    return RetrainResult(z, math.exp(log_p), log_p / math.log(10.0), k,
                         f"z-score ({distribution})", alternative, assumption)
