"""The lazy limit: gradient descent on a linearised model is kernel regression with its initial NTK.

A model linearised at its initialisation, f(x) = f_0(x) + grad f_0(x) . (theta - theta_0), and
trained by gradient descent on L = mean_mu (f(x_mu) - f_0(x_mu) - y_mu)^2 moves in function space
as

    f_train <- f_train - learning_rate (2 / P) K (f_train - y),

with K the (P, P) neural tangent kernel on the training inputs. With K = V diag(lambda) V^T and
h_i = 2 learning_rate lambda_i / P the learning curves are closed forms (Jacot et al. 2018;
neural-tangents' `predict.gradient_descent_mse` is the same computation):

    f_train(s) - y = -V diag((1 - h)^s) V^T y
    f_test(s)      = K_test,train V diag((1 - (1 - h)^s) / lambda) V^T y      (discrete steps)

and exp(-h s) in place of (1 - h)^s for gradient flow. As s -> infinity f_test is ridgeless
kernel regression (`lazyrich.measures.metrics.kernel_regression`).

For the grokking model (Kumar et al. 2023) the linearised network trained with eta = lr_scale N on
L / alpha^2 has learning_rate x NTK = lr_scale x K_fn with

    K_fn(x, x') = (1/N) sum_i phi'(h_i) phi'(h_i') (x . x' / D)           (finite width N)
    K_fn(x, x') = (x . x' / D) (1 + eps^2 init_scale^2 x . x' / D)        (N -> infinity),

independent of alpha: in the lazy limit the output scale does not change the function-space
dynamics. Everything here runs in float64 numpy: the kernel's small (eps^2) modes need it.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from dmft import checks
from lazyrich.core.checks import check_positive_integer, check_seed, require_memory


def _check_kernels(kernel_train, kernel_test_train, y_train, y_test) -> None:
    n_train = len(y_train)
    if kernel_train.shape != (n_train, n_train):
        raise ValueError(f"kernel_train has shape {kernel_train.shape}; it must be (P, P) with "
                         f"P = len(y_train) = {n_train}")
    if kernel_test_train.shape != (len(y_test), n_train):
        raise ValueError(f"kernel_test_train has shape {kernel_test_train.shape}; it must be "
                         f"(len(y_test), P) = ({len(y_test)}, {n_train})")


def _short(array: np.ndarray) -> str:
    return np.array2string(np.asarray(array), threshold=6)


def curves_bytes(n_steps: int, n_train: int, n_test: int) -> float:
    """Peak bytes of `learning_curves`: the kernels and eigenvectors, and five (T, P) arrays
    (decay, its complement and their temporaries) plus the (T, Q) test predictions."""
    return 8.0 * (3 * n_train**2 + 2 * n_test * n_train + n_steps * (5 * n_train + 2 * n_test))


def _mode_decay(rate: np.ndarray, steps: np.ndarray, discrete: bool):
    """(decay, 1 - decay) of each mode at each step: (1 - h)^s or exp(-h s), shape (T, P).

    log1p / expm1 keep the slow modes (h ~ 1e-6) accurate; modes with h >= 1 (stable but
    oscillating for h < 2) take the plain power, defined for integer steps.
    """
    if not discrete:
        return np.exp(-np.outer(steps, rate)), -np.expm1(-np.outer(steps, rate))
    small = rate < 1.0
    log_decay = np.log1p(-np.where(small, rate, 0.0))
    smooth = np.exp(np.outer(steps, log_decay))
    smooth_complement = -np.expm1(np.outer(steps, log_decay))
    power = np.power(1.0 - rate, steps[:, None])
    return np.where(small, smooth, power), np.where(small, smooth_complement, 1.0 - power)


def learning_curves(kernel_train, kernel_test_train, y_train, y_test, steps, learning_rate: float,
                    discrete: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Train and test mean squared error of the linearised model at the given steps.

    Args:
        kernel_train: (P, P) NTK on the training inputs.
        kernel_test_train: (Q, P) NTK between test and training inputs.
        y_train: (P,) targets minus the initial output; y_test: (Q,) likewise.
        steps: (T,) non-negative step counts (or times, for gradient flow).
        learning_rate: the function-space learning rate multiplying the kernel.
        discrete: gradient-descent steps ((1 - h)^s) if True, gradient flow (exp(-h s)) if False.

    Returns:
        (train_loss, test_loss), each (T,), float64.
    """
    kernel_train = checks.finite_array("kernel_train", kernel_train, ndim=2)
    kernel_test_train = checks.finite_array("kernel_test_train", kernel_test_train, ndim=2)
    y_train = checks.finite_array("y_train", y_train, ndim=1)
    y_test = checks.finite_array("y_test", y_test, ndim=1)
    _check_kernels(kernel_train, kernel_test_train, y_train, y_test)
    learning_rate = checks.number("learning_rate", learning_rate)
    steps = checks.finite_array("steps", steps)
    if steps.ndim != 1 or np.any(steps < 0):
        raise ValueError(f"steps={_short(steps)} must be a 1-d array of non-negative step counts")
    n_train, n_test = len(y_train), len(y_test)
    require_memory(curves_bytes(len(steps), n_train, n_test),
                   f"dmft.kernel.learning_curves at {len(steps)} steps, P={n_train}, "
                   f"{n_test} test points", "pass fewer steps= (log points)")
    eigenvalues, eigenvectors = np.linalg.eigh(kernel_train)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    rate = 2.0 * learning_rate * eigenvalues / len(y_train)
    if discrete and np.any(rate >= 2.0):
        raise ValueError(f"learning_rate={learning_rate!r} is beyond the stability limit of "
                         f"gradient descent for this kernel (needs < "
                         f"{len(y_train) / eigenvalues.max():.4g})")
    projected = eigenvectors.T @ y_train
    decay, complement = _mode_decay(rate, steps, discrete)
    train_loss = np.mean((decay * projected) ** 2, axis=1)
    # (1 - decay) / lambda, with its lambda -> 0 limit s h / lambda = 2 s learning_rate / P
    positive = eigenvalues > 0
    gain = np.where(positive, complement / np.where(positive, eigenvalues, 1.0),
                    np.outer(steps, np.full_like(eigenvalues, 2.0 * learning_rate / len(y_train))))
    test_prediction = (gain * projected) @ (kernel_test_train @ eigenvectors).T
    test_loss = np.mean((test_prediction - y_test) ** 2, axis=1)
    return train_loss, test_loss


