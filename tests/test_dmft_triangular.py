"""The DMFT's triangular solves in jax.numpy (`dmft.triangular`) against scipy, and the compiled
DMFT iteration free of LAPACK triangular solves (jaxlib 0.10's batched LAPACK calls can wedge
XLA's CPU thread pool when two run at once: see dmft/triangular.py)."""

from __future__ import annotations

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from dmft import grokking, triangular
from dmft.fixed_point import ConvergenceWarning


def _system(rng, m, k):
    """A well-conditioned lower-triangular (m, m) with junk above the diagonal (must be
    ignored), and a right-hand side (m, k)."""
    lower = (np.tril(rng.normal(size=(m, m)), -1) * 0.5 / np.sqrt(m)
             + np.diag(1 + rng.random(m)) + np.triu(rng.normal(size=(m, m)), 1) * 7)
    return lower, rng.normal(size=(m, k))


@pytest.mark.parametrize("m,k,leaf", [(1, 1, 32), (7, 3, 32), (32, 5, 32), (33, 4, 32),
                                      (131, 131, 32), (131, 9, 4), (64, 2, 1)])
@pytest.mark.parametrize("unit", [False, True])
def test_solves_equal_scipy_in_float64(x64, m, k, leaf, unit):
    rng = np.random.default_rng(m * 100 + k)
    lower, rhs = _system(rng, m, k)
    expected = scipy.linalg.solve_triangular(lower, rhs, lower=True, unit_diagonal=unit)
    got = triangular.solve_lower(jnp.asarray(lower), jnp.asarray(rhs), unit, leaf)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # upper: the transposed system; right division: rhs^T L^-1
    transposed = scipy.linalg.solve_triangular(lower.T, rhs, lower=False, unit_diagonal=unit)
    np.testing.assert_allclose(triangular.solve_upper(jnp.asarray(lower.T), jnp.asarray(rhs),
                                                      unit, leaf), transposed, atol=1e-12)
    np.testing.assert_allclose(triangular.right_divide(jnp.asarray(rhs.T), jnp.asarray(lower),
                                                       unit, leaf), transposed.T, atol=1e-12)


def test_batched_and_float32_solves():
    rng = np.random.default_rng(3)
    systems = [_system(rng, 45, 6) for _ in range(5)]
    lowers = np.stack([s[0] for s in systems]).astype(np.float32)
    rhss = np.stack([s[1] for s in systems]).astype(np.float32)
    got = jax.jit(jax.vmap(triangular.solve_lower))(lowers, rhss)
    assert got.dtype == jnp.float32
    for one, lower, rhs in zip(np.asarray(got), lowers, rhss, strict=True):
        expected = scipy.linalg.solve_triangular(lower.astype(np.float64),
                                                 rhs.astype(np.float64), lower=True)
        np.testing.assert_allclose(one, expected, rtol=0, atol=2e-5)


def test_bad_shapes_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"lower \(m, m\) and rhs \(m, k\).*\(3, 4\)"):
        triangular.solve_lower(jnp.ones((3, 4)), jnp.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        triangular.solve_lower(jnp.eye(4), jnp.ones(4))
    with pytest.raises(ValueError, match=r"right_divide needs lower .*rhs \(k, m\).*\(2, 3\)"):
        triangular.right_divide(jnp.ones((2, 3)), jnp.eye(4))
    with pytest.raises(ValueError, match=r"solve_upper needs upper .*\(5, 2\)"):
        triangular.solve_upper(jnp.eye(4), jnp.ones((5, 2)))
    with pytest.raises(ValueError, match=r"blocked_solve_lower needs lower .*rhs \(3, 2\)"):
        triangular.blocked_solve_lower(jnp.eye(2), jnp.ones((2, 3)).T)


def _first_program(monkeypatch, **settings) -> str:
    """The StableHLO text of the batched iteration that a small solve compiles (alpha 1 and 4,
    D = 6, 9 times, two iterations)."""
    compiled = grokking._compiled_iteration
    programs = []

    def recording(*key):
        function = compiled(*key)

        def call(*args):
            if not programs:
                programs.append(function.lower(*args).as_text())
            return function(*args)
        return call

    monkeypatch.setattr(grokking, "_compiled_iteration", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)     # two iterations are enough here
        grokking.solve([1.0, 4.0], 0.02, 2.5, 0.5, D=6, times=np.linspace(0, 8, 9),
                       n_samples=40, n_response=8, max_iter=2, progress=False, **settings)
    assert programs
    return programs[0]


@pytest.mark.parametrize("scheme", ["explicit", "implicit"])
def test_the_compiled_iteration_has_no_lapack_triangular_solve(monkeypatch, scheme):
    """At most one LAPACK call (the bulk covariance's eigh) in the batched iteration: two at
    once is what hung `lazyrich compare` on 2 cores."""
    program = _first_program(monkeypatch, scheme=scheme)
    targets = re.findall(r'custom_call @?"?([A-Za-z_0-9]+)', program)
    targets += re.findall(r'call_target_name = "([A-Za-z_0-9]+)"', program)
    lapack = [t for t in targets if "lapack" in t]
    assert not [t for t in lapack if "trsm" in t], lapack
    assert len(lapack) <= 1, lapack


def test_float32_solves_use_full_float32_products(monkeypatch):
    """Every matrix product of the float32 iteration is compiled at HIGHEST precision, whatever
    JAX's default (TF32 on GPUs: on an H200 it moved the grokking time 5.5 points and the delay
    11.6 points, `benchmarks/dmft_cost.py`), here with TF32 asked for around the call."""
    with jax.default_matmul_precision("tensorfloat32"):
        program = _first_program(monkeypatch, scheme="implicit", dtype="float32", tol=1e-4)
    dots = [line for line in program.splitlines() if "dot_general" in line]
    assert dots and "f32" in dots[0]
    assert all("precision = [HIGHEST, HIGHEST]" in line for line in dots), \
        [line for line in dots if "HIGHEST" not in line][:2]


def test_off_the_cpu_the_library_solves(monkeypatch):
    """`uses_library` follows the backend; the library's path meets the same contract (junk
    above the diagonal ignored, unit diagonal not read)."""
    assert not triangular.uses_library()                     # the suite runs on the CPU
    lower, rhs = _system(np.random.default_rng(5), 40, 3)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert triangular.uses_library()
    lowered = jax.jit(triangular.solve_lower).lower(lower, rhs).as_text()
    assert "scan" not in lowered and "while" not in lowered   # no blocked substitution
    for unit in (False, True):
        expected = scipy.linalg.solve_triangular(lower, rhs, lower=True, unit_diagonal=unit)
        solved = triangular.solve_lower(jnp.asarray(lower, jnp.float32),
                                        jnp.asarray(rhs, jnp.float32), unit_diagonal=unit)
        np.testing.assert_allclose(solved, expected, rtol=2e-4, atol=2e-4)
