"""Closed-form theory of the grokking delay of the N -> infinity grokking model (issue 15).

Implements equations S1-S8 of `dmft/README.md` ("Closed form of the plateau and the grokking
time"): gradient flow on the exact N -> infinity (u, Q) dynamics, in time t = step x lr_scale,
with target y = b z^2 (z = beta_hat . x, b = |beta|^2 / D), P = lam D training points.

- plateau_test_loss (S2): the test loss once the linear part u has made its least-squares fit
  and before the features move, 3 b^2 lam / (lam - 1) (large D, lam > 1);
- spike_rate (S3-S6): the growth rate of the quadratic form along beta, 4 eps b x / (alpha D),
  with x the outlier of the residual-weighted input covariance (a root of a quadratic), and the
  squared overlap of its eigenvector with beta_hat;
- grokking_time (S7): first time the population test loss is half its plateau,
  t = [log(2 D b / (alpha eps overlap)) - log(1 + sqrt 2)] / rate.

Valid in the grokking regime: the spike outgrows the bulk of the residual-weighted covariance
(P / D large enough: within 10% of the N -> infinity simulation at P / D = 8, eps = 0.02 for
every alpha in 2^-3 .. 2^3 at D = 100 and 200, 6-24% early at eps = 0.1, 13-52% early at
P / D = 5; dmft/README.md S8 gives the table and why) and alpha / eps is large enough that the
linear fit (t ~ D) finishes before the spike grows (t ~ alpha D / eps). Inputs broadcast
against each other (numpy arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# E[z^4] and E[z^6] of a standard normal: the spike's own curvature and its coupling to the bulk
Z4, Z6 = 3.0, 15.0
# log of the logistic's remaining factor at the half-loss point, q / b = 1 - 1 / sqrt(2) (S7)
HALF_LOSS_OFFSET = float(np.log(1.0 + np.sqrt(2.0)))


def _positive(name: str, value: Any, minimum: float = 0.0) -> np.ndarray:
    """`value` as a float array, every entry finite and > minimum, else a ValueError naming it."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}={value!r} is not a number or an array of numbers") from None
    if array.size == 0 or not np.all(np.isfinite(array)) or np.any(array <= minimum):
        raise ValueError(f"{name}={value!r}: every value must be a finite number > {minimum:g}")
    return array


def plateau_test_loss(P_over_D, b=1.0) -> np.ndarray:
    """S2: test loss of the least-squares linear fit, 3 b^2 lam / (lam - 1) (lam = P / D > 1).

    The target b z^2 is even in x, so the linear part fits only noise: E y^2 = 3 b^2 plus the
    variance E |u|^2 / D = 3 b^2 / (lam - 1) of a ridgeless fit of P = lam D points.
    """
    lam = _positive("P_over_D", P_over_D, 1.0)
    b = _positive("b", b)
    return Z4 * b**2 * lam / (lam - 1.0)


def spike_outlier(P_over_D) -> tuple[np.ndarray, np.ndarray]:
    """S4-S6: outlier x (in units of b / D) of A = -G and its squared overlap with beta_hat.

    After the linear fit, A = (1 / P) sum_mu w_mu x_mu x_mu^T / D with w = b z^2 - yhat. Its
    beta_hat beta_hat entry is a = 3 (1 - 1 / lam) b / D, the bulk is centred at b / D, and the
    coupling vector has |c|^2 = E[z^6] b^2 / (lam D^2). The outlier solves
    x = a' + (15 / lam) / (x - 1) (a' = 3 (1 - 1 / lam)), and the top eigenvector's squared
    overlap with beta_hat is 1 / (1 + (15 / lam) / (x - 1)^2).
    """
    lam = _positive("P_over_D", P_over_D, 1.0)
    quadratic_form = Z4 * (1.0 - 1.0 / lam)
    coupling = Z6 / lam
    x = 0.5 * (quadratic_form + 1.0 + np.sqrt((quadratic_form - 1.0) ** 2 + 4.0 * coupling))
    overlap = 1.0 / (1.0 + coupling / (x - 1.0) ** 2)
    return x, overlap


def spike_rate(alpha, eps, P_over_D, D, b=1.0) -> np.ndarray:
    """S3: e-folding rate 4 eps b x / (alpha D) of beta_hat^T S beta_hat (per unit of time)."""
    alpha, eps = _positive("alpha", alpha), _positive("eps", eps)
    D, b = _positive("D", D), _positive("b", b)
    x, _ = spike_outlier(P_over_D)
    return 4.0 * eps * b * x / (alpha * D)


def grokking_time(alpha, eps, P_over_D, D, b=1.0) -> np.ndarray:
    """S7: time (step x lr_scale) at which the test loss is half its plateau.

    t = [log(2 D b / (alpha eps overlap)) - log(1 + sqrt 2)] / rate, rate from `spike_rate`.
    Shapes: alpha, eps, P_over_D, D, b broadcast; the result has their broadcast shape.
    """
    alpha, eps = _positive("alpha", alpha), _positive("eps", eps)
    D, b = _positive("D", D), _positive("b", b)
    _, overlap = spike_outlier(P_over_D)
    rate = spike_rate(alpha, eps, P_over_D, D, b)
    amplification = np.log(2.0 * D * b / (alpha * eps * overlap))
    if np.any(amplification <= HALF_LOSS_OFFSET):
        raise ValueError("alpha * eps is too large for the grokking regime: the spike needs "
                         "2 D b / (alpha eps) >> 1 (got alpha=" + repr(alpha) + ", eps="
                         + repr(eps) + ")")
    return (amplification - HALF_LOSS_OFFSET) / rate
