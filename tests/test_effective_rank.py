"""Effective-rank measures against numpy float64 formulas and the paper's sanity cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazyrich
from lazyrich.measures import metrics
from lazyrich.measures.rank_measures import KINDS


def _reference(W: np.ndarray, kind: str) -> float:
    """Brute-force float64 definitions (paper page Sec. 2)."""
    if kind == "eigenvalue":
        moduli = np.abs(np.linalg.eigvals(W))
        return moduli.sum() / (moduli.max() * W.shape[0])
    s = np.linalg.svd(W, compute_uv=False)
    if kind == "hard":
        return int(np.sum(s > 1e-6 * s[0]))
    if kind == "entropy":
        p = s / s.sum()
        p = p[p > 0]
        return float(np.exp(-np.sum(p * np.log(p))))
    if kind == "participation":
        return float(np.sum(s**2) ** 2 / np.sum(s**4))
    if kind == "stable":
        return float(np.sum(s**2) / s[0] ** 2)
    return float(np.sum(s) / s[0])


def test_identity_gives_n_and_rank_one_gives_one(x64):
    eye = jnp.eye(12)
    rank_one = jnp.outer(jnp.arange(1.0, 13.0), jnp.linspace(1.0, 2.0, 12))
    for kind in KINDS:
        expected_eye = 1.0 if kind == "eigenvalue" else 12.0
        expected_one = 1 / 12 if kind == "eigenvalue" else 1.0
        assert float(lazyrich.effective_rank(eye, kind)) == pytest.approx(expected_eye, rel=1e-10)
        assert float(lazyrich.effective_rank(rank_one, kind)) == pytest.approx(expected_one,
                                                                                rel=1e-8)


@pytest.mark.parametrize("kind", KINDS)
def test_measures_equal_numpy_and_are_scale_invariant(x64, kind):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(15, 15)) @ np.diag(np.linspace(0.1, 3.0, 15))
    tol = {"tol": 1e-6} if kind == "hard" else {}
    ours = float(metrics.effective_rank(jnp.asarray(W), kind, **tol))
    assert ours == pytest.approx(_reference(W, kind), rel=1e-10)
    for scale in (1e-3, -7.0, 250.0):
        scaled = float(lazyrich.effective_rank(jnp.asarray(scale * W), kind, **tol))
        assert scaled == pytest.approx(ours, rel=1e-10)


def test_batched_over_leading_axes_equals_a_loop(x64):
    W = jax.random.normal(jax.random.key(1), (2, 3, 6, 9))
    batched = lazyrich.effective_rank(W, "participation")
    assert batched.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert float(batched[i, j]) == pytest.approx(
                _reference(np.asarray(W[i, j]), "participation"), rel=1e-10)


def test_float32_rectangular_and_integer_inputs():
    W = jax.random.normal(jax.random.key(2), (20, 8), jnp.float32)  # float32 under x64 too
    assert int(lazyrich.effective_rank(W, "hard")) == 8
    assert lazyrich.effective_rank(W, "entropy").dtype == jnp.float32
    assert float(lazyrich.effective_rank(np.eye(4, dtype=int), "nuclear")) == pytest.approx(4.0)


@pytest.mark.parametrize("args,fragment", [
    ((np.eye(3), "spectral"), "kind='spectral'"),
    ((np.ones(3), "entropy"), "matrix"),
    ((np.ones((3, 4)), "eigenvalue"), "square"),
    ((np.eye(3), "entropy", 1e-3), "tol=0.001 applies to kind='hard' only"),
    ((np.eye(3), "hard", 2.0), "tol=2.0 is out of range"),
])
def test_bad_input_is_refused(args, fragment):
    with pytest.raises(ValueError) as info:
        lazyrich.effective_rank(*args)
    assert fragment in str(info.value)


@pytest.mark.parametrize("matrix,error,fragment", [
    (np.array([[1.0, np.nan], [0.0, 1.0]]), ValueError, "1 NaN or infinite"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), ValueError, "NaN or infinite"),
    (np.eye(3) * (1 + 1j), TypeError, "complex"),
    (np.array([["a", "b"], ["c", "d"]]), TypeError, "dtype"),
])
def test_nan_and_complex_matrices_are_refused(matrix, error, fragment):
    for kind in ("entropy", "hard", "eigenvalue"):
        with pytest.raises(error, match=fragment):
            lazyrich.effective_rank(matrix, kind=kind)


def test_traced_matrices_still_work_inside_jit():
    import jax

    value = jax.jit(lambda w: lazyrich.effective_rank(w, kind="participation"))(np.eye(4))
    assert float(value) == pytest.approx(4.0)
