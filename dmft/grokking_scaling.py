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
  t = [log(2 D b / (alpha eps overlap)) - log(1 + sqrt 2)] / rate;
- train_half_time (S12-S13): first time the train loss is half its initial value, from the
  bulk of the residual-weighted covariance fitting the training points one by one
  (`dmft.grokking_bulk`, S9-S11), and delay = grokking_time - train_half_time (S14).

Valid in the grokking regime: the spike outgrows the bulk of the residual-weighted covariance
(P / D large enough: within 10% of the N -> infinity simulation at P / D = 8, eps = 0.02 for
every alpha in 2^-3 .. 2^3 at D = 100 and 200, 6-24% early at eps = 0.1, 13-52% early at
P / D = 5; dmft/README.md S8 gives the table and why) and alpha / eps is large enough that the
linear fit (t ~ D) finishes before the spike grows (t ~ alpha D / eps). The train half time
(S13) is within 10% at P / D >= 5, eps = 0.02 and for most alphas at eps 0.05 / 0.1; it breaks
where alpha / eps ~ 1 and at alpha eps >~ 0.2 (up to 19% early), and is NaN for P / D <= 2
(the linear fit alone halves the train loss). The delay inherits S7's error. Inputs
broadcast against each other (numpy arrays).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from dmft.grokking_bulk import BulkGrowth

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


def _train_loss(growth: BulkGrowth, s: np.ndarray, amplitude: np.ndarray, D: float,
                spike_x: float, spike_overlap: float) -> np.ndarray:
    """S12-S13: train loss (units b^2) at rescaled times s (K,) for amplitudes alpha eps / 2b (K,).

    Each training point's prediction grows as amplitude (h(s, tau) - 1 + (z^2 / D) overlap
    (e^{s x} - 1)) and stops when it reaches the point's residual (negative residuals are not
    fitted); the loss is the probability-weighted mean of the squared remaining residuals.
    """
    h = growth(s)                                                    # (A, K)
    spike = growth.z2[:, None] / D * spike_overlap * np.expm1(s * spike_x)[None, :]
    prediction = amplitude[None, :] * (h - 1.0 + spike)
    fitted = np.minimum(prediction, np.maximum(growth.tau, 0.0)[:, None])
    return growth.probability @ (growth.tau[:, None] - fitted) ** 2


def train_half_time(alpha, eps, P_over_D, D, b=1.0) -> np.ndarray:
    """S9-S13: time (step x lr_scale) at which the train loss is half its initial value.

    The residual-weighted covariance is frozen at its value after the linear fit; each
    training point's quadratic prediction is (alpha eps / 2)(xhat^T e^{s B} xhat - 1) b plus
    the spike's share, s = 4 eps b t / (alpha D) (`dmft.grokking_bulk` evaluates the bulk part
    in closed form at P = round(P_over_D D) points), and is capped at the point's residual.
    t = s* / rate where the train loss at s* is half of E y^2 = 3 b^2. NaN where
    P_over_D <= 2: there the linear fit alone leaves 3 b^2 (1 - D / P) <= 3 b^2 / 2, so the
    train loss halves during the linear fit (t ~ D), which S13 takes as instantaneous.
    Shapes: alpha, eps, P_over_D, D, b broadcast; the result has their broadcast shape.
    """
    alpha, eps = _positive("alpha", alpha), _positive("eps", eps)
    lam, D, b = _positive("P_over_D", P_over_D, 1.0), _positive("D", D), _positive("b", b)
    alpha, eps, lam, D, b = np.broadcast_arrays(alpha, eps, lam, D, b)
    amplitude = (alpha * eps / (2.0 * b)).ravel()
    s_half = np.full(amplitude.shape, np.nan)
    points = np.rint(lam * D).astype(int).ravel()
    for lam_value, P in sorted(set(zip(lam.ravel().tolist(), points.tolist(), strict=True))):
        if lam_value <= 2.0:
            continue
        rows = np.nonzero((lam.ravel() == lam_value) & (points == P))[0]
        growth = BulkGrowth(lam_value, int(P))
        x, overlap = spike_outlier(lam_value)
        initial = float(growth.probability @ growth.z2**2)
        for D_value in np.unique(D.ravel()[rows]):
            group = rows[D.ravel()[rows] == D_value]
            loss = functools.partial(_train_loss, growth, amplitude=amplitude[group],
                                     D=float(D_value), spike_x=float(x),
                                     spike_overlap=float(overlap))
            s_half[group] = _bisect_half(loss, 0.5 * initial, len(group))
    return (s_half / (4.0 * eps * b / (alpha * D)).ravel()).reshape(alpha.shape)


def _bisect_half(loss, level: float, n: int, iterations: int = 50) -> np.ndarray:
    """Per cell, the s > 0 where the decreasing loss(s) (K,) crosses `level` (bisection)."""
    low, high = np.zeros(n), np.ones(n)
    for _ in range(12):
        above = loss(high) > level
        if not above.any():
            break
        low, high = np.where(above, high, low), np.where(above, 2.0 * high, high)
    else:
        raise RuntimeError("the train loss did not halve within s = 4096 e-folds")
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        above = loss(middle) > level
        low, high = np.where(above, middle, low), np.where(above, high, middle)
    return high


def delay(alpha, eps, P_over_D, D, b=1.0) -> np.ndarray:
    """S14: train-to-test delay, grokking_time - train_half_time (same units and shapes)."""
    return grokking_time(alpha, eps, P_over_D, D, b) - train_half_time(alpha, eps, P_over_D, D, b)
