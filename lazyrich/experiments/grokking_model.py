"""The two-layer network of the grokking experiment and its exact quadratic reduction.

Kumar, Bordelon, Gershman, Pehlevan (2023), Sec. 2 / Fig. 1-3 (paper page `grokking.md`, Sec. 1,
2, 2b). Pre-activations h_i = w_i . x / sqrt(D), activation phi(z) = z + (eps/2) z^2, output

    f(x) = alpha / N sum_i a_i phi(h_i)        (a_i = 1 unless readouts are trained),

trained on the centred output f - f_0 with loss L = mean_mu (f - f_0 - y)^2 / alpha^2 and
learning rate eta = lr_scale * N.

Because phi is quadratic, f - f_0 = v . x / sqrt(D) + x^T M x / D exactly, with
(including the output scale alpha)

    v = alpha mean_i (a_i w_i - a_i0 w_i0),
    M = alpha (eps/2) mean_i (a_i w_i w_i^T - a_i0 w_i0 w_i0^T).

With fixed readouts every neuron follows the same linear update w_i <- A w_i - k b
(k = 2 lr_scale / alpha, A = I - k eps G, b = X^T Delta / (P sqrt D),
G = X^T diag(Delta) X / (P D), Delta the train residuals), so the neuron population's moments
m = mean_i w_i, S = mean_i w_i w_i^T and C = mean_i w_i w_i0^T evolve in closed form
(`moments_step`): an exact O(P D^2 + D^3) step independent of the width N. The moments are
stored as deviations from their initial values (dm, dS, dC), which keeps float32 accurate.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def network_output(net: dict, x: jax.Array, alpha, eps) -> jax.Array:
    """f(x) for inputs x (..., D); net holds `W` (N, D) and optionally readouts `a` (N,)."""
    weights = net["W"]
    n_hidden, dim = weights.shape
    h = x @ weights.T / jnp.sqrt(dim)
    phi = h + 0.5 * eps * h**2
    if "a" in net:
        return alpha * (phi @ net["a"]) / n_hidden
    return alpha * jnp.mean(phi, axis=-1)


def network_function_coefficients(net: dict, net0: dict, alpha, eps) -> tuple[jax.Array, jax.Array]:
    """(v, M) with f(x) - f_0(x) = v . x / sqrt(D) + x^T M x / D exactly (alpha included).

    Returns:
        v: (D,), M: (D, D) symmetric. Cost O(N D^2).
    """
    weights0 = net0["W"]
    n_hidden = weights0.shape[0]
    a = net.get("a", jnp.ones(n_hidden, weights0.dtype))
    a0 = net0.get("a", jnp.ones(n_hidden, weights0.dtype))
    # Expand in the deviations dW, da so that small changes are not lost to cancellation.
    d_weights, d_a = net["W"] - weights0, a - a0
    v = alpha * (a @ d_weights + d_a @ weights0) / n_hidden
    half = (d_weights.T * a) @ weights0
    second = half + half.T + (d_weights.T * a) @ d_weights + (weights0.T * d_a) @ weights0
    return v, alpha * 0.5 * eps * second / n_hidden


def network_ntk(net: dict, x1: jax.Array, x2: jax.Array, alpha, eps) -> jax.Array:
    """Empirical neural tangent kernel K(x1, x2) = sum_theta df(x1)/dtheta df(x2)/dtheta.

    Closed form for this model: (alpha/N)^2 [sum_i a_i^2 phi'(h_i) phi'(h_i') x.x'/D
    (+ sum_i phi(h_i) phi(h_i') when readouts are trained)].

    Args:
        x1: (P1, D), x2: (P2, D). Returns: (P1, P2). Cost O(P1 P2 (N + D)).
    """
    weights = net["W"]
    n_hidden, dim = weights.shape
    h1, h2 = x1 @ weights.T / jnp.sqrt(dim), x2 @ weights.T / jnp.sqrt(dim)
    a = net.get("a", jnp.ones(n_hidden, weights.dtype))
    slope1, slope2 = a * (1.0 + eps * h1), a * (1.0 + eps * h2)
    kernel = (slope1 @ slope2.T) * (x1 @ x2.T / dim)
    if "a" in net:
        kernel = kernel + (h1 + 0.5 * eps * h1**2) @ (h2 + 0.5 * eps * h2**2).T
    return (alpha / n_hidden) ** 2 * kernel


def moments_centred_output(deviation: dict, x: jax.Array, alpha, eps) -> jax.Array:
    """f(x) - f_0(x) = alpha (dm . x / sqrt(D) + (eps/2) x^T dS x / D) for x (..., D).

    `deviation` holds dm = m - m_0 (D,) and dS = S - S_0 (D, D); working with deviations
    rather than m, S avoids cancellation in float32 when the weights have moved little.
    """
    dim = x.shape[-1]
    quadratic = jnp.sum((x @ deviation["dS"]) * x, axis=-1)
    return alpha * (x @ deviation["dm"] / jnp.sqrt(dim) + 0.5 * eps * quadratic / dim)


def moments_function_coefficients(deviation: dict, alpha, eps) -> tuple[jax.Array, jax.Array]:
    """(v, M) of the centred quadratic model (see `network_function_coefficients`)."""
    return alpha * deviation["dm"], alpha * 0.5 * eps * deviation["dS"]


def moments_step(deviation: dict, initial: dict, residual: jax.Array, x: jax.Array,
                 alpha, eps, lr_scale) -> dict:
    """One exact gradient-descent step of the neuron population's moments (fixed readouts).

    Every neuron moves as w_i <- A w_i - k b, hence m <- A m - k b,
    S <- A S A^T - k (A m b^T + b m^T A^T) + k^2 b b^T and C <- A C - k b m_0^T.

    Args:
        deviation: dm = m - m_0 (D,), dS = S - S_0 (D, D), dC = C - S_0 (D, D), where
            C = mean_i w_i w_i0^T.
        initial: m0 (D,), S0 (D, D).
        residual: (P,) train residuals Delta = f - f_0 - y.
        x: (P, D) train inputs.

    Returns:
        the deviations after the step.
    """
    n_train, dim = x.shape
    k = 2.0 * lr_scale / alpha
    b = x.T @ residual / (n_train * jnp.sqrt(dim))
    g = (x.T * residual) @ x / (float(n_train) * dim)  # a Python int product overflows int32
    m = initial["m0"] + deviation["dm"]
    s = initial["S0"] + deviation["dS"]
    c = initial["S0"] + deviation["dC"]
    g_s = g @ s
    a_m = m - k * eps * (g @ m)
    cross = jnp.outer(a_m, b)
    s_increment = (-k * eps * (g_s + (s - k * eps * g_s) @ g) - k * (cross + cross.T)
                   + k**2 * jnp.outer(b, b))
    return {
        "dm": deviation["dm"] - k * eps * (g @ m) - k * b,
        "dS": deviation["dS"] + s_increment,
        "dC": deviation["dC"] - k * eps * (g @ c) - k * jnp.outer(b, initial["m0"]),
    }


def moments_flow(deviation: dict, initial: dict, residual: jax.Array, x: jax.Array,
                 alpha, eps) -> dict:
    """Gradient-flow time derivatives of the moments: the lr_scale -> 0 limit of `moments_step`.

    With time t = step x lr_scale, (moments_step - deviation) / lr_scale -> d/dt deviation:

        dm/dt = -(2/alpha) (eps G m + b)
        dS/dt = -(2/alpha) (eps (G S + S G) + m b^T + b m^T)
        dC/dt = -(2/alpha) (eps G C + b m_0^T)

    (in u = alpha (m - m_0), Q = alpha (eps/2) (S - S_0) these are the equations of
    `dmft/README.md`). Arguments as `moments_step`; returns the derivatives of dm, dS, dC
    (units 1 / time).
    """
    n_train, dim = x.shape
    rate = 2.0 / alpha
    b = x.T @ residual / (n_train * jnp.sqrt(dim))
    g = (x.T * residual) @ x / (float(n_train) * dim)
    m = initial["m0"] + deviation["dm"]
    g_s = g @ (initial["S0"] + deviation["dS"])
    cross = jnp.outer(m, b)
    return {
        "dm": -rate * (eps * (g @ m) + b),
        "dS": -rate * (eps * (g_s + g_s.T) + cross + cross.T),
        "dC": -rate * (eps * (g @ (initial["S0"] + deviation["dC"]))
                       + jnp.outer(b, initial["m0"])),
    }
