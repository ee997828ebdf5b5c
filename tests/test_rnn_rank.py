"""The `rnn_rank` experiment: model, optimiser, rank effect on a small sweep, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lazyrich
from lazyrich.core import chunks
from lazyrich.experiments import rnn_rank
from lazyrich.tasks import cognitive

SMALL = {"task": "2AF", "N": 64, "rank": [1, 8, 64], "seed": [0, 1, 2], "steps": 1000,
         "log_every": 200, "eval_batches": 4}


@pytest.fixture(scope="module")
def small():
    """N = 64, ranks 1 / 8 / 64, three seeds, 1000 SGD steps (about 15 s on 2 CPU cores)."""
    return lazyrich.sweep("rnn_rank", progress=False, **SMALL)


def test_measures_at_the_start_are_those_of_no_learning(small):
    """At t = 0: KA = RA = sign similarity = 1 and no weight change."""
    assert small.kernel_alignment.dims == ("rank", "seed", "ntk_step")
    assert list(small.ntk_step.values) == [0, 1000]
    start = small.isel(ntk_step=0)
    for var in ("kernel_alignment", "representation_alignment", "sign_similarity"):
        np.testing.assert_allclose(start[var].values, 1.0, atol=1e-5, err_msg=var)
    np.testing.assert_array_equal(small.weight_change.isel(step=0).values, 0.0)


def test_every_rank_learns(small):
    """Loss falls at least 5x at every rank and decision accuracy passes 0.7 (2AF's ceiling is
    about 0.9: a fifth of the trials have coherence 0)."""
    ratio = small.loss.isel(step=-1) / small.loss.isel(step=0)
    assert float(ratio.max()) < 0.2
    assert float(small.accuracy.isel(step=-1).min()) > 0.7
    assert not bool(small.diverged.any())


def test_low_rank_initialisation_learns_richer(small):
    """Means over seeds: KA and RA are lower from a rank-1 W_h than from a full-rank one
    (measured: KA 0.21 vs 0.50, RA 0.82 vs 0.99)."""
    end = small.isel(ntk_step=-1).mean("seed")
    ka, ra = end.kernel_alignment, end.representation_alignment
    assert float(ka.sel(rank=1)) < float(ka.sel(rank=64)) - 0.1
    assert float(ra.sel(rank=1)) < float(ra.sel(rank=64))


def test_run_equals_a_numpy_loop(x64):
    """h_{t+1} = relu((1 - a) h_t + a (W_in x_t + W_h h_t)), y_t = W_out h_{t+1}, h_0 = 0."""
    rng = np.random.default_rng(0)
    weights = {"W_in": rng.normal(size=(6, 3)), "W_h": rng.normal(size=(6, 6)) / 3,
               "W_out": rng.normal(size=(3, 6))}
    inputs = rng.normal(size=(5, 2, 3))
    hidden, outputs = rnn_rank.run({k: jnp.asarray(v) for k, v in weights.items()},
                                   jnp.asarray(inputs), 0.4)
    h = np.zeros((2, 6))
    for t in range(5):
        h = np.maximum(0.6 * h + 0.4 * (inputs[t] @ weights["W_in"].T + h @ weights["W_h"].T),
                       0)
        np.testing.assert_allclose(hidden[t], h, rtol=1e-12)
        np.testing.assert_allclose(outputs[t], h @ weights["W_out"].T, rtol=1e-12)
    labels = rng.integers(0, 3, size=(5, 2))
    log_p = outputs - np.log(np.exp(np.asarray(outputs)).sum(-1, keepdims=True))
    expected = -np.mean(np.take_along_axis(np.asarray(log_p), labels[..., None], -1))
    assert float(rnn_rank.cross_entropy(outputs, jnp.asarray(labels))) == pytest.approx(expected)


def test_step_is_sgd_with_momentum_on_a_fresh_batch(x64):
    """v <- momentum v + g, theta <- theta - lr v (PyTorch's SGD); g checked against central
    finite differences of the loss on the same batch."""
    experiment = lazyrich.get_experiment("rnn_rank")
    p = experiment.defaults(N=6, rank=3, batch_size=4, eval_batches=1, lr=0.05, momentum=0.9)
    # compiled whole: op by op, the initialisation and the trials compile ~120 small programs
    state = jax.jit(lambda key: experiment.init(key, p))(jax.random.key(0))
    state = {**state, "velocity": jax.tree_util.tree_map(jnp.ones_like, state["velocity"])}
    new = jax.jit(lambda s: experiment.step(s, p))(state)
    _, batch_key = jax.random.split(state["key"])
    inputs, labels = jax.jit(lambda key: cognitive.trials(key, "2AF", 4))(batch_key)
    loss = jax.jit(rnn_rank._loss)
    gradient = jax.jit(jax.grad(rnn_rank._loss))(state["weights"], inputs, labels, 1.0)
    for name in ("W_in", "W_h", "W_out"):
        expected_v = 0.9 + gradient[name]
        np.testing.assert_allclose(new["velocity"][name], expected_v, rtol=1e-12)
        np.testing.assert_allclose(new["weights"][name],
                                   state["weights"][name] - 0.05 * expected_v, rtol=1e-12)
    W_h = state["weights"]["W_h"]
    for i, j in [(0, 0), (2, 1), (5, 4)]:
        bump = jnp.zeros_like(W_h).at[i, j].set(1e-6)
        up = loss({**state["weights"], "W_h": W_h + bump}, inputs, labels, 1.0)
        down = loss({**state["weights"], "W_h": W_h - bump}, inputs, labels, 1.0)
        assert float(gradient["W_h"][i, j]) == pytest.approx(float(up - down) / 2e-6, abs=1e-7)
    assert not np.array_equal(new["key"], state["key"])


def test_initial_recurrent_matrix_has_rank_r_and_the_full_draws_norm(x64):
    experiment = lazyrich.get_experiment("rnn_rank")
    norms = []
    for rank in (1, 5, 40):
        p = experiment.defaults(N=40, rank=rank, gain=1.25)
        W_h = jax.jit(lambda key, p=p: experiment.init(key, p))(jax.random.key(3))["weights"]["W_h"]
        assert int(lazyrich.effective_rank(W_h, "hard", tol=1e-8)) == rank
        norms.append(float(jnp.linalg.norm(W_h)))
    np.testing.assert_allclose(norms, norms[-1], rtol=1e-10)
    assert norms[-1] == pytest.approx(1.25 * np.sqrt(40), rel=0.1)


@pytest.fixture
def no_compilation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("compiled before validating")
    monkeypatch.setattr(chunks, "compiled_runner", refuse)


@pytest.mark.parametrize("kwargs,error,fragments", [
    ({"rank": 0}, ValueError, ["rank=0", ">= 1"]),
    ({"N": 64, "rank": [1, 65]}, ValueError, ["rank=65", "[1, 64]"]),
    ({"task": "XOR"}, ValueError, ["task='XOR'", "'2AF'", "'DMS'", "'CXT'"]),
    ({"leak": 1.5}, ValueError, ["leak=1.5", "(0, 1]"]),
    ({"momentum": 1.0}, ValueError, ["momentum=1.0", "[0, 1)"]),
    ({"ntk_steps": [0, 150]}, ValueError, ["150", "log_every=100"]),
])
def test_bad_input_is_refused_before_compiling(no_compilation, kwargs, error, fragments):
    with pytest.raises(error) as info:
        lazyrich.sweep("rnn_rank", progress=False, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


@pytest.mark.slow
def test_paper_figure_1_three_tasks_rank_sweep():
    """Fig. 1 at the paper's size (N = 300, ranks 1/30/100/300, 3 seeds, 10,000 steps):
    KA(1) well under half of KA(300) and RA(1) < RA(300) on every task, KA rising with rank,
    and every rank reaching a similar loss (lazy is not 'did not learn')."""
    ds = lazyrich.sweep("rnn_rank", task=["2AF", "DMS", "CXT"], rank=[1, 30, 100, 300],
                        seed=[0, 1, 2], progress=False)
    end = ds.isel(ntk_step=-1).mean("seed")
    for task in ("2AF", "DMS", "CXT"):
        ka = end.kernel_alignment.sel(task=task).values
        ra = end.representation_alignment.sel(task=task).values
        assert ka[0] < 0.5 * ka[-1], (task, ka)
        assert ka[0] < ka[1] < ka[-1], (task, ka)
        assert ra[0] < ra[-1], (task, ra)
        loss = ds.loss.sel(task=task).isel(step=slice(-10, None)).mean(("seed", "step")).values
        assert loss.max() < 2 * loss.min() + 0.05, (task, loss)
