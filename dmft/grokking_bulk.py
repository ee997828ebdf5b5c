"""The residual-weighted Wishart bulk of the grokking model, in closed form (issue 15, S9-S11).

After the linear fit, a training point's own quadratic prediction grows with its direction's
quadratic form under S = exp(s B) (dmft/README.md, S9), where

    B = (1 / P) sum_mu tau_mu x_mu x_mu^T   (x_mu ~ N(0, I_D), P = lam D),
    tau = (1 - 1 / lam) z^2 + sqrt(3 (1 - 1 / lam) / lam) g   (z, g ~ N(0, 1) independent)

is the residual-weighted input covariance in units of b / D, restricted to the directions
orthogonal to beta (the residual w = b z^2 - yhat in units of b, the linear fit's share yhat
modelled as Gaussian noise of the right variance). For a training point x_mu with weight
tau_mu this module gives the deterministic equivalent (D, P -> infinity at fixed lam) of

    h(s, tau_mu) = xhat_mu^T exp(s B) xhat_mu,     xhat = x / |x|,

from two exact identities: leave-one-out (Sherman-Morrison; B = B_-mu + omega xhat xhat^T,
omega = tau_mu / lam) gives xhat^T (zeta - B)^-1 xhat = g / (1 - omega g) with g the Stieltjes
transform of B_-mu, which solves the Marchenko-Pastur-Silverstein equation (S10)

    m(zeta) = 1 / (-zeta + E_tau[tau / (1 + tau m(zeta) / lam)]),   g = -m,

and h is the contour integral (1 / 2 pi i) oint exp(s zeta) g / (1 - omega g) d zeta around the
spectrum (S11), evaluated by the trapezoid rule on an ellipse, which converges exponentially.
The weights are heavy-tailed (tau ~ z^2, up to ~ 2 log P): E_tau is taken over P quantile
atoms of |z| (the 64 largest exactly, the rest in 256 bins) times 5 Gauss-Hermite nodes of g,
so the finite-P tail, which lets single large-|z| points outgrow the bulk, is kept; it is the
only place P (hence D at fixed lam) enters.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri

TAIL_ATOMS = 64          # largest |z| of the P training points, one atom each
BODY_BINS = 256          # the rest of the |z| distribution, in equal-probability-width bins
NOISE_NODES = 5          # Gauss-Hermite nodes for the linear fit's noise g
CONTOUR_POINTS = 256     # trapezoid nodes on the ellipse around the spectrum


def residual_weight_atoms(P_over_D: float, P: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atoms (tau, z^2, probability), each shaped (A,), of the residual weights of P points.

    |z| at exceedance probability u = (k - 1/2) / P for the TAIL_ATOMS largest, then
    BODY_BINS bins of equal width in u over the rest (atom at the bin's middle, mass its
    width); each crossed with NOISE_NODES Gauss-Hermite nodes of g. Probabilities sum to 1.
    """
    lam = float(P_over_D)
    tail = min(TAIL_ATOMS, P)
    u_tail = (np.arange(tail) + 0.5) / P
    mass = [np.full(tail, 1.0 / P)]
    centres = [u_tail]
    if tail < P:
        edges = np.linspace(tail / P, 1.0, min(BODY_BINS, P - tail) + 1)
        centres.append(0.5 * (edges[1:] + edges[:-1]))
        mass.append(np.diff(edges))
    u, mass = np.concatenate(centres), np.concatenate(mass)
    z2 = ndtri(1.0 - 0.5 * u) ** 2
    nodes, node_weights = np.polynomial.hermite_e.hermegauss(NOISE_NODES)
    node_weights = node_weights / node_weights.sum()
    noise = np.sqrt(3.0 * (1.0 - 1.0 / lam) / lam)
    tau = (1.0 - 1.0 / lam) * z2[:, None] + noise * nodes[None, :]
    probability = mass[:, None] * node_weights[None, :]
    return tau.ravel(), np.repeat(z2, NOISE_NODES), probability.ravel()


def _ellipse(low: float, high: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n trapezoid nodes zeta (counter-clockwise) on an ellipse around [low, high], and d zeta."""
    angle = 2.0 * np.pi * (np.arange(n) + 0.5) / n
    centre, half_width = 0.5 * (low + high), 0.5 * (high - low)
    half_height = max(0.6 * half_width, 1.0)
    zeta = centre + half_width * np.cos(angle) + 1j * half_height * np.sin(angle)
    dzeta = (-half_width * np.sin(angle) + 1j * half_height * np.cos(angle)) * (2 * np.pi / n)
    return zeta, dzeta


def stieltjes(zeta: np.ndarray, tau: np.ndarray, probability: np.ndarray, P_over_D: float,
              tol: float = 1e-12, max_iterations: int = 5000) -> np.ndarray:
    """S10: m(zeta) (shape of zeta, complex, off the real axis) of B with weights tau.

    Damped fixed-point iteration of m = 1 / (-zeta + sum_a p_a tau_a / (1 + tau_a m / lam));
    a RuntimeError if it has not converged to `tol` (max change) within max_iterations.
    """
    c = 1.0 / float(P_over_D)
    m = -1.0 / (zeta - 1.0)
    for _ in range(max_iterations):
        new = 1.0 / (-zeta + (probability * tau / (1.0 + c * tau * m[:, None])).sum(axis=1))
        change = np.max(np.abs(new - m))
        m = 0.5 * (m + new)
        if change < tol:
            return m
    raise RuntimeError(f"the Silverstein equation did not converge in {max_iterations} "
                       f"iterations (last change {change:.2e})")


class BulkGrowth:
    """h(s, tau_a) = xhat^T exp(s B) xhat for every weight atom a (S11), at one (lam, P).

    Attributes tau, z2, probability (A,) are the atoms of `residual_weight_atoms`. Calling the
    object with s of shape (K,) returns h of shape (A, K). Construction checks that the
    contour holds the whole spectral measure (h(0) = 1 to 1e-8 for every atom).
    """

    def __init__(self, P_over_D: float, P: int):
        lam = float(P_over_D)
        self.tau, self.z2, self.probability = residual_weight_atoms(lam, P)
        edge = (1.0 + lam ** -0.5) ** 2
        low = min(self.tau.min(), 0.0) * edge - 1.0
        high = self.tau.max() / lam + 2.0 * edge * max(np.sum(self.probability * self.tau), 1.0)
        self.zeta, self.dzeta = _ellipse(low, high + 1.0, CONTOUR_POINTS)
        g = -stieltjes(self.zeta, self.tau, self.probability, lam)
        omega = self.tau / lam
        self._resolvent = g[None, :] / (1.0 - omega[:, None] * g[None, :])   # (A, n)
        mass = self(np.zeros(1))[:, 0]
        if np.max(np.abs(mass - 1.0)) > 1e-8:
            raise RuntimeError(f"the contour misses part of the spectrum (mass "
                               f"{mass.min():.6f} .. {mass.max():.6f}, not 1)")

    def __call__(self, s: np.ndarray) -> np.ndarray:
        weights = np.exp(np.asarray(s, float)[None, :] * self.zeta[:, None]) * self.dzeta[:, None]
        return (self._resolvent @ weights).imag / (2.0 * np.pi)
