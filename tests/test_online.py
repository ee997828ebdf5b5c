"""online=True (fresh P training examples every step) in the grokking experiment: the batches
come from the run's key as documented, the reported train loss is on the current batch, the
network and moments paths agree batch by batch, and with small batches the test loss follows
the population-gradient dynamics (written here in float64 numpy) where offline training on a
fixed small set does not."""

import jax
import numpy as np

import lazyrich
from lazyrich.experiments import grokking

SMALL = {"D": 8, "N": 24, "P": 16, "n_test": 40}


def _batch(seed: int, index: int, p: dict) -> np.ndarray:
    """Batch `index` regenerated from the documented derivation: normal(fold_in(fold_in(
    key(seed), 1), index), (P, D)); index 0 is the offline training set."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 1), index)
    return np.asarray(jax.random.normal(key, (p["P"], p["D"])), np.float64)


def test_train_loss_is_on_the_current_batch_and_batches_follow_the_key(x64):
    """After s steps the state's training set is batch s regenerated independently, and the
    logged train loss is the plain MSE of the network's centred output on it (1e-10)."""
    p = grokking.GROKKING.defaults(dynamics="network", online=True, alpha=0.7, eps=0.3, seed=5,
                                   **SMALL)
    state = grokking.init(jax.random.key(5), p)
    beta = np.asarray(state["data"]["beta"], np.float64)
    step = jax.jit(lambda state: grokking.step(state, p))
    for s in range(1, 4):
        state = step(state)
        x = _batch(5, s, p)
        np.testing.assert_allclose(state["data"]["x_train"], x, rtol=1e-12)
        weights, weights0 = np.asarray(state["net"]["W"]), np.asarray(state["net0"]["W"])

        def f(w, inputs):
            h = inputs @ w.T / np.sqrt(p["D"])
            return p["alpha"] * np.mean(h + p["eps"] / 2 * h**2, axis=1)

        y = (x @ beta / np.sqrt(p["D"])) ** 2
        plain = np.mean((f(weights, x) - f(weights0, x) - y) ** 2)
        logged = float(grokking.metrics(state, p)["train_loss"])
        np.testing.assert_allclose(logged, plain, rtol=1e-10)


def test_first_step_is_offline_then_the_data_differs_and_paths_agree(x64):
    """Batch 0 is the offline set, so step 1 equals offline exactly and step 2 differs; online
    network and online moments give the same train and test loss for 6 steps to 1e-9 (the
    reduction is exact for each batch)."""
    kw = {"alpha": 0.5, "eps": 0.3, "seed": 0, **SMALL}
    runs = {}
    for dynamics, online in (("network", False), ("network", True), ("moments", True)):
        p = grokking.GROKKING.defaults(dynamics=dynamics, online=online, **kw)
        step = jax.jit(lambda state, p=p: grokking.step(state, p))
        state, losses = grokking.init(jax.random.key(0), p), []
        for _ in range(6):
            state = step(state)
            metrics = grokking.metrics(state, p)
            losses.append([float(metrics["test_loss"]), float(metrics["train_loss"])])
        runs[dynamics, online] = np.array(losses)
    offline, online = runs["network", False], runs["network", True]
    np.testing.assert_allclose(online[0, 0], offline[0, 0], rtol=1e-12)
    assert abs(online[1, 0] / offline[1, 0] - 1) > 1e-6
    np.testing.assert_allclose(runs["moments", True], online, rtol=1e-9)


def _population_descent(p: dict, beta: np.ndarray, steps: int, log_every: int) -> np.ndarray:
    """Population test loss of gradient descent on the population loss of the N -> infinity
    moments (m_0 = 0, S_0 = I), float64: with Delta = v.x / sqrt(D) + x^T B x / D,
    B = alpha (eps/2) dS - beta beta^T, the batch statistics' expectations are
    E b = v / D and E G = (tr(B) I + 2 B) / D^2 (Isserlis), and the loss is
    |v|^2 / D + ((tr B)^2 + 2 |B|_F^2) / D^2."""
    dim, alpha, eps = p["D"], p["alpha"], p["eps"]
    k = 2 * p["lr_scale"] / alpha
    m, s = np.zeros(dim), np.eye(dim)
    target = np.outer(beta, beta)

    def loss(m, s):
        v, b = alpha * m, alpha * eps / 2 * (s - np.eye(dim)) - target
        return v @ v / dim + (np.trace(b) ** 2 + 2 * np.sum(b * b)) / dim**2

    losses = [loss(m, s)]
    for step in range(1, steps + 1):
        b_mat = alpha * eps / 2 * (s - np.eye(dim)) - target
        b = alpha * m / dim
        g = (np.trace(b_mat) * np.eye(dim) + 2 * b_mat) / dim**2
        a = np.eye(dim) - k * eps * g
        am = a @ m
        cross = np.outer(am, b)
        m, s = am - k * b, a @ s @ a.T - k * (cross + cross.T) + k**2 * np.outer(b, b)
        if step % log_every == 0:
            losses.append(loss(m, s))
    return np.array(losses)


def test_small_batches_online_follow_the_population_gradient_offline_does_not(x64):
    """With P = 16 examples (fewer than the 44 quadratic-model coefficients) the offline run
    fits its fixed set and its population test loss stays above 40% of its start, while the
    online run's tracks population-gradient descent (both -> 0): mean over 4 seeds within 2% of
    the initial loss of it at every logged step, and below 1% of the start at the end."""
    kw = {"alpha": 1.0, "eps": 0.5, "lr_scale": 0.5, "steps": 600, "log_every": 100,
          "seed": [0, 1, 2, 3], "dynamics": "infinite", "progress": False, **SMALL}
    online = lazyrich.sweep("grokking", online=True, **kw).test_loss_population
    offline = lazyrich.sweep("grokking", **kw).test_loss_population
    p = grokking.GROKKING.defaults(**{k: v for k, v in kw.items()
                                      if k not in ("seed", "progress")})
    reference = []
    for seed in kw["seed"]:
        beta = jax.device_get(grokking.init(jax.random.key(seed), {**p, "seed": seed})
                              ["data"]["beta"])
        reference.append(_population_descent(p, np.asarray(beta, np.float64), p["steps"],
                                             p["log_every"]))
    reference = np.mean(reference, axis=0)
    online, offline = online.mean("seed").values, offline.mean("seed").values
    assert np.all(np.abs(online - reference) < 0.02 * reference[0]), (online, reference)
    assert online[-1] < 0.01 * reference[0] and reference[-1] < 0.01 * reference[0]
    assert offline[-1] > 0.4 * reference[0], offline