def _check_inputs(x1, x2) -> tuple[np.ndarray, np.ndarray]:
    x1, x2 = checks.finite_array("x1", x1, ndim=2), checks.finite_array("x2", x2, ndim=2)
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x2 has shape {x2.shape}; it must be (P2, D) with D = {x1.shape[1]} "
                         f"as in x1 {x1.shape}")
    return x1, x2


def grokking_infinite_width_kernel(x1, x2, eps: float, init_scale: float = 1.0) -> np.ndarray:
    """N -> infinity function-space NTK of the grokking model, (x.x'/D)(1 + eps^2 s^2 x.x'/D).

    Args:
        x1: (P1, D), x2: (P2, D). Returns (P1, P2), float64.
    """
    x1, x2 = _check_inputs(x1, x2)
    eps = checks.number("eps", eps, minimum=None)
    init_scale = checks.number("init_scale", init_scale)
    overlap = x1 @ x2.T / x1.shape[1]
    return overlap * (1.0 + eps**2 * init_scale**2 * overlap)


def grokking_finite_width_kernel(weights, x1, x2, eps: float) -> np.ndarray:
    """Function-space NTK of the grokking network with first-layer weights `weights` (N, D).

    (1/N) sum_i (1 + eps h_i(x1)) (1 + eps h_i(x2)) x1 . x2 / D, fixed readouts; float64.
    """
    weights = checks.finite_array("weights", weights, ndim=2)
    x1, x2 = _check_inputs(x1, x2)
    eps = checks.number("eps", eps, minimum=None)
    dim = weights.shape[1]
    if dim != x1.shape[1]:
        raise ValueError(f"weights has shape {weights.shape}; it must be (N, D) with D = "
                         f"{x1.shape[1]}, the inputs' dimension")
    slope1 = 1.0 + eps * x1 @ weights.T / np.sqrt(dim)
    slope2 = 1.0 + eps * x2 @ weights.T / np.sqrt(dim)
    return (slope1 @ slope2.T) / len(weights) * (x1 @ x2.T / dim)


def lazy_curves_bytes(n_steps: int, D: int, N: int | str, P: int, n_test: int) -> float:
    """Peak bytes of one seed of `grokking_lazy_curves`: the data (inputs in float32 and
    float64), at finite N the weights and the (N, P + n_test) slopes, then `learning_curves`."""
    width = 0 if N == "infinite" else int(N)
    return (12.0 * (P + n_test) * D + 8.0 * width * (D + 2 * (P + n_test))
            + curves_bytes(n_steps, P, n_test))


