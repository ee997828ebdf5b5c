"""The closed-form population loss against Monte Carlo over fresh Gaussian inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazyrich
from lazyrich.experiments import grokking
from lazyrich.tasks.polynomial import (
    evaluate_polynomial,
    polynomial_coefficients,
    quadratic_model_population_loss,
)

SAMPLES = 400_000


def _monte_carlo(v, M, beta, coefficients, key):
    """Mean and standard error of (f - y)^2 over fresh x ~ N(0, I), in float64 numpy."""
    dim = beta.shape[0]
    x = np.asarray(jax.random.normal(key, (SAMPLES, dim)), dtype=np.float64)
    v, M, beta = (np.asarray(a, np.float64) for a in (v, M, beta))
    f = x @ v / np.sqrt(dim) + np.einsum("nd,de,ne->n", x, M, x) / dim
    y = np.polynomial.polynomial.polyval(x @ beta / np.sqrt(dim), coefficients)
    sq = (f - y) ** 2
    return sq.mean(), sq.std() / np.sqrt(SAMPLES)


@pytest.mark.parametrize("target,degree", [("monomial", 2), ("monomial", 3), ("hermite", 2),
                                           ("hermite", 4), ("monomial", 1)])
def test_closed_form_equals_monte_carlo_for_random_quadratic_models(x64, target, degree):
    """For random v, M (symmetric) and beta, the closed form lies within 4 standard errors
    of a 400k-sample Monte Carlo estimate."""
    dim = 6
    keys = jax.random.split(jax.random.key(degree), 4)
    v = 0.5 * jax.random.normal(keys[0], (dim,))
    A = jax.random.normal(keys[1], (dim, dim))
    M = 0.3 * (A + A.T)
    beta = jax.random.normal(keys[2], (dim,))
    coefficients = polynomial_coefficients(target, degree)
    exact = float(quadratic_model_population_loss(v, M, beta, coefficients))
    mean, stderr = _monte_carlo(v, M, beta, coefficients, keys[3])
    assert abs(exact - mean) < 4 * stderr, (exact, mean, stderr)


def test_logged_population_loss_matches_a_large_fresh_test_set(x64):
    """`test_loss_population` logged during training equals the loss of the trained network on
    400k fresh inputs within 4 standard errors (statistics from the state, not the test set)."""
    p = lazyrich.get_experiment("grokking").defaults(alpha=0.5, eps=0.3, D=8, N=30, P=40,
                                                     n_test=16, dynamics="network")
    state = grokking.init(jax.random.key(1), p)
    for _ in range(60):
        state = grokking.step(state, p)
    logged = float(grokking.metrics(state, p)["test_loss_population"])
    beta = state["data"]["beta"]
    x = jax.random.normal(jax.random.key(99), (SAMPLES, p["D"]))
    f = (grokking.model.network_output(state["net"], x, p["alpha"], p["eps"])
         - grokking.model.network_output(state["net0"], x, p["alpha"], p["eps"]))
    y = evaluate_polynomial((0.0, 0.0, 1.0), x @ beta / jnp.sqrt(p["D"]))
    sq = np.asarray((f - y) ** 2)
    stderr = sq.std() / np.sqrt(SAMPLES)
    assert abs(logged - sq.mean()) < 4 * stderr, (logged, sq.mean(), stderr)
    assert logged < 0.9 * float(grokking.metrics(grokking.init(jax.random.key(1), p), p)
                                ["test_loss_population"])


def test_paper_formula_for_the_quadratic_target(x64):
    """For y = (beta.x)^2/D the closed form is (2||B||_F^2 + (tr B)^2)/D^2 + |v|^2/D with
    B = M - beta beta^T (paper page Sec. 2), written here independently in numpy."""
    rng = np.random.default_rng(0)
    dim = 9
    v, beta = rng.normal(size=dim), rng.normal(size=dim)
    A = rng.normal(size=(dim, dim))
    M = A + A.T
    B = M - np.outer(beta, beta)
    paper = v @ v / dim + (2 * np.sum(B * B) + np.trace(B) ** 2) / dim**2
    ours = quadratic_model_population_loss(jnp.asarray(v), jnp.asarray(M), jnp.asarray(beta),
                                           polynomial_coefficients("monomial", 2))
    assert float(ours) == pytest.approx(paper, rel=1e-12)
