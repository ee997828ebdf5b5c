"""Initialisations: rank-r truncation at fixed norm, aligned rank-1, supplied and Dale matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lazyrich.core import init
from lazyrich.measures.rank_measures import effective_rank


def _base(n=40, m=None, seed=0, gain=1.25):
    normal = jax.random.normal(jax.random.key(seed), (n, m or n), jnp.result_type(float))
    return init.gaussian(normal, gain)


def _numpy_truncation(W, rank):
    """Independent float64 reference: numpy SVD, keep the top r, rescale to ||W||_F."""
    u, s, vt = np.linalg.svd(np.asarray(W, np.float64))
    truncated = u[:, :rank] @ np.diag(s[:rank]) @ vt[:rank]
    return truncated * np.linalg.norm(W) / np.linalg.norm(truncated)


@pytest.mark.parametrize("rank", [1, 3, 17, 40])
def test_truncation_has_rank_r_same_norm_and_top_subspaces(x64, rank):
    """Hard rank exactly r, ||W_r||_F = ||W0||_F to 1e-6, top-r singular subspaces of W0, and
    singular values proportional to W0's top r (the profile is kept, not flattened)."""
    W0 = _base()
    W = init.rank_truncated(W0, rank)
    assert int(effective_rank(W, "hard", tol=1e-8)) == rank
    assert float(jnp.linalg.norm(W)) == pytest.approx(float(jnp.linalg.norm(W0)), rel=1e-6)
    u0, s0, vt0 = np.linalg.svd(np.asarray(W0))
    u, s, vt = np.linalg.svd(np.asarray(W))
    np.testing.assert_allclose(u[:, :rank] @ u[:, :rank].T, u0[:, :rank] @ u0[:, :rank].T,
                               atol=1e-9)
    np.testing.assert_allclose(vt[:rank].T @ vt[:rank], vt0[:rank].T @ vt0[:rank], atol=1e-9)
    np.testing.assert_allclose(s[:rank] / s[0], s0[:rank] / s0[0], rtol=1e-9)
    np.testing.assert_allclose(W, _numpy_truncation(W0, rank), atol=1e-10)


def test_rank_is_a_batched_axis_one_svd_many_ranks(x64):
    """vmap over ranks with one shared SVD equals numpy truncation rank by rank (rectangular)."""
    W0 = _base(30, 12, seed=1)
    basis = init.singular_basis(W0)
    ranks = jnp.asarray([1, 2, 6, 12])
    batch = jax.jit(jax.vmap(lambda r: init.truncate(basis, r, jnp.linalg.norm(W0))))(ranks)
    for W, rank in zip(batch, [1, 2, 6, 12], strict=True):
        np.testing.assert_allclose(W, _numpy_truncation(W0, rank), atol=1e-10)


def test_rank_one_operator_norm_is_its_frobenius_norm_far_above_full_rank():
    """N = 300, g = 1.25: a rank-1 W has ||W||_2 = ||W||_F = g sqrt(N) ~ 21.65, about 8.7x the
    full-rank operator norm (~2g), while its spectral radius stays O(1)."""
    W0 = _base(300, gain=1.25)
    W1 = init.rank_truncated(W0, 1)
    operator = np.linalg.norm(np.asarray(W1), 2)
    assert operator == pytest.approx(float(jnp.linalg.norm(W0)), rel=1e-5)
    assert operator == pytest.approx(1.25 * np.sqrt(300), rel=0.02)
    assert operator / np.linalg.norm(np.asarray(W0), 2) == pytest.approx(8.7, rel=0.05)
    assert np.max(np.abs(np.linalg.eigvals(np.asarray(W1)))) < 5.0


def test_gaussian_and_uniform_fan_in_have_the_stated_scales():
    normal = jax.random.normal(jax.random.key(2), (400, 250))
    W = init.gaussian(normal, 1.5)
    assert float(jnp.std(W)) == pytest.approx(1.5 / np.sqrt(250), rel=0.01)
    U = init.uniform_fan_in(normal)
    bound = 1 / np.sqrt(250)
    assert float(jnp.max(jnp.abs(U))) <= bound
    # Uniform(-b, b): E|U| = b / 2 and Var U = b^2 / 3.
    assert float(jnp.mean(jnp.abs(U))) == pytest.approx(bound / 2, rel=0.01)
    assert float(jnp.var(U)) == pytest.approx(bound**2 / 3, rel=0.02)


def test_aligned_rank_one_is_sigma_u_b_transpose():
    u, b = jnp.asarray([3.0, 0.0, 4.0]), jnp.asarray([0.0, 2.0])
    W1, W2 = init.aligned_rank_one(u, b, 0.5)
    np.testing.assert_allclose(W1, 0.5 * np.outer([0.6, 0.0, 0.8], [0.0, 1.0]), atol=1e-7)
    np.testing.assert_allclose(W2, 0.5 * np.array([[0.6, 0.0, 0.8]]), atol=1e-7)


def test_recurrent_matrix_checks_and_truncates(x64):
    W = _base(10)
    np.testing.assert_allclose(init.recurrent_matrix(W, rank=3), _numpy_truncation(W, 3),
                               atol=1e-10)
    np.testing.assert_array_equal(init.recurrent_matrix(W), W)
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*square"):
        init.recurrent_matrix(np.ones((4, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        init.recurrent_matrix(np.full((3, 3), np.nan))


def test_dale_matrix_signs_and_outlier_eigenvalue():
    """Columns keep one sign; unbalanced, the mean gives an outlier at
    g sqrt(N) sqrt(2/pi) (1 - 2f) (~9.6 for N = 400, f = 0.2); balanced, none (radius < 2)."""
    normal = jax.random.normal(jax.random.key(3), (400, 400))
    W = np.asarray(init.dale_matrix(normal, 1.0, 0.2))
    assert np.all(W[:, :320] >= 0) and np.all(W[:, 320:] <= 0)
    eigenvalues = np.linalg.eigvals(W)
    outlier = eigenvalues[np.argmax(np.abs(eigenvalues))]
    assert outlier.real == pytest.approx(np.sqrt(400) * np.sqrt(2 / np.pi) * 0.6, rel=0.05)
    assert abs(outlier.imag) < 1e-6
    balanced = np.asarray(init.dale_matrix(normal, 1.0, 0.2, balanced=True))
    assert np.all(balanced[:, 320:] <= 0)
    assert np.max(np.abs(np.linalg.eigvals(balanced))) < 2.0
    with pytest.raises(ValueError, match="inhibitory_fraction=1.5"):
        init.dale_matrix(normal, 1.0, 1.5)
    with pytest.raises(ValueError, match="square"):
        init.dale_matrix(normal[:10], 1.0, 0.2)


@pytest.mark.parametrize("rank,error,fragment", [
    (0, ValueError, "rank=0 is out of range"),
    (11, ValueError, "[1, 10]"),
    (2.5, TypeError, "rank=2.5"),
    (True, TypeError, "rank=True"),
])
def test_bad_ranks_are_refused(rank, error, fragment):
    with pytest.raises(error) as info:
        init.rank_truncated(jnp.ones((10, 12)), rank)
    assert fragment in str(info.value)