def _check_lazy_arguments(seed, D, N, P, n_test, eps, lr_scale, init_scale, steps,
                          log_every) -> list[int]:
    """The seeds as ints, after refusing any argument of `grokking_lazy_curves` it cannot use."""
    if isinstance(seed, str | bytes) or np.ndim(seed) > 1 or np.size(seed) == 0:
        raise TypeError(f"seed={seed!r}: must be an integer seed or a non-empty 1-d list of them")
    seeds = [check_seed(s, "seed") for s in np.atleast_1d(np.asarray(seed, dtype=object))]
    for name, value in (("D", D), ("P", P), ("n_test", n_test), ("steps", steps),
                        ("log_every", log_every)):
        check_positive_integer(name, value)
    if N != "infinite":
        if isinstance(N, str):
            raise ValueError(f"N={N!r}: must be a positive integer or 'infinite'")
        check_positive_integer("N", N)
    checks.number("eps", eps, minimum=None)
    checks.number("lr_scale", lr_scale)
    checks.number("init_scale", init_scale)
    if steps % log_every:
        raise ValueError(f"log_every={log_every} does not divide steps={steps}; steps must be a "
                         f"multiple of log_every")
    return seeds


def grokking_lazy_curves(seed=(0,), *, D: int = 100, N: int | str = 500, P: int = 550,
                         n_test: int = 1000, eps: float = 0.02, lr_scale: float = 0.5,
                         init_scale: float = 1.0, steps: int = 20_000,
                         log_every: int = 100) -> xr.Dataset:
    """Lazy-limit train/test learning curves of `lazyrich.sweep("grokking", ...)` runs.

    For each seed the training and test sets are exactly those of the simulation with that seed
    (drawn through the experiment's own `init`); with integer N the kernel is the run's initial
    NTK (so the curves equal the simulation's `lin_train_loss` / `lin_test_loss`), with
    N="infinite" the N -> infinity kernel.

    Returns:
        Dataset with `train_loss`, `test_loss` (seed, step), coordinates `step` and
        `time` = step x lr_scale (the simulation's time unit, eta / N per step).
    """
    import jax

    import lazyrich
    from lazyrich.experiments import grokking

    seeds = _check_lazy_arguments(seed, D, N, P, n_test, eps, lr_scale, init_scale, steps,
                                  log_every)
    step = np.arange(0, steps + 1, log_every)
    require_memory(lazy_curves_bytes(len(step), D, N, P, n_test),
                   f"dmft.kernel.grokking_lazy_curves with D={D}, N={N}, P={P}, "
                   f"n_test={n_test}, {len(step)} log points",
                   "lower n_test= or P=, or log less often (log_every=)")
    params = lazyrich.get_experiment("grokking").defaults(
        D=D, N=N if N != "infinite" else 1, P=P, n_test=n_test, eps=eps, lr_scale=lr_scale,
        init_scale=init_scale, dynamics="network")  # the network's own W_0 (same draws)
    train_losses, test_losses = [], []
    for one_seed in seeds:
        state = grokking.init(jax.random.key(one_seed), params)
        data = {k: np.asarray(v, np.float64) for k, v in state["data"].items()}
        if N == "infinite":
            def kernel(a, b):
                return grokking_infinite_width_kernel(a, b, eps, init_scale)
        else:
            weights = np.asarray(state["net0"]["W"], np.float64)

            def kernel(a, b, weights=weights):
                return grokking_finite_width_kernel(weights, a, b, eps)
        train, test = learning_curves(kernel(data["x_train"], data["x_train"]),
                                      kernel(data["x_test"], data["x_train"]),
                                      data["y_train"], data["y_test"], step, lr_scale)
        train_losses.append(train)
        test_losses.append(test)
    return xr.Dataset(
        {"train_loss": (("seed", "step"), np.array(train_losses),
                        {"description": "train MSE of the linearised model (lazy limit)"}),
         "test_loss": (("seed", "step"), np.array(test_losses),
                       {"description": "test MSE of the linearised model (lazy limit)"})},
        coords={"seed": seeds, "step": step, "time": ("step", step * lr_scale)},
        attrs={"theory": "lazy limit: kernel gradient descent with the initial NTK",
               "width": str(N), "D": D, "P": P, "n_test": n_test, "eps": eps,
               "lr_scale": lr_scale, "init_scale": init_scale})
